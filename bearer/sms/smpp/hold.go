package smpp

import (
	"sync"
	"time"

	"github.com/m2mbearer/m2mbearer/internal/smppwire"
)

// maxHeld bounds the receipts held at once for a correlation not stored
// yet. Each holds a window slot of the SMSC's receiver session, so the
// SMSC's own window keeps the number far below it in practice.
const maxHeld = 256

// flight tracks the submits whose correlation is not stored yet: a token is
// taken before submit_sm is written and given back once the correlation of
// its message_id is stored (or the submit failed).
//
// A receipt can overtake the store of its own message_id: on one
// connection the submit_sm_resp and the receipt come back to back; with a
// transmitter and a receiver bind the receipt may even come on the
// receiver before the submit_sm_resp reaches us on the transmitter. Such a
// receipt is unknown when it arrives, but its submit is in flight then; once
// every submit in flight at its arrival has ended, its correlation is stored
// or never will be. The link holds it until then (ReceiptHold at most).
type flight struct {
	mu      sync.Mutex
	next    uint64
	open    map[uint64]struct{}
	changed chan struct{} // closed (and replaced) when a submit ends
}

func newFlight() *flight {
	return &flight{open: map[uint64]struct{}{}, changed: make(chan struct{})}
}

func (f *flight) start() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	f.open[f.next] = struct{}{}
	return f.next
}

func (f *flight) end(tok uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.open, tok)
	close(f.changed)
	f.changed = make(chan struct{})
}

// snapshot returns the newest token taken so far, and whether any submit
// is in flight now.
func (f *flight) snapshot() (uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.next, len(f.open) > 0
}

// settled reports whether every submit that took a token up to snap has
// ended; otherwise it returns a channel closed at the next end.
func (f *flight) settled(snap uint64) (bool, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for t := range f.open {
		if t <= snap {
			return false, f.changed
		}
	}
	return true, nil
}

// holdReceipt holds a receipt whose message_id is not stored while submits
// are in flight, and hands it on (or answers it as unknown) once they have
// ended, its correlation was stored, or ReceiptHold passed. It answers the
// deliver_sm itself. It returns false, holding nothing, when maxHeld
// receipts are held already.
func (l *Link) holdReceipt(s *session, seq uint32, r *smppwire.Receipt, snap uint64) bool {
	if l.held.Add(1) > maxHeld {
		l.held.Add(-1)
		l.c.receiptsHoldFull.Add(1)
		l.log.Warn("smpp: too many receipts held for their message_id; this one is taken as unknown", "id", r.ID, "held", maxHeld)
		return false
	}
	l.c.receiptsHeld.Add(1)
	v, _ := l.state.storing.LoadOrStore(r.ID, make(chan struct{}))
	stored := v.(chan struct{})
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer l.held.Add(-1)
		// Never stored: the channel must not stay in the map.
		defer l.state.storing.CompareAndDelete(r.ID, stored)
		t := time.NewTimer(l.cfg.ReceiptHold)
		defer t.Stop()
	wait:
		for {
			done, changed := l.state.flight.settled(snap)
			if done {
				break
			}
			select {
			case <-stored:
				break wait
			case <-changed:
			case <-t.C:
				l.log.Warn("smpp: receipt held for its message_id until the bound", "id", r.ID, "hold", l.cfg.ReceiptHold)
				break wait
			case <-s.done:
				return // unanswered: the SMSC delivers it again after the next bind
			case <-l.ctx.Done():
				return
			}
		}
		c, err := l.state.st.lookup(r.ID)
		tpdus, sim, onAck := l.receiptTPDUs(r, c, err)
		l.handOn(s, seq, tpdus, sim, onAck)
	}()
	return true
}
