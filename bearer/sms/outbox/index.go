package outbox

import (
	"sort"
	"time"
)

// The schedule index, guarded by o.mu:
//   - o.sched: every entry's schedule;
//   - o.pendTo: each destination's pending entry IDs in ID order (only the
//     first, the head, may be sent: a peer's datagrams leave in order);
//   - o.heads: the heads of all destinations, sorted by (expiry, ID), with
//     their NextTry, so that Due finds the earliest deadlines without
//     touching the others and NextDue scans a flat slice. A backlog of
//     10,000 wake-ups is looked at a hundred times a second at 100 SMS/s:
//     scanning maps there cost two thirds of the CPU and held o.mu.

// headRef is one destination's head in o.heads.
type headRef struct {
	id      uint64
	expires time.Time
	nextTry time.Time
	to      string
}

// before orders head references by expiry, then ID.
func before(expires time.Time, id uint64, h headRef) bool {
	if !expires.Equal(h.expires) {
		return expires.Before(h.expires)
	}
	return id < h.id
}

func (o *Outbox) headOf(to string) uint64 {
	if l := o.pendTo[to]; len(l) > 0 {
		return l[0]
	}
	return 0
}

func (o *Outbox) addHead(id uint64, s *sched) {
	i := sort.Search(len(o.heads), func(i int) bool { return before(s.expires, id, o.heads[i]) })
	o.heads = append(o.heads, headRef{})
	copy(o.heads[i+1:], o.heads[i:])
	o.heads[i] = headRef{id: id, expires: s.expires, nextTry: s.nextTry, to: s.to}
}

func (o *Outbox) removeHead(id uint64, s *sched) {
	i := sort.Search(len(o.heads), func(i int) bool {
		return !before(o.heads[i].expires, o.heads[i].id, headRef{id: id, expires: s.expires})
	})
	if i < len(o.heads) && o.heads[i].id == id {
		o.heads = append(o.heads[:i], o.heads[i+1:]...)
	}
}

// setSchedLocked records id's schedule (nil: forget it) and keeps o.pendTo
// and o.heads in step.
func (o *Outbox) setSchedLocked(id uint64, s *sched) {
	old := o.sched[id]
	var tos []string
	if old != nil {
		tos = append(tos, old.to)
	}
	if s != nil && (old == nil || s.to != old.to) {
		tos = append(tos, s.to)
	}
	type headBefore struct {
		id uint64
		s  *sched
	}
	hb := make([]headBefore, len(tos))
	for i, to := range tos {
		if h := o.headOf(to); h != 0 {
			hs := o.sched[h]
			if h == id {
				hs = old
			}
			hb[i] = headBefore{h, hs}
		}
	}
	if old != nil && old.pending {
		o.unpendLocked(id, old.to)
	}
	if s != nil && s.pending {
		l := o.pendTo[s.to]
		i := sort.Search(len(l), func(i int) bool { return l[i] >= id })
		if i == len(l) || l[i] != id {
			l = append(l, 0)
			copy(l[i+1:], l[i:])
			l[i] = id
		}
		o.pendTo[s.to] = l
	}
	if s == nil {
		delete(o.sched, id)
	} else {
		o.sched[id] = s
		if !s.expires.IsZero() && !o.nextExpiry.IsZero() && s.expires.Before(o.nextExpiry) {
			o.nextExpiry = s.expires
		}
	}
	for i, to := range tos {
		if hb[i].id != 0 {
			o.removeHead(hb[i].id, hb[i].s)
		}
		if h := o.headOf(to); h != 0 {
			o.addHead(h, o.sched[h])
		}
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
		o.setSchedLocked(id, nil)
	}
	if seq > 0 {
		o.gone[id] = goneMark{seq: seq, at: o.now()}
	}
}

// staleLocked reports whether the result of transaction seq on id is
// older than what was applied already (a removal, or a later update).
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
