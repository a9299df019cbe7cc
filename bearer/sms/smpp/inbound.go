package smpp

import (
	"context"
	"fmt"
	"sync"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/pdu"
	"github.com/m2mbearer/m2mbearer/internal/smppwire"
)

// TP-Status values a receipt's final state maps to (TS 23.040 §9.2.3.15).
const (
	stDelivered      byte = 0x00
	stTempCongestion byte = 0x20
	stRejected       byte = 0x42 // connection rejected by SME
	stNotObtainable  byte = 0x43
	stExpired        byte = 0x46
	stDeleted        byte = 0x48 // deleted by SC administration
)

// tpStatus maps a receipt's message state to TP-ST.
func tpStatus(s smppwire.MessageState) byte {
	switch s {
	case smppwire.StateDelivered:
		return stDelivered
	case smppwire.StateExpired:
		return stExpired
	case smppwire.StateDeleted:
		return stDeleted
	case smppwire.StateUndeliverable:
		return stNotObtainable
	case smppwire.StateRejected:
		return stRejected
	}
	return stTempCongestion
}

// ackGroup answers one deliver_sm once every Inbound made from it was
// acknowledged (ESME_ROK), or as soon as one is rejected (ESME_RX_T_APPN:
// the SMSC delivers it again).
type ackGroup struct {
	s       *session
	seq     uint32
	mu      sync.Mutex
	left    int
	decided bool
	onAck   func() error // runs before ESME_ROK is sent; an error rejects
}

func (g *ackGroup) ack(context.Context) error {
	g.mu.Lock()
	if g.decided {
		g.mu.Unlock()
		return nil
	}
	g.left--
	if g.left > 0 {
		g.mu.Unlock()
		return nil
	}
	g.decided = true
	g.mu.Unlock()
	st := smppwire.ROK
	if g.onAck != nil {
		if err := g.onAck(); err != nil {
			g.s.l.log.Error("smpp: after a receipt was handed on", "err", err)
			st = smppwire.RXTAppn
		}
	}
	g.s.respond(smppwire.DeliverSMResp, st, g.seq, []byte{0})
	return nil
}

func (g *ackGroup) reject(context.Context) error {
	g.mu.Lock()
	if g.decided {
		g.mu.Unlock()
		return nil
	}
	g.decided = true
	g.mu.Unlock()
	g.s.l.c.inboundRejected.Add(1)
	g.s.respond(smppwire.DeliverSMResp, smppwire.RXTAppn, g.seq, []byte{0})
	return nil
}

// handleDeliver runs on the reader: it turns a deliver_sm into Inbound
// TPDUs for the bearer, blocking while the Inbound channel is full (the
// SMSC's window then holds the rest back). A receipt that overtook the
// store of its message_id is held (holdReceipt) without blocking the reader.
func (l *Link) handleDeliver(s *session, p smppwire.PDU) {
	sm, err := smppwire.ParseSM(p.Body)
	if err != nil {
		l.c.malformed.Add(1)
		l.log.Warn("smpp: malformed deliver_sm refused", "err", err)
		s.respond(smppwire.DeliverSMResp, smppwire.RXPAppn, p.Sequence, []byte{0})
		return
	}
	if smppwire.IsReceipt(sm.ESMClass) {
		r, err := smppwire.ParseReceipt(sm)
		if err != nil {
			l.c.receiptsUnreadable.Add(1)
			l.log.Warn("smpp: unreadable receipt dropped", "err", err)
			s.respond(smppwire.DeliverSMResp, smppwire.ROK, p.Sequence, []byte{0})
			return
		}
		c, err := l.state.st.lookup(r.ID)
		if c == nil && err == nil {
			if snap, inFlight := l.state.flight.snapshot(); inFlight && l.holdReceipt(s, p.Sequence, r, snap) {
				return
			}
		}
		tpdus, sim, onAck := l.receiptTPDUs(r, c, err)
		l.handOn(s, p.Sequence, tpdus, sim, onAck)
		return
	}
	l.c.received.Add(1)
	tpdus, sim, err := l.message(sm)
	if err != nil {
		l.c.malformed.Add(1)
		l.log.Warn("smpp: deliver_sm cannot become an SMS-DELIVER, refused", "from", sm.SourceAddr, "err", err)
		s.respond(smppwire.DeliverSMResp, smppwire.RXPAppn, p.Sequence, []byte{0})
		return
	}
	l.handOn(s, p.Sequence, tpdus, sim, nil)
}

