package queue

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"
)

// ---- scheduling ----

// scheduleLocked decides what the device needs next: a drain if it is
// awake with work, a wake-up if it is asleep with work and wakeable.
func (m *Manager) scheduleLocked(d *device, now int64) {
	if d.busy || d.ready || len(d.queue) == 0 || m.closed {
		return
	}
	if d.awakeUntil > now {
		m.readyLocked(d)
		return
	}
	if m.cfg.Waker == nil || !d.cfg.Wake.Wakeable() || d.waiting || !m.holdsLocked(d) {
		return
	}
	if next := d.lastWake + int64(m.cfg.Wake.MinInterval); d.lastWake != 0 && next > now {
		// Rate limit: wake at the earliest allowed time.
		d.waiting, d.wakeDue = true, next
		m.pushTimerLocked(timer{at: next, kind: timerWake, dev: d})
		return
	}
	m.readyLocked(d)
}

func (m *Manager) readyLocked(d *device) {
	d.ready = true
	m.readyList = append(m.readyList, d)
	select {
	case m.readyC <- struct{}{}:
	default:
	}
}

func (m *Manager) pushTimerLocked(t timer) {
	first := len(m.timers) == 0 || t.at < m.timers[0].at
	m.timers.push(t)
	if first {
		select {
		case m.kickC <- struct{}{}:
		default:
		}
	}
}

func (m *Manager) removeLocked(d *device, idx int) {
	e := d.queue[idx]
	d.queue = slices.Delete(d.queue, idx, idx+1)
	d.bytes -= int64(e.size)
	m.total--
	m.totalBytes -= int64(e.size)
	m.gauges()
}

func (m *Manager) gauges() {
	m.met.Set("depth", float64(m.total))
	m.met.Set("bytes", float64(m.totalBytes))
	m.met.Set("devices", float64(len(m.devices)))
	m.met.Set("results", float64(len(m.results)))
}

// finish stores the final state of rec (already removed from its device
// queue) and reports it.
func (m *Manager) finish(rec *Record, st State, kind ErrKind, msg string, cause error) {
	now := m.clk.Now()
	rec.State, rec.ErrKind, rec.ErrMsg, rec.Finished = st, kind, msg, now
	if cause != nil {
		// Kept before the final state is stored: a Wait that finds the
		// stored final state then also finds its cause.
		m.mu.Lock()
		m.causes[rec.ID] = cause
		m.causeOrder = append(m.causeOrder, rec.ID)
		if len(m.causeOrder) > maxCauses {
			delete(m.causes, m.causeOrder[0])
			m.causeOrder = m.causeOrder[1:]
		}
		m.mu.Unlock()
	}
	if err := m.cfg.Store.Put(rec); errors.Is(err, ErrNotOwner) {
		// Final already, or another node took the request over (its
		// lease): that node's outcome is the one reported; this one
		// learns it from the store (Refresh).
		m.met.Add("lease_lost", 1)
		m.log.Warn("queue: outcome not stored, the request is another node's", "id", rec.ID, "endpoint", rec.Endpoint, "state", st, "err", err)
		_ = m.Refresh(rec.ID) // an outage: the change stream's resync reads it again
		return
	} else if err != nil {
		// The record stays live in the store and is resolved after a
		// restart; report the outcome now anyway.
		m.met.Add("store_errors", 1)
		m.log.Error("queue: store final state", "id", rec.ID, "endpoint", rec.Endpoint, "state", st, "err", err)
	}
	name := map[State]string{StateDone: "done", StateFailed: "failed", StateExpired: "expired", StateCancelled: "cancelled"}[st]
	m.met.Add(name, 1)
	if kind == ErrKindUnknownOutcome {
		m.met.Add("unknown_outcome", 1)
	}
	ev := Event{Type: eventOf(st), Endpoint: rec.Endpoint, ID: rec.ID, State: st, Time: now}
	if e := rec.Err(); e != nil {
		re := e.(*RequestError)
		re.Cause = cause
		ev.Err = re
	}
	var prune []uint64
	m.mu.Lock()
	m.results = append(m.results, finished{id: rec.ID, at: now.UnixNano()})
	for len(m.results) > m.cfg.MaxResults {
		prune = append(prune, m.results[0].id)
		m.results = m.results[1:]
	}
	if w := m.waiters[rec.ID]; w != nil {
		w.cause = cause
		close(w.ch)
		delete(m.waiters, rec.ID)
	}
	m.emitLocked(ev)
	m.gauges()
	m.mu.Unlock()
	if st != StateDone {
		m.log.Info("queue: request ended", "id", rec.ID, "endpoint", rec.Endpoint, "state", st, "err", ev.Err)
	}
	m.prune(prune)
}

