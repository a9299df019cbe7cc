// Package bearer runs CoAP (RFC 7252) over any datagram transport: UDP,
// DTLS, OSCORE or SMS.
//
// A [Bearer] is a [net.PacketConn] that carries whole CoAP datagrams, plus
// [Params]: its size limits and RFC 7252 transmission parameters. An
// [Endpoint] is the CoAP message layer on one Bearer, client and server at
// once, with observe (RFC 7641) and block-wise transfer (RFC 7959, including
// Q-Block).
//
// # Usage
//
// Serve resources with a [ServeMux] and call a peer with the client methods
// ([Endpoint.Get], [Endpoint.Put], [Endpoint.Post], [Endpoint.Delete],
// [Endpoint.Observe], [Endpoint.Do]):
//
//	mux := bearer.NewServeMux()
//	mux.HandleFunc("/3/0/0", func(w bearer.ResponseWriter, r *bearer.Request) {
//		_ = w.WriteResponse(codes.Content, []byte("streetlight"))
//	})
//	ep, err := bearer.NewEndpoint(conn, bearer.WithHandler(mux)) // conn: udp, secure, sms...
//	if err != nil { ... }
//	defer ep.Close()
//	resp, err := ep.Get(ctx, peer, "/3/0/0")
//
// A handler accepts an observation with [ResponseWriter] Observe and
// notifies through the returned [Observer]; a client gets notifications
// through the callback it gives [Endpoint.Observe] until it cancels the
// [Observation]. Bodies larger than [Endpoint.BlockSize] are sent and
// received block-wise without the caller noticing.
//
// # Design
//
// One interface for every transport. Security (bearer/secure,
// bearer/oscore) wraps a Bearer and returns a Bearer, so the layers above
// never change with the transport; the SMS bearer (bearer/sms) is a Bearer
// too. Per-bearer [Params] carry what differs: MAX_RETRANSMIT 0 and one-SMS
// blocks on SMS, RFC 7252 defaults from [UDPParams] on UDP.
//
// Codec from go-coap, exchanges written here. The CoAP codec and message
// types are go-coap v3's (complete, fuzzed, fast). go-coap's exchange layer
// is bound to its own UDP and DTLS connections, so message IDs and tokens,
// duplicate detection, piggybacked and separate responses, retransmission,
// NSTART, observe and block-wise state are written here, over any Bearer.
//
// Bounded and counted. Everything an Endpoint keeps is bounded by [Limits]
// and reported through [Metrics]. Errors say what happened: [ErrTooLarge],
// [*TimeoutError] (a [net.Error], and errors.Is [ErrTimeout]),
// [*AbortError] for a request ended by [Steer.Abort].
//
// Sleeping peers. A [Steer] moves a confirmable request in flight to a
// peer's new address or ends it; optional interfaces let a bearer tell the
// Endpoint more: [Backlogger] (datagrams still queued), [DeadlineWriter],
// [PurposeHinter] (cost accounting) and [UnreachableReporter] (ICMP).
//
// Server-side handlers follow net/http: [Handler], [HandlerFunc],
// [ServeMux], and [Endpoint.Shutdown] to stop gracefully.
package bearer
