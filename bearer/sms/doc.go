// Package sms carries CoAP over binary SMS: the LwM2M SMS binding, as a
// [bearer.Bearer] whose addresses are phone numbers ([Addr]).
//
// # Usage
//
// Give [New] a [Transport] (AT modems through bearer/sms/modemlink, or an
// SMSC through bearer/sms/smpp), a state directory and the peers it may talk
// to, then run a bearer.Endpoint (or a DTLS or OSCORE layer) on it:
//
//	link, err := modemlink.New(pool) // or an smpp.Link
//	b, err := sms.New(link, sms.Config{
//		StateDir: dir,
//		Peers: map[string]sms.Peer{
//			"+33612345678": {Security: sms.ModeNoSec},
//		},
//		DailyBudget: &budget, // segments per UTC day; nil: unlimited
//	})
//	if err != nil { ... }
//	defer b.Close()
//	ep, err := bearer.NewEndpoint(b)
//	peer, _ := sms.ParseMSISDN("+33612345678")
//	resp, err := ep.Get(ctx, peer, "/3/0/0")
//
// [ParseMSISDN] and [ParseLwM2M] read numbers; [Numbering] resolves
// national ones.
//
// # Design
//
// Nothing lost. [Bearer.WriteTo] returns once the datagram is in a durable
// outbox (bearer/sms/outbox); it is sent, retried and reported from there
// ([Config.OnResult]). An inbound SMS is stored before the modem is told to
// acknowledge it and removed once its whole datagram has reached
// [Bearer.ReadFrom]; concatenated sets are reassembled by bearer/sms/pdu.
//
// Only what it needs. A [Transport] sends a TPDU from a SIM and delivers
// received TPDUs: the bearer knows no modem and no SMSC.
//
// One security mode per peer. [Peer] names the [Mode] a peer's
// datagrams must use (DTLS by default, NoSec only when chosen); anything
// else is refused. With [Config.SplitDTLS] the DTLS peers' records go to
// [Bearer.DTLS] so that a bearer/secure server runs beside plain and
// OSCORE peers on the same SIMs.
//
// Costs bounded. Daily budgets per device and in all ([BudgetError]),
// per-peer rate limits ([RateLimiter], [RateError]) and a loop guard
// ([LoopError]) refuse sends before they cost money; [Bearer.Usage] counts
// segments per peer and purpose. The state they need ([StateStore]) is a
// bbolt file by default ([OpenBoltState]) or shared in Redis (redisstore).
//
// Addresses are hand-written: E.164 (at most 15 digits, country code first)
// with a leading "+", national numbers resolved with a configured country
// code and trunk prefix, and the digits-only form of the LwM2M "sms="
// registration parameter and of the MSISDN resources (LwM2M 1.1 Core
// §6.2.1). No library covers this small rule set precisely.
package sms