func (m *Manager) prune(ids []uint64) {
	if len(ids) == 0 {
		return
	}
	if err := m.cfg.Store.Delete(ids...); err != nil {
		m.met.Add("store_errors", 1)
		m.log.Error("queue: prune results", "n", len(ids), "err", err)
		return
	}
	m.met.Add("pruned", float64(len(ids)))
}

// ---- timers ----

func (m *Manager) timerLoop() {
	defer m.wg.Done()
	for {
		m.mu.Lock()
		var next int64 = -1
		if len(m.timers) > 0 {
			next = m.timers[0].at
		}
		m.mu.Unlock()
		var c <-chan time.Time
		stop := func() bool { return false }
		if next >= 0 {
			c, stop = m.clk.After(time.Duration(next - m.now()))
		}
		select {
		case <-m.ctx.Done():
			stop()
			return
		case <-m.kickC:
		case <-c:
			m.fire()
		}
		stop()
	}
}

// fire handles every due timer.
func (m *Manager) fire() {
	now := m.now()
	type failDev struct {
		d     *device
		cause error
		wakes int
	}
	var expired []uint64
	var fails []failDev
	var prune []uint64
	m.mu.Lock()
	for len(m.timers) > 0 && m.timers[0].at <= now {
		t := m.timers.pop()
		switch t.kind {
		case timerExpire:
			d := t.dev
			if d.sending == t.id {
				// Being sent: look again when the send is over.
				t.at = now + int64(time.Second)
				m.timers.push(t)
				continue
			}
			idx := slices.IndexFunc(d.queue, func(e entry) bool { return e.id == t.id })
			if idx < 0 {
				continue // gone
			}
			m.removeLocked(d, idx)
			expired = append(expired, t.id)
		case timerWake:
			d := t.dev
			if !d.waiting || d.wakeDue != t.at {
				continue // stale
			}
			d.waiting, d.wakeDue = false, 0
			if d.wakes >= *m.cfg.Wake.MaxWakes {
				fails = append(fails, failDev{d: d, cause: d.lastWakeErr, wakes: d.wakes})
				d.wakes, d.lastWakeErr = 0, nil
				continue
			}
			m.scheduleLocked(d, now)
		case timerRetry:
			if len(t.dev.queue) > 0 {
				m.scheduleLocked(t.dev, now)
			}
		case timerPrune:
			cut := now - int64(m.cfg.Retention)
			for len(m.results) > 0 && m.results[0].at < cut {
				prune = append(prune, m.results[0].id)
				m.results = m.results[1:]
			}
			for ep, d := range m.devices {
				if d.idle() && d.awakeUntil <= now {
					delete(m.devices, ep)
				}
			}
			m.gauges()
			m.timers.push(timer{at: now + int64(m.pruneEvery()), kind: timerPrune})
		}
	}
	m.mu.Unlock()
	m.prune(prune)
	for _, id := range expired {
		rec, err := m.cfg.Store.Get(id)
		if err != nil {
			m.met.Add("store_errors", 1)
			m.log.Error("queue: expire", "id", id, "err", err)
			continue
		}
		msg := "expired before it could be sent"
		if !rec.SendingSince.IsZero() {
			msg = "expired after a send whose answer was lost"
		}
		m.finish(rec, StateExpired, ErrKindExpired, msg, nil)
	}
	for _, f := range fails {
		m.failAll(f.d, &NotWokenError{Endpoint: f.d.ep, Wakes: f.wakes, Cause: f.cause})
	}
}

// failAll fails every queued request of d (not one being sent) with
// ErrNotWoken.
func (m *Manager) failAll(d *device, cause *NotWokenError) {
	m.met.Add("not_woken", 1)
	m.mu.Lock()
	var ids []uint64
	for i := len(d.queue) - 1; i >= 0; i-- {
		if d.queue[i].id == d.sending {
			continue
		}
		ids = append(ids, d.queue[i].id)
		m.removeLocked(d, i)
	}
	m.mu.Unlock()
	slices.Reverse(ids)
	for _, id := range ids {
		rec, err := m.cfg.Store.Get(id)
		if err != nil {
			m.met.Add("store_errors", 1)
			continue
		}
		m.finish(rec, StateFailed, ErrKindNotWoken, cause.Error(), cause)
	}
}

