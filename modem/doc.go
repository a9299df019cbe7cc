// Package modem drives AT-command cellular modems for binary SMS: one
// Modem per serial port (or any byte stream), and a Pool of modems, each
// owning one SIM and MSISDN. It moves TPDUs as bytes and knows nothing of
// CoAP or of the SMS bearer above it.
//
// # What comes from libraries and what is ours
//
// The AT command engine is our package modem/at: it writes one command at
// a time, sorts every line the modem sends into the command's answer, an
// unsolicited result code or a stray line (CR and LF in any combination,
// echo on or off, lines split across reads, URCs interleaved anywhere,
// final result codes it does not know, a stray "> " told from the send
// prompt), and honours a context per command. It replaced
// github.com/warthog618/modem/at, whose line reader and command loop could
// not be wrapped into that; modem/at's package documentation says why,
// point by point. The SMSC-address prefix of PDU mode is split and built
// with github.com/warthog618/sms/encoding/pdumode, and TPDUs are checked
// with its encoding/tpdu.
//
// The serial port is opened by our openSerial (raw 8N1 termios via
// golang.org/x/sys/unix on Linux, macOS and the BSDs; SetCommState on
// Windows) rather than by tarm/serial, because tarm/serial leaves the
// descriptor blocking, so Close cannot interrupt a pending Read and an idle
// modem could not be closed or re-opened; ours stays in Go's poller. A pty
// slave path opens the same way.
//
// Ours, because no library does it: the init sequence with vendor
// Profiles (+CMEE, +CMGF=0, +CSMS, +CPMS, +CNMI, SIM PIN, the vendor's
// final result codes and URCs), which checks that the answers that must
// carry an information line do, and when one does not (a late answer from
// before the open put every answer one command behind) waits for a quiet
// port and runs again; identity and health (+CGMI/+CGMM/+CGMR, +CGSN,
// +CIMI, +CNUM, +CSCA, +CSQ, +CREG/+CEREG, +CPMS?), a poll that degrades
// field by field; +CMGS of a binary TPDU returning its TP-MR; the receive
// paths with an explicit acknowledgement (Received.Ack): +CMTI/+CDSI →
// +CMGR, deleted with +CMGD only after the consumer stored the message,
// and +CMT/+CDS acknowledged with +CNMA only after the consumer stored it
// (so the network redelivers otherwise); the quarantine (WithQuarantine)
// for what cannot be delivered; the sweep of stored messages at every open
// and in the health poll; storage full detection; typed +CMS/+CME errors
// classified retryable or permanent (TS 27.005 §3.2.5, TS 24.011 Annex
// E-2, TS 23.040 §9.2.3.22, TS 27.007 §9.2); lenient parsers of every
// response and URC used, with table tests over the field corpus and fuzz
// targets; the recovery supervisor (EOF/EIO or a storm of timeouts →
// close, re-open with backoff, re-initialise, sweep; in-flight sends fail
// with ErrLinkLost, which is retryable); and the Pool (per-SIM sends,
// choice by readiness and load, token-bucket rate limit per modem,
// failover between allowed SIMs, merged receive, events and metrics).
//
// # Guarantees
//
// Nothing received is lost by the driver: a message stays on the SIM (or
// with the network) until Ack, or until it is in the Quarantine when it
// cannot be delivered (a PDU line that is not hex, an SMSC part or a TPDU
// that does not decode, an SMS-SUBMIT in a received slot): a bad slot is
// read twice, and quarantined only when both reads show the same PDU line.
// Without a Quarantine such a message stays on the modem and is reported
// once (EventBadInput). A <length> that does not match the PDU is logged
// (EventLengthMismatch) and the PDU used when it decodes. A message may be delivered twice (after a
// reconnect, or when an Ack's +CMGD failed), so consumers deduplicate, as
// the SMS bearer does. Every command has a timeout and honours its
// context; every queue is bounded (inbox, URC queue, events, pool queue per
// modem) and every drop is counted (Stats, events, Metrics).
//
// The simulator in modem/sim speaks the same AT dialect and is what the
// tests, the benchmark (cmd/poolbench) and hwtest use when no hardware is
// attached.
package modem
