package modem

import (
	"context"
	"errors"
	"fmt"
	"sort"
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
//
// The zero Received holds no message: Ack and Reject do nothing and return
// nil.
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
	} else if p := m.Profile(); p.NeedsCNMA() {
		err = m.cnma(ctx, p.ackCommand())
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
	_, err = m.exec(ctx, s, cmd, m.Profile().CommandTimeout)
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
	if _, err := m.exec(ctx, s, fmt.Sprintf(`+CPMS="%s"`, mem), p.CommandTimeout); err != nil {
		return err
	}
	ferr := f()
	_, err := m.exec(ctx, s, p.cpmsSet(), p.CommandTimeout)
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
		_, err := m.exec(ctx, s, fmt.Sprintf("+CMGD=%d", idx), m.Profile().CommandTimeout)
		return err
	})
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