// ---- workers ----

func (m *Manager) worker() {
	defer m.wg.Done()
	for {
		m.mu.Lock()
		var d *device
		if len(m.readyList) > 0 {
			d = m.readyList[0]
			m.readyList[0] = nil
			m.readyList = m.readyList[1:]
			if len(m.readyList) == 0 {
				m.readyList = nil
			}
			d.ready, d.busy = false, true
			if len(m.readyList) > 0 {
				select {
				case m.readyC <- struct{}{}:
				default:
				}
			}
		}
		m.mu.Unlock()
		if d == nil {
			select {
			case <-m.ctx.Done():
				return
			case <-m.readyC:
				continue
			}
		}
		m.serve(d)
		if m.ctx.Err() != nil {
			return
		}
	}
}

// serve drains d while it is awake, or wakes it if it is asleep.
func (m *Manager) serve(d *device) {
	for {
		m.mu.Lock()
		now := m.now()
		if m.closed || len(d.queue) == 0 {
			d.busy = false
			m.mu.Unlock()
			return
		}
		if d.awakeUntil <= now {
			// Asleep: wake it if that is allowed and due.
			wake := m.cfg.Waker != nil && d.cfg.Wake.Wakeable() && !d.waiting && m.holdsLocked(d) &&
				(d.lastWake == 0 || now >= d.lastWake+int64(m.cfg.Wake.MinInterval))
			if !wake {
				d.busy = false
				m.scheduleLocked(d, now)
				m.mu.Unlock()
				return
			}
			target := *d.cfg.Wake
			target.Deadline = earliestExpiry(d.queue)
			seen := d.seen
			// A device that shows up while the trigger is being sent has
			// woken: Seen reports it (EventWoke) even before wakes counts it.
			d.wakeSending = true
			m.mu.Unlock()
			m.wake(d, target, seen)
			return
		}
		head := d.queue[0]
		d.sending = head.id
		m.mu.Unlock()
		if !m.sendHead(d, head.id) {
			return
		}
	}
}

func (m *Manager) wake(d *device, target WakeTarget, seen uint32) {
	ctx, cancel := context.WithTimeout(m.ctx, m.cfg.Wake.CallTimeout)
	err := m.cfg.Waker.Wake(ctx, d.ep, target)
	cancel()
	now := m.now()
	m.mu.Lock()
	d.busy = false
	d.wakeSending = false
	if m.closed {
		m.mu.Unlock()
		return
	}
	d.lastWake = now
	if err == nil {
		m.emitLocked(Event{Type: EventWake, Endpoint: d.ep, Time: time.Unix(0, now)})
		m.met.Add("wakeups", 1)
	}
	if d.seen != seen {
		// The device showed up while the wake-up was being sent.
		m.scheduleLocked(d, now)
		m.mu.Unlock()
		return
	}
	d.wakes++
	wakes := d.wakes
	if err != nil {
		d.lastWakeErr = err
	}
	if err != nil && permanentWakeError(err) {
		d.wakes = 0
		m.mu.Unlock()
		m.met.Add("wake_errors", 1)
		if errors.Is(err, ErrUnprotectedTrigger) {
			m.met.Add("wake_refused_unprotected", 1)
		}
		m.log.Warn("queue: wake-up failed", "endpoint", d.ep, "err", err)
		m.failAll(d, &NotWokenError{Endpoint: d.ep, Wakes: wakes, Cause: err})
		return
	}
	timeout := float64(m.cfg.Wake.Timeout)
	for i := 1; i < wakes && timeout < float64(m.cfg.Wake.MaxTimeout); i++ {
		timeout *= m.cfg.Wake.Factor
	}
	due := now + int64(min(time.Duration(timeout), m.cfg.Wake.MaxTimeout))
	d.waiting, d.wakeDue = true, due
	m.pushTimerLocked(timer{at: due, kind: timerWake, dev: d})
	m.mu.Unlock()
	if err != nil {
		m.met.Add("wake_errors", 1)
		m.log.Warn("queue: wake-up failed, will retry", "endpoint", d.ep, "attempt", wakes, "err", err)
	} else {
		m.log.Debug("queue: wake-up sent", "endpoint", d.ep, "attempt", wakes)
	}
}