// handOn gives the TPDUs made of the deliver_sm seq to the bearer; the
// deliver_sm is answered once all are acknowledged (or one is rejected).
// No TPDUs: it is answered ESME_ROK at once.
func (l *Link) handOn(s *session, seq uint32, tpdus [][]byte, sim string, onAck func() error) {
	if len(tpdus) == 0 {
		s.respond(smppwire.DeliverSMResp, smppwire.ROK, seq, []byte{0})
		return
	}
	g := &ackGroup{s: s, seq: seq, left: len(tpdus), onAck: onAck}
	for _, t := range tpdus {
		select {
		case l.in <- sms.Inbound{SIM: sim, TPDU: t, Ack: g.ack, Reject: g.reject}:
		case <-s.done:
			return
		case <-l.ctx.Done():
			return
		}
	}
}

// receiptTPDUs turns a delivery receipt and its correlation c (nil: none
// stored) into SMS-STATUS-REPORTs, one per TP-MR the message carried. It
// returns no TPDUs for receipts answered at once: intermediate states and
// unknown ones (counted and logged).
func (l *Link) receiptTPDUs(r *smppwire.Receipt, c *corr, err error) ([][]byte, string, func() error) {
	if err != nil || c == nil {
		l.c.receiptsUnknown.Add(1)
		l.log.Info("smpp: receipt for a message_id this link does not wait for", "id", r.ID, "state", r.State.String(), "err", err)
		return nil, "", nil
	}
	if !r.State.Final() {
		l.c.receiptsIntermediate.Add(1)
		return nil, "", nil
	}
	l.c.receipts.Add(1)
	ra, err := pdu.NumberAddress(c.To)
	if err != nil {
		l.log.Error("smpp: stored destination unusable", "to", c.To, "err", err)
		return nil, "", nil
	}
	now := l.cfg.Now()
	scts, dt := r.SubmitDate, r.DoneDate
	if scts.IsZero() {
		scts = now
	}
	if dt.IsZero() {
		dt = now
	}
	var out [][]byte
	for _, mr := range c.MRs {
		b, err := (&pdu.StatusReport{MR: mr, Recipient: ra, SCTS: scts, Discharge: dt, Status: tpStatus(r.State)}).Marshal()
		if err != nil {
			l.log.Error("smpp: building a status report", "err", err)
			return nil, "", nil
		}
		out = append(out, b)
	}
	id := r.ID
	return out, c.SIM, func() error { return l.state.st.forget(id) }
}

