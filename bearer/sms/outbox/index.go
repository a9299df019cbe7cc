package outbox

import (
	"sort"
	"time"
)

// The schedule index: o.sched holds every entry's schedule, o.pendTo the
// IDs of each destination's pending entries in ID order, so that Due and
// NextDue look only at each destination's head without sorting or
// allocating per call (a backlog of 10,000 wake-ups is scanned about a
// hundred times a second at 100 SMS/s). Both are guarded by o.mu.

// setSchedLocked records id's schedule and keeps o.pendTo in step.
func (o *Outbox) setSchedLocked(id uint64, s *sched) {
	if old, ok := o.sched[id]; ok && old.pending && (!s.pending || old.to != s.to) {
		o.unpendLocked(id, old.to)
	}
	if s.pending && (o.sched[id] == nil || !o.sched[id].pending || o.sched[id].to != s.to) {
		l := o.pendTo[s.to]
		i := sort.Search(len(l), func(i int) bool { return l[i] >= id })
		if i == len(l) || l[i] != id {
			l = append(l, 0)
			copy(l[i+1:], l[i:])
			l[i] = id
		}
		o.pendTo[s.to] = l
	}
	o.sched[id] = s
	if !s.expires.IsZero() && !o.nextExpiry.IsZero() && s.expires.Before(o.nextExpiry) {
		o.nextExpiry = s.expires
	}
}

func (o *Outbox) unpendLocked(id uint64, to string) {
	l := o.pendTo[to]
	for i, x := range l {
		if x == id {
			l = append(l[:i], l[i+1:]...)
			break
		}
	}
	if len(l) == 0 {
		delete(o.pendTo, to)
	} else {
		o.pendTo[to] = l
	}
}

// forgetLocked drops id from the schedule; seq is the transaction that
// removed it, so that a late post-processing of an older transaction
// cannot bring it back.
func (o *Outbox) forgetLocked(id uint64, seq uint64) {
	if s, ok := o.sched[id]; ok {
		o.bytes -= s.size
		if s.pending {
			o.unpendLocked(id, s.to)
		}
		delete(o.sched, id)
	}
	if seq > 0 {
		o.gone[id] = goneMark{seq: seq, at: o.now()}
	}
}

// stale reports whether the result of transaction seq on id is older than
// what was applied already (a removal, or a later update).
func (o *Outbox) staleLocked(id, seq uint64) bool {
	if g, ok := o.gone[id]; ok && g.seq >= seq {
		return true
	}
	if s, ok := o.sched[id]; ok && s.seq > seq {
		return true
	}
	return false
}

type goneMark struct {
	seq uint64
	at  time.Time
}

// pruneGoneLocked forgets removal marks older than a minute: the
// post-processing they guard against follows its commit within
// microseconds.
func (o *Outbox) pruneGoneLocked(now time.Time) {
	if len(o.gone) < 1024 {
		return
	}
	for id, g := range o.gone {
		if now.Sub(g.at) > time.Minute {
			delete(o.gone, id)
		}
	}
}

// headsLocked calls f with the oldest pending entry of each destination.
func (o *Outbox) headsLocked(f func(id uint64, s *sched)) {
	for _, l := range o.pendTo {
		if len(l) > 0 {
			f(l[0], o.sched[l[0]])
		}
	}
}

// earlier orders by expiry, then ID.
func earlier(a *sched, aid uint64, b *sched, bid uint64) bool {
	if !a.expires.Equal(b.expires) {
		return a.expires.Before(b.expires)
	}
	return aid < bid
}
