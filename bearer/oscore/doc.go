// Package oscore protects CoAP requests and responses end to end with
// OSCORE (RFC 8613), the object security of LwM2M 1.1+ (Object 21).
//
// Messages are protected with AES-CCM-16-64-128 and no handshake, so a
// secured exchange over SMS costs what a NoSec one costs plus a few bytes.
//
// # Usage
//
// A [Context] is one security context: derived from [Params] with
// HKDF-SHA256 (§3.2), it protects and verifies messages, keeps its Sender
// Sequence Number in a [SeqStore] in steps (Appendix B.1.1) and its replay window
// (§7.4), re-learnt with an Echo round trip after a restart (Appendix
// B.1.2, RFC 9175).
//
// A [Conn] runs OSCORE over any [bearer.Bearer] (UDP, SMS, DTLS, a test
// pipe) and is itself a bearer.Bearer, so [bearer.Endpoint], block-wise transfers,
// observe and LwM2M above it do not change:
//
//	x, _ := oscore.NewContext(params, store)          // store: BoltStore, MemoryStore in tests
//	conn, _ := oscore.New(udpConn, oscore.WithPeer(serverAddr, x))
//	ep, _ := bearer.NewEndpoint(conn, bearer.WithHandler(client))
//
// A server with many devices adds one context per device ([WithContext];
// [WithPeer] also binds an SMS number) and, with [AllowPlain], still serves
// NoSec devices; handlers see the OSCORE identity in [bearer.Request].Identity
// (mode "oscore", the device's Sender ID and ID Context).
//
// # Design
//
// Restarts and lost state (Appendix B). Appendix B.1 is always on: sequence numbers persisted in steps (B.1.1),
// the replay window re-learnt with Echo after a restart (B.1.2). With
// [WithRederivation] a context also runs Appendix B.2 ("Security Context
// Derived Multiple Times"), in both roles: when an endpoint has no state to
// continue with (first contact, lost storage), the two derive fresh keys
// from the provisioned ones and an ID Context built from random R1, R2, R3
// exchanged in 'kid context' (request #1, response #1, request #2 of
// Figure 14); Conn re-sends the request of step 1 as request #2 by itself.
// The identity stays the provisioned one. The rules on who starts a run,
// the bounds (B.2.1) and the replay handling (B.2.2) are in rederive.go
// and docs/oscore.md.
//
// Where it sits, and why. RFC 8613 puts OSCORE between CoAP's request/response layer and its
// messaging layer. bearer.Endpoint is both, so Conn sits under it, as DTLS
// does, and carries the messaging-layer knowledge it needs: empty messages
// (ACK, RST, ping) pass unprotected; a retransmission by the message layer
// is sent as the same protected bytes (a cache by message ID); a
// retransmitted or duplicated request is recognised by its digest and
// handed to the Endpoint's duplicate detection instead of being refused as
// a replay; a 4.01 with Echo is answered by re-sending the request with
// the Echo value (new message ID, same token) and the Endpoint sees a
// separate response. The alternative, hooks inside the Endpoint, would
// weave security into the message layer other work changes (Q-Block,
// duplicate cache by size) and would not cover a raw bearer user.
//
// Block-wise transfers are inner block-wise (§4.1.3.4.1): each block is its
// own OSCORE message. Observe follows §4.1.3.5: FETCH as outer code of an
// observing request, notifications protected with their own Partial IV and
// accepted in Partial IV order (§7.4.1).
//
// Bad input. What does not verify never reaches the message layer: a request is
// answered 4.02 (malformed OSCORE option), 4.01 (unknown kid, replayed or
// out-of-window Partial IV, unprotected request from a peer that must
// protect), 4.00 (decryption failed, bad plaintext), unprotected as §8.2
// says, and counted ([Counters], [WithMetrics]); a response is dropped and
// counted. Memory is bounded: bindings, the retransmission and duplicate
// caches (entries and bytes), the replay window (one 64-bit word).
//
// What is a library's and what is ours. AES-CCM is pion/dtls's exported package pkg/crypto/ccm (RFC 3610, any
// tag and nonce size; already a dependency for DTLS), HKDF is Go's
// crypto/hkdf, the CoAP codec is go-coap v3's. The OSCORE protocol —
// key derivation info, nonce, AAD, option codec, Class E/U split, replay
// window, sequence persistence, Echo — is written here from RFC 8613 and
// checked byte for byte against its Appendix C test vectors.
package oscore
