// Package smppwire is the SMPP 3.4 wire format: PDU headers, the bodies of
// the operations an ESME and an SMSC exchange for SMS, TLVs,
// command_status codes and the delivery-receipt text of Appendix B.
//
// The operations are bind_*, unbind, enquire_link, submit_sm, deliver_sm,
// generic_nack and their responses.
//
// # Usage
//
//	p, err := smppwire.ReadPDU(conn, smppwire.MaxPDU) // ErrTooLong, ErrMalformed or the reader's error
//	if p.ID == smppwire.SubmitSM {
//		sm, err := smppwire.ParseSM(p.Body)
//		...
//	}
//	body, err := sm.Marshal()
//	_, err = conn.Write(smppwire.Marshal(smppwire.DeliverSM, 0, seq, body))
//
// # Design
//
// A codec with no I/O beyond [ReadPDU] on an io.Reader, shared by the
// ESME client (bearer/sms/smpp) and the simulated SMSC
// (bearer/sms/smpp/smsc). No Go SMPP library could be had from the module
// proxy here (github.com/linxGnu/gosmpp and github.com/fiorix/go-smpp were
// refused), so it is written for this project from the SMPP 3.4
// specification (issue 12-Oct-1999).
//
// Every decoder bounds what it reads: a PDU is at most [MaxPDU] octets
// (a longer command_length fails with [ErrTooLong] before any body is read),
// every C-Octet String at most its field's size, and a malformed PDU is an
// error wrapping [ErrMalformed], never a panic. An error status from the
// peer is a [*StatusError].
package smppwire
