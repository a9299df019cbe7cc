// Package smpp sends and receives the SMS bearer's TPDUs through an
// operator's SMSC over SMPP 3.4, as an sms.Transport.
//
// The SMS bearer works through a [Link] exactly as it does through the
// modem pool, at tens to hundreds of SMS a second (docs/smpp.md).
//
// # Usage
//
//	l, err := smpp.Dial(smpp.Config{Name: "op1", Addr: "smsc.example:2775",
//		SystemID: "city", Password: "secret", Sources: []string{"+15550100"},
//		Window: 10, Rate: 100, StateDir: dir})
//	if err != nil { ... }
//	b, err := sms.New(l, sms.Config{StateDir: dir, ...})
//
// [Config] chooses the bind mode ([BindMode]), how concatenation is carried
// ([Concat]) and TLS ([TLSOptions]); [Link.Stats] counts what happened.
//
// # Design
//
// Sessions. A Link binds as a transceiver, or as a transmitter plus a
// receiver, keeps the bind alive with enquire_link, and re-binds with
// exponential backoff when the connection drops. SMPP over TLS verifies
// the SMSC's certificate (no skip-verify). An outbind (an SMSC-initiated
// session) is refused, logged and counted ([ErrOutbind]).
//
// Sending. SMS-SUBMIT TPDUs from the bearer's outbox become submit_sm PDUs:
// 8-bit data as data_coding 0x04, concatenation carried as the TS 23.040
// UDH (esm_class UDHI), as the sar_* TLVs, or as one message_payload for
// the whole datagram, as the SMSC accepts. A window bounds the submit_sm
// outstanding per bind; ESME_RTHROTTLED and ESME_RMSGQFUL pause the link
// and the same PDU is submitted again after the pause, within the caller's
// deadline.
//
// Receipts. Each accepted submit gets a TP-MR (allocated per source and
// destination, since SMPP has none); the message_id → (source,
// destination, TP-MR) correlation is stored durably ([State]) before
// SendTPDU returns, and a receipt becomes an SMS-STATUS-REPORT TPDU that
// the bearer correlates with its outbox, after a SIGKILL and restart too.
// A receipt that overtakes its submit_sm_resp is held until the submits in
// flight have ended. Links bound to one SMSC account share a State, as the
// SMSC may deliver a receipt on any of them.
//
// Receiving. deliver_sm carrying short messages become SMS-DELIVER TPDUs
// (UDH kept, sar_* turned into a concatenation IE, long message_payload
// split), so reassembly is the bearer's own. A deliver_sm is answered only
// once the bearer acknowledged what it carried (stored or handed on); a
// refusal answers ESME_RX_T_APPN and the SMSC delivers it again.
//
// # Library
//
// No maintained Go SMPP library could be had here: the module proxy
// refused github.com/linxGnu/gosmpp and github.com/fiorix/go-smpp, and none
// is in the module lists. The codec is internal/smppwire (fuzzed); the
// session logic is this package.
package smpp
