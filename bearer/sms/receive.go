package sms

import (
	"context"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
	"github.com/m2mbearer/m2mbearer/bearer/sms/pdu"
)

const ackTimeout = 30 * time.Second

// receiveLoop takes TPDUs from the transport until the bearer closes, and
// sweeps expired reassembly sets.
func (b *Bearer) receiveLoop() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	in := b.t.Inbound()
	for {
		wait := time.Minute
		if t, ok := b.reasm.NextDeadline(); ok {
			wait = max(t.Sub(b.now()), time.Millisecond)
		}
		timer.Reset(wait)
		select {
		case <-b.ctx.Done():
			return
		case msg, ok := <-in:
			if !ok {
				b.log.Warn("sms: transport closed its inbound channel")
				<-b.ctx.Done()
				return
			}
			b.handle(msg)
		case <-timer.C:
			b.reasm.Sweep()
			b.forgetDropped()
		}
	}
}

func (b *Bearer) ack(msg Inbound) {
	ctx, cancel := context.WithTimeout(context.Background(), ackTimeout)
	defer cancel()
	if err := msg.ack(ctx); err != nil {
		// Not acknowledged: the modem keeps it (or the network redelivers);
		// it will come again and be deduplicated by the reassembler or the
		// CoAP layer.
		b.log.Warn("sms: acknowledging to the modem failed", "sim", msg.SIM, "err", err)
	}
}

func (b *Bearer) reject(msg Inbound) {
	ctx, cancel := context.WithTimeout(context.Background(), ackTimeout)
	defer cancel()
	if err := msg.reject(ctx); err != nil {
		b.log.Warn("sms: rejecting to the modem failed", "sim", msg.SIM, "err", err)
	}
}

// handle processes one TPDU: status reports go to the outbox; deliveries
// from configured peers are stored, acknowledged, reassembled and handed on.
func (b *Bearer) handle(msg Inbound) {
	inc, err := pdu.Decode(msg.TPDU)
	if err != nil {
		b.c.droppedUndecodable.Add(1)
		b.log.Warn("sms: undecodable TPDU dropped", "sim", msg.SIM, "len", len(msg.TPDU), "err", err)
		b.ack(msg)
		return
	}
	if sr := inc.StatusReport; sr != nil {
		b.c.statusReports.Add(1)
		st := outbox.ReportDelivered
		switch pdu.ClassifyStatus(sr.Status) {
		case pdu.StatusPending:
			st = outbox.ReportTemporary
		case pdu.StatusFailed:
			st = outbox.ReportPermanent
		}
		sim := msg.SIM
		if a, err := b.parse(sim); err == nil {
			sim = a.String()
		}
		var cause error
		if st == outbox.ReportPermanent {
			cause = &DeliveryError{Recipient: sr.Recipient.String(), MR: sr.MR, Status: sr.Status}
		}
		to := ""
		if a, err := b.parse(sr.Recipient.String()); err == nil {
			to = a.String()
		}
		if err := b.worker.HandleReportTo(sim, to, sr.MR, st, cause); err != nil {
			b.log.Error("sms: recording status report", "sim", sim, "mr", sr.MR, "err", err)
			b.reject(msg)
			return
		}
		b.ack(msg)
		return
	}
	d := inc.Deliver
	from, err := b.parse(d.Originator.String())
	if err != nil {
		b.c.droppedUnknownPeer.Add(1)
		b.log.Warn("sms: SMS from an unusable originator dropped", "originator", d.Originator.String(), "err", err)
		b.ack(msg)
		return
	}
	if _, ok := b.peer(from); !ok {
		// LwM2M SMS binding: an SMS from a number that is not configured
		// MUST be ignored.
		b.c.droppedUnknownPeer.Add(1)
		b.log.Info("sms: SMS from an unconfigured number ignored", "from", from.String(), "sim", msg.SIM)
		b.ack(msg)
		return
	}
	if _, err := pdu.PartOf(d); err != nil {
		b.c.droppedNotBinary.Add(1)
		text, _ := d.Text()
		b.log.Warn("sms: non-binary SMS is not CoAP, dropped", "from", from.String(), "err", err, "text", text)
		b.ack(msg)
		return
	}
	id, err := b.st.storeSegment(msg.SIM, msg.TPDU)
	if err != nil {
		b.log.Error("sms: storing received SMS failed; left with the modem", "from", from.String(), "err", err)
		b.reject(msg)
		return
	}
	b.ack(msg)
	b.c.segmentsReceived.Add(1)
	b.feed(storedSegment{id: id, sim: msg.SIM, tpdu: msg.TPDU}, d, from)
}

// replay feeds the stored segments of a previous run to the reassembler.
func (b *Bearer) replay() error {
	segs, err := b.st.segments()
	if err != nil {
		return err
	}
	for _, s := range segs {
		inc, err := pdu.Decode(s.tpdu)
		if err != nil || inc.Deliver == nil {
			b.log.Error("sms: stored segment unreadable, removed", "id", s.id, "err", err)
			b.st.deleteSegments([]uint64{s.id})
			continue
		}
		from, err := b.parse(inc.Deliver.Originator.String())
		if err != nil {
			b.st.deleteSegments([]uint64{s.id})
			continue
		}
		b.feed(s, inc.Deliver, from)
	}
	if len(segs) > 0 {
		b.log.Info("sms: replayed stored segments", "count", len(segs), "pending_read", len(b.readq))
	}
	return nil
}