// headSend is one send of a device's head request, carried through the
// steps of sendHead.
type headSend struct {
	d     *device
	id    uint64
	rec   *Record
	fresh bool // this send is the attempt's first: nothing of it was delivered before
	// When the request went out: the device's Seen count, to tell whether
	// it spoke during the send, and the time, to learn its listening time.
	seen   uint32
	sentAt int64
}

// sendHead runs the head request of d once: read its record, open the
// attempt, persist it as sending, execute it and file the outcome. It
// returns true to go on draining, false when the worker has released d.
func (m *Manager) sendHead(d *device, id uint64) bool {
	h := &headSend{d: d, id: id}
	if goOn, ok := m.readHead(h); !ok {
		return goOn
	}
	now := m.clk.Now()
	if !m.openAttempt(h, now) {
		return true
	}
	if goOn, ok := m.markSending(h, now); !ok {
		return goOn
	}
	ctx, cancel := context.WithTimeout(m.ctx, m.cfg.ExecTimeout)
	req := h.rec.Request
	res, err := m.cfg.Executor.Execute(ctx, d.ep, &req)
	cancel()
	if m.ctx.Err() != nil && err != nil {
		// Shutdown interrupted the send: the record stays "sending" and
		// the next Manager resolves it.
		m.mu.Lock()
		d.busy, d.sending = false, 0
		m.mu.Unlock()
		return false
	}
	return m.fileOutcome(h, res, err)
}

// releaseHead ends the worker's hold on d and schedules it again; it
// returns false (the drain stops) for sendHead to return.
func (m *Manager) releaseHead(d *device) bool {
	m.mu.Lock()
	d.busy, d.sending = false, 0
	m.scheduleLocked(d, m.now())
	m.mu.Unlock()
	return false
}

// dequeueHead takes h's request out of the device's queue if it is still
// its head.
func (m *Manager) dequeueHead(h *headSend) {
	m.mu.Lock()
	h.d.sending = 0
	if len(h.d.queue) > 0 && h.d.queue[0].id == h.id {
		m.removeLocked(h.d, 0)
	}
	m.mu.Unlock()
}

// retryHead is for a store out of reach (a Redis outage): the request
// stays queued and is looked at again shortly, without spinning. It
// returns false (the drain stops) for sendHead to return.
func (m *Manager) retryHead(d *device) bool {
	m.mu.Lock()
	d.busy, d.sending = false, 0
	m.pushTimerLocked(timer{at: m.now() + int64(m.cfg.LeaseRetry), kind: timerRetry, dev: d})
	m.mu.Unlock()
	return false
}

// readHead reads h's record into h.rec. When it cannot (ok false), goOn
// is sendHead's answer.
func (m *Manager) readHead(h *headSend) (goOn, ok bool) {
	rec, err := m.cfg.Store.Get(h.id)
	if err != nil && unavailable(err) {
		m.met.Add("store_errors", 1)
		return m.retryHead(h.d), false
	}
	if err != nil {
		// The record cannot be read (corrupt, or the disk fails): take it
		// out of the queue so the drain goes on, and report it.
		m.met.Add("store_errors", 1)
		m.log.Error("queue: read request", "id", h.id, "err", err)
		m.dequeueHead(h)
		m.reportBroken(h.d.ep, h.id, err)
		return true, false
	}
	h.rec = rec
	return false, true
}

// openAttempt decides whether h's request may go out now and as which
// attempt. It returns false when the request was finished instead
// (expired, or an unknown outcome that must not be repeated).
func (m *Manager) openAttempt(h *headSend, now time.Time) bool {
	rec := h.rec
	m.mu.Lock()
	window := h.d.cfg.DedupWindow
	m.mu.Unlock()
	if window <= 0 {
		window = m.cfg.DedupWindow
	}
	if !rec.Expires.After(now) {
		m.dequeueHead(h)
		msg := "expired before it could be sent"
		if !rec.SendingSince.IsZero() {
			msg = "expired after a send whose answer was lost"
		}
		m.finish(rec, StateExpired, ErrKindExpired, msg, nil)
		return false
	}
	// At most once: a request sent before (answer lost, or a crash) is
	// re-sent as the same attempt only while the device's CoAP
	// deduplication still knows it; later, only idempotent kinds get a
	// fresh attempt.
	switch {
	case rec.SendingSince.IsZero() || rec.Attempt.N == 0:
		rec.Attempt.N++
		rec.SendingSince = now
		h.fresh = true
	case now.Sub(rec.SendingSince) > window:
		if !rec.Kind.Idempotent() {
			m.dequeueHead(h)
			m.finish(rec, StateFailed, ErrKindUnknownOutcome,
				fmt.Sprintf("sent at %s, no answer, dedup window %s passed; %s is not idempotent", rec.SendingSince.UTC().Format(time.RFC3339), window, rec.Kind), nil)
			return false
		}
		rec.Attempt.N++
		rec.SendingSince = now
		h.fresh = true
	}
	return true
}

