package modem

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Received is one SMS-DELIVER or SMS-STATUS-REPORT taken from the modem.
//
// The consumer must call Ack once it has stored the message durably: a
// stored message (+CMTI/+CDSI, or found by the start-up sweep) is deleted
// from the modem only then (+CMGD); a direct one (+CMT/+CDS under +CSMS=1)
// is acknowledged to the network (+CNMA) only then. Reject leaves a stored
// message in place for the next sweep and lets the network redeliver a
// direct one. Until one of them is called the message is not lost.
type Received struct {
	Kind    Kind
	TPDU    []byte    // the TPDU, without SMSC address
	SMSC    string    // the SMSC address in front of the TPDU, if any
	Storage string    // memory it was stored in ("SM", "ME", "SR"), "" for direct delivery
	Index   int       // storage index, -1 for direct delivery
	Modem   string    // name (MSISDN) of the modem that received it
	Time    time.Time // when the driver took it

	m    *Modem
	once sync.Once
}

// StatusReport parses the TPDU as an SMS-STATUS-REPORT.
func (r *Received) StatusReport() (StatusReport, error) { return ParseStatusReport(r.TPDU) }

// Ack confirms the consumer stored the message; see Received. Calling Ack
// or Reject again is a no-op.
func (r *Received) Ack(ctx context.Context) error { return r.finish(ctx, true) }

// Reject gives the message back; see Received.
func (r *Received) Reject(ctx context.Context) error { return r.finish(ctx, false) }

func (r *Received) finish(ctx context.Context, ok bool) error {
	var err error
	first := false
	r.once.Do(func() { first = true })
	if !first || r.m == nil {
		return nil
	}
	m := r.m
	if !ok {
		m.st.rejected.Add(1)
		if r.Index >= 0 {
			// The message stays in its slot, so the slot cannot have been
			// reused: an indication seen meanwhile was about this message,
			// which the next sweep delivers again.
			m.release(r.Storage, r.Index, false)
			return nil
		}
		if m.Profile().NeedsCNMA() {
			// RP-ERROR now (TS 27.005 §3.4.4, <n>=2 without PDU: TP-FCS
			// 'FF'), so the network retries without waiting for the ME's
			// acknowledgement timer and the ME keeps its routing.
			return m.cnma(ctx, "+CNMA=2")
		}
		return nil
	}
	if r.Index >= 0 {
		err = m.deleteStored(ctx, r.Storage, r.Index)
		m.unpend(r.Storage, r.Index) // on failure a later sweep delivers it again
	} else if m.Profile().NeedsCNMA() {
		err = m.cnma(ctx, "+CNMA")
	}
	if err == nil {
		m.st.acked.Add(1)
	}
	return err
}

// unpend ends the hand-out of the stored message in mem/idx. If the slot
// was announced or listed again while it was handed out, the URC worker
// reads it again: once the +CMGD of an Ack has freed a slot, the modem may
// store the next message in it and announce it with +CMTI before the
// driver has seen the OK of the +CMGD, and that +CMTI found the slot still
// claimed. Without the second read the new message would sit on the SIM
// until the next sweep (the health poll, or never when it is disabled).
func (m *Modem) unpend(mem string, idx int) { m.release(mem, idx, true) }

// release is unpend; with reread false a mark left by a second
// announcement is dropped (the slot still holds the same message).
func (m *Modem) release(mem string, idx int, reread bool) {
	k := storeKey{mem, idx}
	m.mu.Lock()
	again := m.pending[k]
	delete(m.pending, k)
	if again && reread {
		m.recheck[k] = struct{}{}
	}
	m.mu.Unlock()
	if again && reread {
		select {
		case m.reread <- struct{}{}:
		default:
		}
	}
}