func (b *Bearer) feed(s storedSegment, d *pdu.Deliver, from Addr) {
	part, err := pdu.PartOf(d)
	if err != nil {
		b.st.deleteSegments([]uint64{s.id})
		return
	}
	part.Originator = from.String()
	b.usage.heard(from, time.Now()) // LastHeard, on the message layer's clock
	dg, err := b.reasm.Add(part)
	b.forgetDropped()
	if err != nil {
		b.c.reassemblyDropped.Add(1)
		b.log.Warn("sms: segment refused by reassembly", "from", from.String(), "err", err)
		b.st.deleteSegments([]uint64{s.id})
		return
	}
	if dg == nil {
		if !part.Concat.IsZero() {
			k := pdu.SetKey{Originator: part.Originator, Ref: part.Concat.Ref, Ref16: part.Concat.Ref16, Total: part.Concat.Total}
			b.setIDs[k] = append(b.setIDs[k], s.id)
		}
		return
	}
	ids := append(b.setIDs[dg.Key], s.id)
	delete(b.setIDs, dg.Key)
	b.deliver(dg, from, s.sim, ids)
}

func (b *Bearer) deliver(dg *pdu.Datagram, from Addr, sim string, ids []uint64) {
	trig, err := pdu.ParseTrigger(dg.Ports, dg.Data)
	if err != nil {
		b.c.droppedBadFraming.Add(1)
		b.log.Warn("sms: bad framing, datagram dropped", "from", from.String(), "err", err)
		b.st.deleteSegments(ids)
		return
	}
	peer, _ := b.peer(from)
	if err := checkMode(peer.Security, trig.CoAP); err != nil {
		b.c.droppedSecurity.Add(1)
		b.log.Warn("sms: datagram in the wrong security mode dropped", "from", from.String(), "mode", peer.Security.String())
		b.st.deleteSegments(ids)
		return
	}
	if trig.Form == pdu.FormWAPPush {
		b.c.wapPushReceived.Add(1)
	}
	r := received{data: append([]byte(nil), trig.CoAP...), from: from, sim: sim, form: trig.Form}
	b.usage.received(from, r.data, max(dg.Segments, 1))
	if n, loop := b.guard.check(from, true, r.data, b.now()); loop {
		b.c.loopDropped.Add(1)
		b.loopAlert(LoopAlert{Peer: from.String(), Received: true, Count: n, Window: b.guard.window})
		b.st.deleteSegments(ids)
		return
	}
	q, gone := b.queueFor(peer.Security)
	select {
	case <-gone:
		b.c.heldForRestart.Add(1) // the reader is gone: still stored, replayed at the next start
		return
	default:
	}
	select {
	case q <- r:
	case <-gone:
		b.c.heldForRestart.Add(1) // the reader is gone: still stored, replayed at the next start
		return
	case <-b.ctx.Done():
		return // still stored: replayed after the next start
	}
	b.c.datagramsReceived.Add(1)
	if err := b.st.deleteSegments(ids); err != nil {
		b.log.Error("sms: removing handed-on segments", "err", err)
	}
}

func (b *Bearer) onDrop(d pdu.Dropped) {
	b.c.reassemblyDropped.Add(1)
	b.log.Warn("sms: incomplete concatenated SMS given up", "set", d.Key.String(), "reason", d.Reason.String(),
		"segments", d.Received, "bytes", d.Bytes, "age", d.Age)
	b.dropMu.Lock()
	b.drops = append(b.drops, d.Key)
	b.dropMu.Unlock()
}

// forgetDropped deletes the stored segments of sets the reassembler gave up.
func (b *Bearer) forgetDropped() {
	b.dropMu.Lock()
	drops := b.drops
	b.drops = nil
	b.dropMu.Unlock()
	for _, k := range drops {
		if err := b.st.deleteSegments(b.setIDs[k]); err != nil {
			b.log.Error("sms: removing dropped segments", "err", err)
		}
		delete(b.setIDs, k)
	}
}

// DeliveryError is the error of a datagram whose status report said the SMSC
// gave up (TS 23.040 §9.2.3.15 permanent or final temporary failure).
type DeliveryError struct {
	Recipient string
	MR        uint8
	Status    byte
}

func (e *DeliveryError) Error() string {
	return "sms: SMSC reported delivery failure to " + e.Recipient + " (TP-ST 0x" + hex2(e.Status) + ")"
}

// Retryable reports false: the SMSC gave up.
func (e *DeliveryError) Retryable() bool { return false }

func hex2(b byte) string {
	const digits = "0123456789ABCDEF"
	return string([]byte{digits[b>>4], digits[b&15]})
}
