package queue

import (
	"errors"
	"slices"
)

// A Store shared by several nodes (cluster mode, redisstore.Queue): every
// node's Manager loads every record at start and learns of the others'
// Adds and outcomes through Refresh (the store's change stream calls it),
// so any node can answer Get and Wait. Sending is decided like this:
//
//   - The node the device talks to sends its requests: Seen marks the
//     device awake on that node only.
//   - Only a node for which Config.Holds is true wakes the device.
//   - The Store fences the rest: a Put of StateSending takes the request's
//     lease, and a Put is refused with ErrNotOwner when the record is final
//     or leased by another node. The Manager then leaves the request to
//     that node (ceded) and looks again after Config.LeaseRetry, so a
//     request whose sender died is sent by another node once the lease
//     expires — as the same attempt (same CoAP token and message ID), so a
//     device that had received it answers from its duplicate cache.

// holdsLocked reports whether this Manager may wake d. m.mu is held.
func (m *Manager) holdsLocked(d *device) bool {
	return m.cfg.Holds == nil || m.cfg.Holds(d.ep)
}

// ceded handles a Put(StateSending) refused with ErrNotOwner: a final
// record leaves the queue (its outcome is reported by Refresh); one leased
// by another node stays queued and is looked at again later. It returns
// whether the worker goes on draining d.
func (m *Manager) ceded(d *device, id uint64, cause error) bool {
	m.met.Add("ceded", 1)
	rec, err := m.cfg.Store.Get(id)
	final := err == nil && rec.State.Final() || errors.Is(err, ErrNotFound)
	m.mu.Lock()
	d.sending = 0
	if final {
		if len(d.queue) > 0 && d.queue[0].id == id {
			m.removeLocked(d, 0)
		}
		m.mu.Unlock()
		if rec != nil {
			m.resolve(rec)
		}
		return true
	}
	d.busy = false
	m.pushTimerLocked(timer{at: m.now() + int64(m.cfg.LeaseRetry), kind: timerRetry, dev: d})
	m.mu.Unlock()
	m.log.Debug("queue: request is being sent by another node", "id", id, "endpoint", d.ep, "err", cause)
	return false
}

// Refresh reads the records ids from the Store and brings this Manager in
// line with them: a live record it does not know is queued (another node
// added it), a final one leaves its queue and its waiters get the
// outcome. A record being sent by this Manager is left alone. The change
// stream of a shared Store calls it; with a Store of its own a Manager
// never needs it. It returns the first error of a record it could not
// read (the caller reads it again later: Resync); a zero Manager refuses
// with ErrNotCreated.
func (m *Manager) Refresh(ids ...uint64) error {
	if m.devices == nil {
		return ErrNotCreated
	}
	var first error
	for _, id := range ids {
		rec, err := m.cfg.Store.Get(id)
		switch {
		case errors.Is(err, ErrNotFound):
			m.drop(id, "")
		case err != nil:
			m.met.Add("store_errors", 1)
			if first == nil {
				first = err
			}
		case rec.State.Final():
			if m.drop(id, rec.Endpoint) {
				m.resolve(rec)
			} else {
				m.wakeWaiters(id)
			}
		default:
			m.adopt(rec)
		}
	}
	return first
}

// Resync walks the whole Store and refreshes every record (after the
// change stream may have missed entries). A zero Manager refuses with
// ErrNotCreated.
func (m *Manager) Resync() error {
	if m.devices == nil {
		return ErrNotCreated
	}
	var ids []uint64
	if err := m.cfg.Store.ForEach(func(r *Record) error {
		ids = append(ids, r.ID)
		return nil
	}); err != nil {
		return err
	}
	return m.Refresh(ids...)
}

// drop removes id from its device queue unless it is being sent here; it
// reports whether it was queued.
func (m *Manager) drop(id uint64, ep string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range m.devices {
		if ep != "" && d.ep != ep {
			continue
		}
		if d.sending == id {
			return false
		}
		if i := slices.IndexFunc(d.queue, func(e entry) bool { return e.id == id }); i >= 0 {
			m.removeLocked(d, i)
			return true
		}
	}
	return false
}

// resolve records a final outcome decided on another node: it joins the
// results (for pruning) and ends the waiters.
func (m *Manager) resolve(rec *Record) {
	m.mu.Lock()
	m.results = append(m.results, finished{id: rec.ID, at: m.now()})
	m.gauges()
	m.mu.Unlock()
	m.met.Add("resolved_elsewhere", 1)
	m.wakeWaiters(rec.ID)
}

func (m *Manager) wakeWaiters(id uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if w := m.waiters[id]; w != nil {
		close(w.ch)
		delete(m.waiters, id)
	}
}

// adopt queues a live record this Manager does not know yet.
func (m *Manager) adopt(rec *Record) {
	size := int32(len(EncodeRecord(nil, rec)))
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	d, err := m.deviceLocked(rec.Endpoint)
	if err != nil {
		return
	}
	if m.insertLocked(d, entry{id: rec.ID, size: size, expires: unixNano(rec.Expires)}) {
		m.met.Add("adopted", 1)
		m.scheduleLocked(d, m.now())
	}
}

// insertLocked queues e in id order, with its expiry timer, unless it is
// queued already; it reports whether it inserted.
func (m *Manager) insertLocked(d *device, e entry) bool {
	i := len(d.queue)
	for i > 0 && d.queue[i-1].id >= e.id {
		if d.queue[i-1].id == e.id {
			return false
		}
		i--
	}
	d.queue = slices.Insert(d.queue, i, e)
	d.bytes += int64(e.size)
	m.total++
	m.totalBytes += int64(e.size)
	m.pushTimerLocked(timer{at: e.expires, kind: timerExpire, id: e.id, dev: d})
	m.gauges()
	return true
}

// Reschedule looks again at every device with queued work (cluster mode:
// when a node goes down, Config.Holds changes for its devices, and the
// node that takes them over wakes them). A zero Manager has nothing to do.
func (m *Manager) Reschedule() {
	if m.devices == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for _, d := range m.devices {
		if len(d.queue) > 0 {
			m.scheduleLocked(d, now)
		}
	}
}

// unavailable reports whether err says the store is out of reach for now
// (an error with an Unavailable() bool method that says so, as
// redisstore's), so the request stays queued rather than failing.
func unavailable(err error) bool {
	var u interface{ Unavailable() bool }
	return errors.As(err, &u) && u.Unavailable()
}
