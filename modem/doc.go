// Package modem drives AT-command cellular modems that send and receive
// binary SMS, one [Modem] per serial port and a [Pool] of them.
//
// It moves TPDUs as bytes and knows nothing of CoAP or of the SMS bearer
// above it (bearer/sms/modemlink joins the two).
//
// # Usage
//
// Open a modem, send a TPDU, and acknowledge what arrives once it is stored:
//
//	m, err := modem.Open(ctx, modem.Config{Device: "/dev/ttyUSB2", MSISDN: "+4915100000001"})
//	if err != nil { ... }
//	defer m.Close()
//	mr, err := m.SendPDU(ctx, submitTPDU) // TP-Message-Reference
//
//	for r := range m.Received() {
//		store(r.TPDU)      // durably, first
//		_ = r.Ack(ctx)     // then +CMGD or +CNMA
//	}
//
// A [Pool] sends from the SIM a device knows and merges what all modems
// receive:
//
//	pool, err := modem.NewPool()
//	_ = pool.Add(m, modem.WithRate(0.5, 3)) // one SMS every 2 s, bursts of 3
//	rc, err := pool.SendTPDU(ctx, "+4915100000001", submitTPDU)
//
// [WithDialer] replaces the serial port by any byte stream (the simulator
// in modem/sim, a pty); [Config] holds the rest.
//
// # Design
//
// Layers. The AT engine is modem/at: one command at a time, every line
// sorted into the command's answer, an unsolicited result code or a stray
// line, with a context per command. This package adds SMS on top: the init
// sequence, sending, receiving, health and recovery.
//
// Nothing received is lost. A message stays on the SIM (or with the
// network) until [Received.Ack]: +CMTI/+CDSI are read with +CMGR and
// deleted with +CMGD only after the consumer stored the message; +CMT/+CDS
// are acknowledged with +CNMA only then, so the network redelivers
// otherwise. What cannot be delivered (a PDU line that is not hex, a TPDU
// that does not decode) goes to the [Quarantine] ([WithQuarantine]) after
// two identical reads, or stays on the modem and is reported once. A
// message may be delivered twice (after a reconnect, or when +CMGD failed):
// consumers deduplicate, as the SMS bearer does. Stored messages are swept
// at every open and in the health poll.
//
// Vendor quirks in one place. A [Profile] (detected from +CGMI/+CGMM, see
// [DetectProfile]) names the init commands and the vendor's final result
// codes and URCs, and lists each vendor behaviour it handles ([Quirk]) with
// its source. The init checks that
// answers carry their information line and re-runs on a late answer.
//
// Recovery. EOF, EIO or a storm of timeouts closes the port, re-opens it
// with backoff, re-initialises and sweeps; sends in flight fail with
// [ErrLinkLost], which is retryable.
//
// Errors and limits. +CMS and +CME errors are typed ([*CMSError],
// [*CMEError]) and classified retryable or permanent ([Retryable]; TS
// 27.005 §3.2.5, TS 24.011 Annex E-2, TS 23.040 §9.2.3.22, TS 27.007 §9.2).
// Every command has a timeout and honours its context; every queue is
// bounded and every drop counted ([Stats], [Event], [Metrics]). The
// parsers of every response and URC used (ParseCMGR, ParseCSQ, ...) are
// lenient, table-tested over the field corpus and fuzzed.
//
// From libraries, and ours. The SMSC prefix of PDU mode is split and built
// with github.com/warthog618/sms/encoding/pdumode. The serial port is
// opened here (raw 8N1 via golang.org/x/sys/unix, SetCommState on Windows)
// rather than by tarm/serial, which leaves the descriptor blocking so Close
// cannot interrupt a Read; ours stays in Go's poller. modem/at replaced
// github.com/warthog618/modem/at; its package doc says why.
//
// The simulator in modem/sim speaks the same AT dialect; the tests, the
// benchmark (modem/cmd/poolbench) and hwtest use it when no hardware is
// attached.
package modem
