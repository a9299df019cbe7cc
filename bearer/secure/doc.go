// Package secure runs DTLS 1.2 over any [bearer.Bearer]: UDP, SMS or a
// test pipe.
//
// A [Server] and a client [Conn] are themselves bearers, so the CoAP
// message layer above does not change.
//
// # Usage
//
// A server looks keys up by PSK identity (or verifies certificates and raw
// keys, see [Config]); its handlers see who is calling:
//
//	srv, err := secure.NewServer(udpConn, &secure.Config{
//		PSKLookup: func(identity []byte) ([]byte, error) { return keys[string(identity)], nil },
//	})
//	if err != nil { ... }
//	ep, err := bearer.NewEndpoint(srv, bearer.WithHandler(mux)) // r.Identity in handlers
//
// A device dials its server and uses the session as any bearer:
//
//	conn, err := secure.Dial(ctx, udpConn, serverAddr, &secure.Config{
//		PSKIdentity: []byte("urn:imei:490154203237518"),
//		PSKKey:      key,
//	})
//	if err != nil { ... }
//	ep, err := bearer.NewEndpoint(conn)
//
// [NewRawKeyCertificate], [PublicKeyInfo] and [TrustKeys] set up raw public
// keys; [Mixed] serves DTLS and plain peers on one bearer; a
// [SessionCache] lets a returning peer resume its session with an
// abbreviated handshake (3 datagrams instead of 6 or 7 on SMS).
//
// # Design
//
// The DTLS protocol itself (handshake state machines, HelloVerifyRequest
// cookies, record protection, replay windows, RFC 9146 connection IDs on
// the wire) is github.com/pion/dtls/v3, whose Client and Server take a
// net.PacketConn. Security protocols are not re-implemented here.
//
// Hand-written here, because pion's own listener is bound to UDP sockets
// and its API has no bearer notion:
//   - the server-side demultiplexer: it reads the inner bearer, parses the
//     first record header of each datagram and routes it to a per-peer
//     virtual net.PacketConn, by connection ID when the record carries one
//     (a NAT-rebound device keeps its session and the session's address
//     follows it), else by source address; only an epoch-0 ClientHello
//     starts a session; malformed datagrams and records for no session are
//     dropped and counted;
//   - limits: sessions, concurrent handshakes, per-peer queues, handshake
//     timeout and idle expiry, all counted in [Stats]. pion answers a new
//     ClientHello with a HelloVerifyRequest (a cookie, no larger than the
//     ClientHello, so no amplification) but keeps per-peer state while it
//     waits; at the handshake or session limit the oldest handshake whose
//     peer never echoed a cookie is evicted for the newcomer, so a flood of
//     spoofed ClientHellos cannot lock real devices out;
//   - RFC 6347 §4.2.8 reconnection: a new ClientHello from the address of
//     an established session starts a second handshake and the old session
//     is kept until it completes;
//   - credentials (RFC 7925 PSK, X.509, pinned raw keys) mapped to pion
//     options, and the authenticated peer identity ([bearer.Identity])
//     carried on every address ReadFrom returns ([*Addr], a
//     [bearer.IdentityAddr]);
//   - Params: the inner bearer's, with the datagram sizes reduced by the
//     record overhead ([Overhead]: 13-byte header + 8-byte explicit nonce +
//     8-byte CCM_8 tag = 29 bytes, + CID length + 1 with RFC 9146 CIDs).
//
// # ClientHello record versions
//
// The record-layer version of an epoch-0 ClientHello may be any {254, xx}:
// the client does not know the server's version yet (RFC 6347 §4.1; TLS
// servers accept any {03, xx} the same way, RFC 5246 Appendix E.1), and
// mbedTLS 2.x — Anjay's default build — sends 0xFE00. pion/dtls refuses any
// record version but 0xFEFF and 0xFEFD, so the demultiplexer rewrites the
// version of such ClientHello records to 0xFEFF before pion reads them
// (counted in [Stats].HelloVersionRewritten). That header is covered by no
// MAC and is not in the handshake transcript; the version the client
// offers (client_version in the ClientHello body) is untouched. Every other
// record with a version other than 0xFEFF or 0xFEFD is still dropped.
//
// # Raw public keys are emulated, not RFC 7250
//
// pion/dtls does not implement the RFC 7250 client_certificate_type and
// server_certificate_type extensions, so a raw public key cannot be sent
// bare. This package does what LwM2M deployments on pion do: each side
// sends a self-signed X.509 certificate ([NewRawKeyCertificate]) wrapping its
// key, and the receiver trusts the peer by its SubjectPublicKeyInfo alone
// ([Config].VerifyRawKey, [TrustKeys]), ignoring subject, dates and signature.
// The trust decision is the one RFC 7250 makes, but on the wire it is an
// ordinary certificate handshake: a peer that insists on RFC 7250 (for
// example a device that only offers the RawPublicKey certificate type)
// cannot interoperate with it.
//
// # Cipher suites
//
// The defaults are those of RFC 7925: TLS_PSK_WITH_AES_128_CCM_8 for PSK and
// TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 for certificates and raw keys, on the
// secp256r1 curve. Other pion suites are opt-in through [Config].CipherSuites.
package secure