// message turns a deliver_sm carrying a short message into one or more
// SMS-DELIVER TPDUs: the UDH kept, sar_* TLVs turned into a 16-bit
// concatenation IE, a message_payload too long for one TPDU split with one.
func (l *Link) message(sm *smppwire.SM) ([][]byte, string, error) {
	oa := pdu.Address{TON: pdu.TypeOfNumber(sm.SourceTON & 7), NPI: pdu.NumberingPlan(sm.SourceNPI & 15), Value: sm.SourceAddr}
	if oa.TON != pdu.TONAlphanumeric && !allDigits(sm.SourceAddr) {
		return nil, "", fmt.Errorf("source_addr %q is not a number", sm.SourceAddr)
	}
	sim := l.simOf(sm.DestTON, sm.DestAddr)
	data := sm.Payload()
	var udh pdu.UDH
	if sm.ESMClass&smppwire.ESMUDHI != 0 {
		h, n, err := pdu.ParseUDH(data)
		if err != nil {
			return nil, "", err
		}
		udh, data = h, data[n:]
	}
	if ref, ok := sm.TLVs.U16(smppwire.TagSarMsgRefNum); ok {
		total, ok1 := sm.TLVs.U8(smppwire.TagSarTotalSegments)
		seq, ok2 := sm.TLVs.U8(smppwire.TagSarSegmentSeqnum)
		if !ok1 || !ok2 || total == 0 || seq == 0 || seq > total {
			return nil, "", fmt.Errorf("sar_* TLVs incomplete or out of range")
		}
		ie := pdu.IE{ID: ieConcat16, Data: []byte{byte(ref >> 8), byte(ref), total, seq}}
		if ref <= 0xFF {
			// The sender sized its segments for the 8-bit IE.
			ie = pdu.IE{ID: ieConcat8, Data: []byte{byte(ref), total, seq}}
		}
		udh.IEs = append(udh.IEs, ie)
	}
	if dp, ok := sm.TLVs.U16(smppwire.TagDestinationPort); ok {
		sp, _ := sm.TLVs.U16(smppwire.TagSourcePort)
		udh.IEs = append(udh.IEs, pdu.IE{ID: iePorts16, Data: []byte{byte(dp >> 8), byte(dp), byte(sp >> 8), byte(sp)}})
	}
	d := &pdu.Deliver{Originator: oa, PID: sm.ProtocolID, DCS: dcsOf(sm.DataCoding), SCTS: l.cfg.Now(),
		StatusReportIndication: sm.RegisteredDelivery&3 != 0}
	hdrLen := udh.Len()
	if hdrLen+len(data) <= pdu.MaxUserData {
		d.UserData = pdu.UserData{HasUDH: hdrLen > 0, UDH: udh, Data: data}
		b, err := d.Marshal()
		return [][]byte{b}, sim, err
	}
	for _, ie := range udh.IEs {
		if ie.ID == ieConcat8 || ie.ID == ieConcat16 {
			return nil, "", fmt.Errorf("segment of %d octets will not fit one SMS", hdrLen+len(data))
		}
	}
	// A long message_payload: split it as the SMSC would have, with a
	// 16-bit reference of our own.
	room := pdu.MaxUserData - (&pdu.UDH{IEs: append(append([]pdu.IE(nil), udh.IEs...), pdu.IE{ID: ieConcat16, Data: make([]byte, 4)})}).Len()
	total := (len(data) + room - 1) / room
	if total > 255 {
		return nil, "", fmt.Errorf("message_payload of %d octets needs %d segments", len(data), total)
	}
	ref := uint16(l.inRef.Add(1))
	var out [][]byte
	for i := 0; i < total; i++ {
		h := pdu.UDH{IEs: append(append([]pdu.IE(nil), udh.IEs...),
			pdu.IE{ID: ieConcat16, Data: []byte{byte(ref >> 8), byte(ref), byte(total), byte(i + 1)}})}
		part := data[i*room : min((i+1)*room, len(data))]
		d.UserData = pdu.UserData{HasUDH: true, UDH: h, Data: part}
		b, err := d.Marshal()
		if err != nil {
			return nil, "", err
		}
		out = append(out, b)
	}
	return out, sim, nil
}

// simOf names our number a deliver_sm was addressed to: a configured source
// with the same digits, else "+digits" for an international number.
func (l *Link) simOf(ton byte, addr string) string {
	digits := addr
	if len(digits) > 0 && digits[0] == '+' {
		digits = digits[1:]
	}
	for k, a := range l.sources {
		if a.Addr == digits {
			return k
		}
	}
	if ton == smppwire.TONInternational && allDigits(digits) {
		return "+" + digits
	}
	return addr
}