// rereadReleased reads again the slots that unpend queued; it runs on the
// URC worker, which may wait on a full inbox (an Ack must not).
func (m *Modem) rereadReleased() {
	m.mu.Lock()
	keys := make([]storeKey, 0, len(m.recheck))
	for k := range m.recheck {
		keys = append(keys, k)
	}
	clear(m.recheck)
	m.mu.Unlock()
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].mem != keys[j].mem {
			return keys[i].mem < keys[j].mem
		}
		return keys[i].idx < keys[j].idx
	})
	for _, k := range keys {
		if err := m.readStored(m.life, k.mem, k.idx); err != nil && !errors.Is(err, ErrClosed) {
			m.log.Warn("modem: re-read of stored message failed; the next sweep retries", "modem", m.Name(), "mem", k.mem, "index", k.idx, "err", err)
		}
	}
}

func (m *Modem) cnma(ctx context.Context, cmd string) error {
	s, err := m.current()
	if err != nil {
		return err
	}
	_, err = m.exec(ctx, s, cmd, "", m.Profile().CommandTimeout)
	var cms *CMSError
	if errors.As(err, &cms) && cms.Code == 340 {
		return fmt.Errorf("modem: acknowledgement came too late, the network will redeliver: %w", err)
	}
	return err
}

// withMem runs f with mem1 switched to mem (when it is not the preferred
// storage) and switches back afterwards.
func (m *Modem) withMem(ctx context.Context, s *session, mem string, f func() error) error {
	m.memMu.Lock()
	defer m.memMu.Unlock()
	p := m.Profile()
	if mem == "" || mem == p.Storage {
		return f()
	}
	if _, err := m.exec(ctx, s, fmt.Sprintf(`+CPMS="%s"`, mem), "", p.CommandTimeout); err != nil {
		return err
	}
	ferr := f()
	_, err := m.exec(ctx, s, fmt.Sprintf(`+CPMS="%s","%s","%s"`, p.Storage, p.Storage, p.Storage), "", p.CommandTimeout)
	if ferr != nil {
		return ferr
	}
	return err
}

func (m *Modem) deleteStored(ctx context.Context, mem string, idx int) error {
	s, err := m.current()
	if err != nil {
		return err
	}
	return m.withMem(ctx, s, mem, func() error {
		_, err := m.exec(ctx, s, fmt.Sprintf("+CMGD=%d", idx), "", m.Profile().CommandTimeout)
		return err
	})
}

// queueURC is the at indication handler; it runs on a goroutine of the at
// engine and hands the lines to the URC worker.
func (m *Modem) queueURC(gen uint64, lines []string) {
	select {
	case m.urcs <- urc{gen: gen, lines: lines}:
		m.metrics.Queue(m.Name(), "urc", len(m.urcs))
	case <-m.closing:
	default:
		// A dropped +CMTI/+CDSI is found again by the next sweep; a
		// dropped +CMT is not acknowledged, so the network redelivers it.
		m.st.dropURC.Add(1)
		m.emit(EventDropped, nil, "URC queue full: "+clip(lines[0]))
	}
}

func (m *Modem) urcWorker() {
	defer m.wg.Done()
	for {
		select {
		case <-m.closing:
			return
		case u := <-m.urcs:
			m.handleURC(u)
		case <-m.reread:
			m.rereadReleased()
		}
	}
}

