// Package modem drives AT-command cellular modems for binary SMS: one
// Modem per serial port (or any byte stream), and a Pool of modems, each
// owning one SIM and MSISDN. It moves TPDUs as bytes and knows nothing of
// CoAP or of the SMS bearer above it.
//
// # What comes from libraries and what is ours
//
// The AT command engine is github.com/warthog618/modem/at: it writes
// commands, collects information lines up to the final result code, runs
// the two-step "> " prompt exchange of +CMGS (SMSCommand), applies a
// per-command timeout, splits unsolicited result codes (+CMT and +CDS with
// their trailing PDU line, +CMTI, +CDSI) off to indication handlers, and
// closes itself when the port reports EOF or EIO. The SMSC-address prefix of PDU mode is
// split and built with github.com/warthog618/sms/encoding/pdumode.
//
// The serial port is opened by our openSerial (raw 8N1 termios via
// golang.org/x/sys/unix, the settings tarm/serial applies) rather than by
// warthog618/modem/serial over tarm/serial, because tarm/serial leaves the
// descriptor blocking, so Close cannot interrupt a pending Read and an idle
// modem could not be closed or re-opened; ours stays in Go's poller. A pty
// slave path opens the same way.
//
// Ours, because the gsm package of warthog618/modem stops at "send a text,
// receive +CMT": the init sequence with vendor Profiles (+CMEE, +CMGF=0,
// +CSMS, +CPMS, +CNMI, SIM PIN), which checks that the answers that must
// carry an information line do, and when one does not (a late answer from
// before the open put every answer one command behind) waits for a quiet
// port and runs again; identity and health (+CGMI/+CGMM/+CGMR,
// +CGSN, +CIMI, +CNUM, +CSQ, +CREG/+CEREG, +CPMS?); +CMGS of a binary TPDU
// returning its TP-MR; the receive paths with an explicit acknowledgement
// (Received.Ack): +CMTI/+CDSI → +CMGR, deleted with +CMGD only after the
// consumer stored the message, and +CMT/+CDS acknowledged with +CNMA only
// after the consumer stored it (so the network redelivers otherwise); the
// sweep of stored messages at every open and in the health poll; storage
// full detection; typed +CMS/+CME errors classified retryable or permanent
// (TS 27.005 §3.2.5, TS 24.011 Annex E-2, TS 23.040 §9.2.3.22, TS 27.007
// §9.2); parsers of every response and URC used, with fuzz targets; the
// recovery supervisor (EOF/EIO or a storm of timeouts → close, re-open with
// backoff, re-initialise, sweep; in-flight sends fail with ErrLinkLost,
// which is retryable); and the Pool (per-SIM sends, choice by readiness and
// load, token-bucket rate limit per modem, failover between allowed SIMs,
// merged receive, events and metrics).
//
// # Guarantees
//
// Nothing received is lost by the driver: a message stays on the SIM (or
// with the network) until Ack. A message may be delivered twice (after a
// reconnect, or when an Ack's +CMGD failed), so consumers deduplicate, as
// the SMS bearer does. Every command has a timeout and honours its
// context; every queue is bounded (inbox, URC queue, events, pool queue per
// modem) and every drop is counted (Stats, events, Metrics).
//
// The simulator in modem/sim speaks the same AT dialect and is what the
// tests, the benchmark (cmd/poolbench) and hwtest use when no hardware is
// attached.
package modem