// markSending persists h's record as sending and tells subscribers. When
// it cannot (ok false), goOn is sendHead's answer.
func (m *Manager) markSending(h *headSend, now time.Time) (goOn, ok bool) {
	rec := h.rec
	rec.Attempt.ID = rec.ID
	rec.State = StateSending
	if err := m.cfg.Store.Put(rec); err != nil {
		if errors.Is(err, ErrNotOwner) {
			return m.ceded(h.d, h.id, err), false
		}
		m.met.Add("store_errors", 1)
		m.log.Error("queue: persist sending state", "id", h.id, "err", err)
		if unavailable(err) {
			return m.retryHead(h.d), false
		}
		return m.releaseHead(h.d), false
	}
	m.met.Add("sent", 1)
	m.mu.Lock()
	h.seen = h.d.seen
	m.emitLocked(Event{Type: EventSent, Endpoint: h.d.ep, ID: h.id, State: StateSending, Time: now})
	m.mu.Unlock()
	h.sentAt = now.UnixNano()
	return false, true
}

// fileOutcome records what the executor answered for h's request: done,
// queued again (the device is asleep), or failed. It returns sendHead's
// answer.
func (m *Manager) fileOutcome(h *headSend, res *Result, err error) bool {
	d, rec := h.d, h.rec
	switch {
	case err == nil:
		if res == nil {
			res = &Result{ContentFormat: NoContentFormat}
		}
		rec.Result = res
		m.mu.Lock()
		if d.seen == h.seen {
			m.learnLocked(d, h.sentAt, true)
		}
		m.mu.Unlock()
		m.dequeueHead(h)
		m.finish(rec, StateDone, ErrKindNone, "", nil)
		return true
	case asleep(err):
		rec.State = StateQueued
		if h.fresh && errors.Is(err, ErrNotDelivered) {
			// Certainly not delivered: as if never sent.
			rec.SendingSince = time.Time{}
			m.met.Add("not_delivered", 1)
		}
		if perr := m.cfg.Store.Put(rec); perr != nil {
			m.met.Add("store_errors", 1)
		}
		m.met.Add("requeued", 1)
		m.log.Debug("queue: device asleep mid-drain", "endpoint", d.ep, "id", h.id, "err", err)
		m.mu.Lock()
		if d.seen == h.seen {
			// Unanswered while the device said nothing: it was asleep
			// when the request went out, so it listens less long after
			// its messages than we assumed. It waits, never failed for
			// this alone, for the device's next message.
			m.learnLocked(d, h.sentAt, false)
			d.awakeUntil = 0
		}
		m.mu.Unlock()
		return m.releaseHead(d)
	default:
		m.dequeueHead(h)
		m.finish(rec, StateFailed, ErrKindExecutor, err.Error(), err)
		return true
	}
}

// reportBroken reports a request whose record cannot be read as failed,
// to waiters and subscribers (Get returns the store's error for it).
func (m *Manager) reportBroken(ep string, id uint64, err error) {
	re := &RequestError{ID: id, Endpoint: ep, Kind: ErrKindExecutor, Msg: "unreadable record: " + err.Error(), Cause: err}
	m.met.Add("failed", 1)
	m.mu.Lock()
	defer m.mu.Unlock()
	if w := m.waiters[id]; w != nil {
		w.cause = err
		close(w.ch)
		delete(m.waiters, id)
	}
	m.emitLocked(Event{Type: EventFailed, Endpoint: ep, ID: id, State: StateFailed, Err: re, Time: m.clk.Now()})
}

func asleep(err error) bool {
	if errors.Is(err, ErrDeviceAsleep) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// earliestExpiry is the earliest expiry among queued entries (zero when
// none has one).
func earliestExpiry(q []entry) time.Time {
	var min int64
	for _, e := range q {
		if e.expires > 0 && (min == 0 || e.expires < min) {
			min = e.expires
		}
	}
	if min == 0 {
		return time.Time{}
	}
	return time.Unix(0, min)
}