func (m *Modem) handleURC(u urc) {
	ctx := m.life
	if len(u.lines) == 0 {
		return
	}
	head := strings.TrimSpace(u.lines[0])
	switch {
	case strings.HasPrefix(head, "+CMTI:"), strings.HasPrefix(head, "+CDSI:"):
		var si StoredIndication
		var err error
		if strings.HasPrefix(head, "+CMTI:") {
			si, err = ParseCMTI(head)
		} else {
			si, err = ParseCDSI(head)
		}
		if err != nil {
			m.emit(EventBadInput, err, "URC skipped")
			return
		}
		if si.Storage != m.Profile().Storage {
			m.mu.Lock()
			if len(m.stores) < 8 {
				m.stores[si.Storage] = true
			}
			m.mu.Unlock()
		}
		if err := m.readStored(ctx, si.Storage, si.Index); err != nil && !errors.Is(err, ErrClosed) {
			m.log.Warn("modem: read of stored message failed; the next sweep retries", "modem", m.Name(), "mem", si.Storage, "index", si.Index, "err", err)
		}
	case strings.HasPrefix(head, "+CMT:"), strings.HasPrefix(head, "+CDS:"):
		var n int
		var err error
		if strings.HasPrefix(head, "+CMT:") {
			n, err = ParseCMT(head)
		} else {
			n, err = ParseCDS(head)
		}
		if err == nil && len(u.lines) < 2 {
			err = fmt.Errorf("%w: URC without PDU line", ErrBadResponse)
		}
		if err != nil {
			m.emit(EventBadInput, err, "URC skipped")
			return
		}
		smsc, tpdu, err := SplitPDU(u.lines[1], n)
		if err != nil {
			// Not acknowledged: the network sends it again.
			m.emit(EventBadInput, err, "direct PDU skipped")
			return
		}
		m.deliver(ctx, &Received{Kind: TPDUKind(tpdu), TPDU: tpdu, SMSC: smsc, Index: -1})
	}
}

// deliver hands r to the consumer, waiting while the inbox is full.
func (m *Modem) deliver(ctx context.Context, r *Received) bool {
	r.m = m
	r.Modem = m.Name()
	r.Time = time.Now()
	select {
	case m.inbox <- r:
	case <-ctx.Done():
		return false
	}
	if r.Kind == KindStatusReport {
		m.st.sr.Add(1)
	} else {
		m.st.recv.Add(1)
	}
	m.metrics.Received(r.Modem, r.Kind)
	m.metrics.Queue(r.Modem, "inbox", len(m.inbox))
	return true
}

// claim marks a stored message as handed out; false if it already is, in
// which case the slot is marked to be read again once released (it may by
// then hold a new message: see unpend).
func (m *Modem) claim(mem string, idx int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := storeKey{mem, idx}
	if _, out := m.pending[k]; out {
		m.pending[k] = true
		return false
	}
	if len(m.pending) >= 65536 {
		return false
	}
	m.pending[k] = false
	return true
}

// readStored reads one stored message with +CMGR and delivers it.
func (m *Modem) readStored(ctx context.Context, mem string, idx int) error {
	if !m.claim(mem, idx) {
		return nil
	}
	s, err := m.current()
	if err != nil {
		m.unpend(mem, idx)
		return err
	}
	var info []string
	err = m.withMem(ctx, s, mem, func() error {
		var e error
		info, e = m.exec(ctx, s, fmt.Sprintf("+CMGR=%d", idx), "", m.Profile().CommandTimeout)
		return e
	})
	if err != nil {
		m.unpend(mem, idx)
		var cms *CMSError
		if errors.As(err, &cms) && cms.Code == 321 {
			return nil // empty slot: already read and deleted
		}
		return err
	}
	for i, l := range info {
		if !strings.HasPrefix(l, "+CMGR:") {
			continue
		}
		h, perr := ParseCMGR(l)
		if perr == nil && i+1 >= len(info) {
			perr = fmt.Errorf("%w: +CMGR without PDU line", ErrBadResponse)
		}
		if perr != nil {
			m.unpend(mem, idx)
			m.emit(EventBadInput, perr, "stored message skipped")
			return perr
		}
		return m.deliverStored(ctx, mem, idx, h.Stat, h.Length, info[i+1])
	}
	m.unpend(mem, idx) // empty slot
	return nil
}

