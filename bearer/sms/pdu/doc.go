// Package pdu turns CoAP datagrams into SMS-SUBMIT TPDUs and received
// SMS-DELIVER TPDUs back into datagrams: the codec half of the SMS bearer.
//
// It follows 3GPP TS 23.040 (TPDU layout, §9.2.3.24 user data header), TS
// 23.038 (data coding scheme), TS 27.005 §3 (PDU mode as modems print it)
// and the LwM2M SMS binding (LwM2M 1.1 Core, Appendix L trigger example).
//
// # Usage
//
// Encode a datagram into as many segments as it needs, each ready for
// AT+CMGS:
//
//	e, err := pdu.NewEncoder() // options: WithDefaults, WithRefSeed, …
//	segs, err := e.Encode("+4915112345678", coap, pdu.WithStatusReport(true))
//	for _, s := range segs {
//		// AT+CMGS=<s.Length>, then s.PDU and Ctrl-Z (or s.TPDU to an SMSC)
//	}
//
// Decode what a modem prints and put concatenated parts back together:
//
//	in, err := pdu.DecodeModemHex(line, length) // an SMS-DELIVER or a status report
//	if in.Deliver != nil {
//		part, err := pdu.PartOf(in.Deliver)
//		dg, err := r.Add(part) // r: a Reassembler; dg != nil once complete
//	}
//
// # Design
//
//   - [Encoder]: a datagram of 0..34,170 bytes becomes SMS-SUBMIT TPDUs
//     with 8-bit data coding, relative TP-VP, optional TP-SRR, a
//     concatenation IE (8-bit reference, IE 0x00, 134 bytes a segment, or
//     16-bit, IE 0x08, 133 bytes) and an optional 16-bit application port
//     IE (IE 0x05). Each [Segment] carries the TPDU, the PDU-mode hex
//     string with the leading SMSC length byte 00 and the <length> for
//     AT+CMGS; a datagram that does not fit fails with [ErrTooLarge].
//   - [Decode], [DecodePDU], [DecodeModemHex]: SMS-DELIVER and
//     SMS-STATUS-REPORT, with or without the leading SMSC address; 8-bit
//     data is CoAP, GSM 7-bit and UCS-2 are decoded as text for logs and
//     refused as CoAP ([ErrNotBinary]); the TP-ST of a status report is
//     mapped to delivered / pending / failed ([ClassifyStatus], TS 23.040
//     §9.2.3.15).
//   - For simulators and tests: [ParseSubmit], [DeliverOf] (the DELIVER the
//     far end gets for a SUBMIT), [Deliver.Marshal] and
//     [StatusReport.Marshal].
//   - [Reassembler]: bounded, deadline-driven reassembly of concatenated
//     messages keyed by (originator, reference, reference size, total), with
//     caps per originator, on sets and on bytes, a drop callback with a
//     reason ([Dropped]), and [ReassemblerStats] with the bytes held.
//   - [BuildWAPPush], [ParseTrigger]: the WAP Push framing of the LwM2M
//     trigger (WDP destination port 2948, WSP push, X-WAP-Application-ID
//     0x9A).
//
// Nothing in this package does I/O or starts goroutines; the Reassembler is
// driven by its caller ([Reassembler.Add] and [Reassembler.Sweep]) and takes
// an injectable clock.
//
// # Hand-written versus library
//
// The TPDU field layouts (SMS-SUBMIT encode; SMS-DELIVER, SMS-STATUS-REPORT
// and SMS-SUBMIT decode), the UDH parser, the TS 23.038 DCS interpretation,
// the SCTS timestamp and the segmentation are hand-written here. The
// github.com/warthog618/sms/encoding/tpdu package was checked and is not used
// for them because:
//
//   - its timestamp decoder accepts impossible dates (month 13, 31 February)
//     and silently normalises them through time.Date;
//   - its UDH parser keeps every IE but does not validate the concatenation
//     IE (sequence 0, sequence > total, total 0 are accepted) nor the length
//     of port IEs, and it cannot tell a caller which IE was ignored;
//   - its segmentation always emits a concatenation reference of 1 unless a
//     counter is supplied, has no port IE support, returns no segments for an
//     empty message (a 0-byte datagram is legal here) and allocates a TPDU
//     struct plus several slices per segment, which the benchmarks avoid;
//   - its semi-octet decoder skips a 0xF filler anywhere in an address
//     instead of only as the last, odd semi-octet.
//
// Taken from github.com/warthog618/sms (correct and complete for what is used):
// encoding/gsm7 (7-bit packing and the GSM 03.38 default alphabet, used for
// text logging and alphanumeric originators) and encoding/ucs2 (UCS-2 text).
// The test suite uses encoding/tpdu as an independent decoder of every TPDU the
// Encoder emits, and python3-gammu (libgammu) as a second one.
package pdu
