// Package udp is the plain UDP bearer: CoAP over UDP (RFC 7252 §3) on IPv4
// and IPv6.
//
// # Usage
//
// [Listen] opens a socket that talks to any peer (a server, or a client of
// several servers); [Dial] opens one connected to a single peer, so the
// kernel drops datagrams from anyone else. Both return a [*Conn], a
// [bearer.Bearer] to run a [bearer.Endpoint] on:
//
//	conn, err := udp.Listen("udp", "[::]:5683")
//	if err != nil { ... }
//	ep, err := bearer.NewEndpoint(conn, bearer.WithHandler(mux))
//
//	conn, err := udp.Dial(ctx, "udp", "192.0.2.10:5683") // a device and its server
//
// The transmission parameters are RFC 7252's defaults ([bearer.UDPParams])
// unless [WithParams] says otherwise; [WithReadBuffer] and
// [WithWriteBuffer] size the socket buffers ([DefaultBufferSize]).
//
// # Design
//
// The socket is the standard library's [*net.UDPConn]. This package adds
// what a CoAP message layer needs from a bearer and the standard library
// does not give:
//   - Params, and refusal of datagrams over Params().MaxDatagram with
//     bearer.ErrTooLarge;
//   - datagrams truncated by a short read buffer are dropped and counted,
//     never handed up as if whole;
//   - any [net.Addr] whose String() is a literal host:port is accepted
//     ([AddrPort], [ErrBadAddr]);
//   - socket buffers sized for load, the granted sizes reported by
//     [Conn.BufferSizes], and every drop counted in [Stats];
//   - ICMP port unreachable reported to the Endpoint
//     (bearer.UnreachableReporter).
//
// go-coap's own UDP server is bound to *net.UDPConn and its exchange logic
// cannot run on other bearers (SMS), which is why the message layer
// (bearer.Endpoint) sits above the Bearer interface and this package keeps
// to the socket.
package udp
