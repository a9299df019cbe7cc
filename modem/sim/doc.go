// Package sim simulates AT-command cellular modems and the SMS network behind
// them, so that the modem driver, the SMS bearer and the LwM2M stack can be
// tested without hardware, and so that smsgw can run a demo fleet.
//
// # What is here
//
// A Network is a simulated SMS centre (SMSC): it stores and forwards
// SMS-SUBMIT TPDUs by MSISDN, with seeded, configurable latency, loss,
// duplication and reordering, TP-SRR status reports, store-and-forward for
// detached subscribers with a validity period, and an injectable Clock so
// that tests can step time deterministically. All randomness comes from one
// seeded generator.
//
// An Endpoint is a number without a modem: it sends and receives TPDUs
// directly and costs no goroutine, for fleets of thousands of simulated
// devices beside a few AT modems.
//
// A Modem is a virtual modem attached to a Network under one MSISDN. It speaks
// the 3GPP TS 27.005 PDU-mode SMS commands (+CMGF, +CSMS, +CPMS, +CNMI, +CMGS,
// +CMGR, +CMGL, +CMGD, +CMGW, +CNMA, +CSCA) and the TS 27.007 basics (+CGMI,
// +CGMM, +CGMR, +CGSN, +CIMI, +CNUM, +CSQ, +CREG, +CEREG, +CPIN, +CMEE, +CFUN,
// E, V, Z, I, +CSCS, +CGATT) with the answers of a vendor Profile: the
// TS 27.005 ones (generic 27.005, SIMCom SIM800/SIM7600, Quectel EC25/BG96,
// u-blox SARA-R4/U2) and the vendor dialects (Huawei, ZTE, Wavecom,
// Telit, Cinterion, Nordic nRF91: line ends, URCs inside answers, final
// result codes of their own, +CPIN? without OK, two-memory +CPMS, status
// reports in SR with an empty <stat>, direct-only delivery; see
// dialects.go). It is served over an in-memory pipe (Modem.Pipe) for unit
// tests or over a pseudo-terminal (Modem.OpenPTY, on Linux, macOS and
// FreeBSD) so that real serial code and third-party tools drive it: gammu,
// gammu-smsd, smsd (smstools) and gsmsendsms (gsm-utils) work against it
// unchanged (ESC CR answers OK, +CSCS=? lists HEX, a NUL after
// AT+CMGS=<n> is ignored). Faults: +CMS ERROR injection, a modem that
// hangs mid-command, unplug/replug (the driver sees EOF or EIO), full
// message storage, a configurable time per +CMGS, and for the driver's
// loss paths raw storage entries (StoreRaw), lines put inside answers
// (Interleave), wrong <length>s, output in small pieces, stuck echo.
//
// # Hand-written versus library
//
// TPDU decoding and encoding (SMS-SUBMIT in, SMS-DELIVER and
// SMS-STATUS-REPORT out, the SMSC address prefix of PDU mode) use
// github.com/warthog618/sms (encoding/tpdu, encoding/pdumode), the same
// library the driver side uses, so both sides agree on TS 23.040. Pseudo
// terminals come from github.com/creack/pty. The AT command parser, the
// command interpreter, the SMSC scheduler and the fault model are
// hand-written: no Go library simulates a modem, and the point of the
// simulator is to reproduce the exact byte-level dialect (echo, prompts,
// unsolicited result codes, error formats) a driver meets on real hardware.
//
// # Cost
//
// The network runs no goroutine of its own: pending deliveries sit in one
// timer heap behind a single Clock timer, and a delivered message leaves
// nothing behind. A plugged-in modem runs two goroutines (reader and
// session), stopped by Unplug or Network.Close; an unplugged modem and an
// Endpoint run none. Every queue is bounded: the SMSC store (WithMaxStored,
// NetworkStats.Stored), a modem's pending offers (256, then the SMSC
// retries: ModemStats.Refused), the +CNMI mode 0 buffer (256,
// ModemStats.URCsDropped), the command line (560 bytes) and the PDU after a
// prompt (400 hex digits).
package sim