func (m *Modem) deliverStored(ctx context.Context, mem string, idx int, stat MessageStat, length int, pduLine string) error {
	if !stat.Received() {
		m.unpend(mem, idx) // one of ours waiting to be sent: not ours to take
		return nil
	}
	smsc, tpdu, err := SplitPDU(pduLine, length)
	if err != nil {
		m.unpend(mem, idx)
		m.emit(EventBadInput, err, fmt.Sprintf("stored message %s/%d unreadable, deleted", mem, idx))
		if derr := m.deleteStored(ctx, mem, idx); derr != nil {
			return derr
		}
		return err
	}
	if !m.deliver(ctx, &Received{Kind: TPDUKind(tpdu), TPDU: tpdu, SMSC: smsc, Storage: mem, Index: idx}) {
		m.unpend(mem, idx)
		return ctx.Err()
	}
	return nil
}

// Sweep lists every message stored in the preferred storage (and in other
// storages seen in +CMTI/+CDSI) with +CMGL and delivers those not already
// handed out. It runs after every open and from the health poll. Like all
// deliveries it waits while the inbox is full, so a consumer must not call
// it from the goroutine that drains Received without a deadline in ctx.
func (m *Modem) Sweep(ctx context.Context) error {
	p := m.Profile()
	mems := []string{p.Storage}
	m.mu.Lock()
	for k := range m.stores {
		mems = append(mems, k)
	}
	m.mu.Unlock()
	var errs []error
	for _, mem := range mems {
		if err := m.sweepMem(ctx, mem); err != nil {
			errs = append(errs, fmt.Errorf("sweep %s: %w", mem, err))
		}
	}
	return errors.Join(errs...)
}

func (m *Modem) sweepMem(ctx context.Context, mem string) error {
	s, err := m.current()
	if err != nil {
		return err
	}
	// The entries are claimed under memMu, right after +CMGL, and delivered
	// after it is released. An Ack deletes under memMu and releases its
	// claim after that, so a slot listed here cannot be acknowledged,
	// deleted and filled with a newer message before it is claimed: the
	// listed PDU is still the one in the slot. (Claiming after memMu was
	// released let an Ack and a new message slip in between; the old PDU
	// was then delivered again with the slot's index, and acknowledging
	// that duplicate deleted the new message unread.)
	var claimed []cmglEntry
	err = m.withMem(ctx, s, mem, func() error {
		info, e := m.exec(ctx, s, "+CMGL=4", "", m.Profile().CommandTimeout)
		if e != nil {
			return e
		}
		for _, ent := range parseCMGLList(info) {
			if ent.err != nil {
				m.emit(EventBadInput, ent.err, "+CMGL entry skipped")
				continue
			}
			if m.claim(mem, ent.h.Index) {
				claimed = append(claimed, ent)
			}
		}
		return nil
	})
	if err != nil {
		for _, e := range claimed {
			m.unpend(mem, e.h.Index)
		}
		return err
	}
	for i, e := range claimed {
		if err := m.deliverStored(ctx, mem, e.h.Index, e.h.Stat, e.h.Length, e.pdu); err != nil && ctx.Err() != nil {
			for _, rest := range claimed[i+1:] {
				m.unpend(mem, rest.h.Index)
			}
			return err
		}
	}
	return nil
}

type cmglEntry struct {
	h   CMGLHeader
	pdu string
	err error
}

// parseCMGLList pairs +CMGL header lines with the PDU line that follows
// each; URC lines mixed in by the at engine are skipped.
func parseCMGLList(info []string) []cmglEntry {
	var out []cmglEntry
	for i := 0; i < len(info); i++ {
		l := strings.TrimSpace(info[i])
		if !strings.HasPrefix(l, "+CMGL:") {
			continue
		}
		h, err := ParseCMGL(l)
		if err != nil {
			out = append(out, cmglEntry{err: err})
			continue
		}
		j := i + 1
		for j < len(info) && isURC(strings.TrimSpace(info[j])) {
			j++
		}
		if j >= len(info) || strings.HasPrefix(info[j], "+CMGL:") {
			out = append(out, cmglEntry{err: fmt.Errorf("%w: +CMGL entry %d without PDU", ErrBadResponse, h.Index)})
			continue
		}
		out = append(out, cmglEntry{h: h, pdu: info[j]})
		i = j
	}
	return out
}
