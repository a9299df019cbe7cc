// Package loadgen is a closed-loop CoAP-over-UDP load generator for
// comparing CoAP servers with the same client.
//
// # Usage
//
//	ref, err := loadgen.StartGoCoap("127.0.0.1:0", "/3/0/0", payload) // the reference server
//	res, err := loadgen.Run(ctx, target, loadgen.Config{
//		Workers: 64, Path: "/3/0/0", Duration: 5 * time.Second, WantCode: codes.Content,
//	})
//
// # Design
//
// Hand-written and deliberately minimal, so that the client costs little
// and the same for every server measured: each of K workers owns one UDP
// socket (one CoAP peer), sends a pre-encoded confirmable GET with a fresh
// message ID and token, and waits for the piggybacked ACK that matches
// both before sending the next request. A request not answered within the
// retry timeout is counted as lost and replaced by a new one (new MID and
// token), never retransmitted, so a lost datagram costs one timeout and
// nothing else. Responses are checked with a few byte comparisons, not a
// full decode.
//
// [StartGoCoap] starts go-coap v3's own UDP server ([GoCoapServer]), the
// reference the m2mbearer Endpoint is measured against.
package loadgen
