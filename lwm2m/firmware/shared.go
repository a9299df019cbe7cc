package firmware

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// Shared runs campaigns kept in a CampaignStore that several nodes share
// (cluster mode, redisstore.Campaigns). Every node's Manager runs every
// campaign, but each device's steps run on one node only: the node holding
// the device's session (Holds), under the step lease of the device in the
// campaign (Lease), so a device is never worked on by two nodes at once.
// The nodes see each other's progress, new campaigns, pauses, cancels and
// deletes by reading the store every Poll. When a node dies its devices
// register at other nodes (Holds turns true there) and its step leases
// expire; a device whose step was interrupted after Execute is only
// checked (its firmware version read, for a while, as it may be
// rebooting), never updated again.
type Shared struct {
	// Holds reports whether this node runs the steps of device ep.
	Holds func(ep string) bool
	// Lease takes the step lease name for this node. It returns a context
	// that ends when the lease is lost (or ctx ends) and a function that
	// releases it; an error when another node holds it or the store is
	// out of reach. The context is also handed to CampaignStore.SaveDevice
	// (a store may check the lease there: a fenced write).
	Lease func(ctx context.Context, name string) (context.Context, func(), error)
	// Poll is how often the store is read again (default 1 s).
	Poll time.Duration
}

// WithShared makes the Manager one of several nodes on a shared store.
// Holds and Lease are required and Poll must not be negative (an error
// wrapping ErrInvalidOption otherwise; a Shared without them used to be ignored).
func WithShared(s Shared) ManagerOption {
	return func(m *Manager) error {
		if s.Holds == nil || s.Lease == nil {
			return fmt.Errorf("%w: WithShared needs Holds and Lease", ErrInvalidOption)
		}
		if s.Poll < 0 {
			return fmt.Errorf("%w: WithShared Poll %v is negative", ErrInvalidOption, s.Poll)
		}
		if s.Poll == 0 {
			s.Poll = time.Second
		}
		m.shared = &s
		return nil
	}
}

// DeviceGetter is implemented by a CampaignStore that reads one device's
// state (redisstore.Campaigns): a node that just took a step lease reads
// the device again, as another node may have finished it meanwhile.
type DeviceGetter interface {
	GetDevice(ctx context.Context, id, ep string) (DeviceState, error)
}

// sync starts the campaigns other nodes created, every Poll.
func (m *Manager) syncLoop() {
	defer m.wg.Done()
	t := time.NewTicker(m.shared.Poll)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(m.ctx, 30*time.Second)
		recs, devs, err := m.store.Load(ctx)
		cancel()
		if err != nil {
			continue
		}
		stored := make(map[string]bool, len(recs))
		for _, rec := range recs {
			stored[rec.ID] = true
		}
		// Campaigns another node deleted (finished ones only can be).
		m.mu.Lock()
		for id, r := range m.runs {
			select {
			case <-r.done:
				if !stored[id] {
					delete(m.runs, id)
				}
			default:
			}
		}
		m.mu.Unlock()
		for _, rec := range recs {
			m.mu.Lock()
			_, known := m.runs[rec.ID]
			var r *run
			if !known {
				r = m.newRun(rec, devs[rec.ID])
				m.runs[rec.ID] = r
			}
			m.mu.Unlock()
			if known {
				continue
			}
			if rec.Status == CampaignRunning || rec.Status == CampaignPaused {
				m.start(r)
			} else {
				close(r.done)
			}
		}
	}
}

// refresh reads the campaign from the store: its status (another node
// paused, resumed or cancelled it), and the devices this node is not
// working on. It reports false when the campaign was deleted.
func (r *run) refresh(busy map[string]bool) bool {
	ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
	recs, devs, err := r.m.store.Load(ctx)
	cancel()
	if err != nil {
		return true // try again next round
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range recs {
		if rec.ID != r.rec.ID {
			continue
		}
		r.rec.Status, r.rec.SMSUsed = rec.Status, rec.SMSUsed
		for _, d := range devs[rec.ID] {
			if busy[d.Endpoint] {
				continue
			}
			if cur := r.dev[d.Endpoint]; cur != nil {
				*cur = d
			} else {
				dd := d
				r.dev[d.Endpoint] = &dd
				r.ord = append(r.ord, d.Endpoint)
				sort.Strings(r.ord)
			}
		}
		return true
	}
	return false
}

// sharedLoop runs the devices this node holds until every device of the
// campaign is final (on whichever node), the campaign is cancelled or
// deleted, or the Manager closes.
func (r *run) sharedLoop() {
	sh := r.m.shared
	type result struct{ ep string }
	work := make(chan DeviceState)
	doneC := make(chan result, 64)
	conc := max(r.rec.Spec.Concurrency, 1)
	for range conc {
		r.m.wg.Add(1)
		go func() {
			defer r.m.wg.Done()
			for d := range work {
				r.sharedDevice(d)
				doneC <- result{d.Endpoint}
			}
		}()
	}
	busy := map[string]bool{}
	t := time.NewTicker(sh.Poll)
	defer t.Stop()
	defer func() {
		close(work)
		for len(busy) > 0 {
			delete(busy, (<-doneC).ep)
		}
	}()
	for {
		if !r.refresh(busy) {
			r.cancel() // deleted by another node
			return
		}
		r.mu.Lock()
		status := r.rec.Status
		var todo []DeviceState
		final := true
		for _, ep := range r.ord {
			d := r.dev[ep]
			if d.State == DevPending || d.State == DevRunning {
				final = false
				if !busy[ep] && status == CampaignRunning && sh.Holds(ep) {
					todo = append(todo, *d)
				}
			}
		}
		r.mu.Unlock()
		if status == CampaignCancelled {
			r.cancel()
			return
		}
		if final && len(busy) == 0 {
			return
		}
	dispatch:
		for _, d := range todo {
			for {
				select {
				case work <- d:
					busy[d.Endpoint] = true
					continue dispatch
				case res := <-doneC:
					delete(busy, res.ep)
				case <-r.ctx.Done():
					return
				}
			}
		}
		select {
		case res := <-doneC:
			delete(busy, res.ep)
		case <-t.C:
		case <-r.ctx.Done():
			return
		}
	}
}

// sharedDevice runs one device under its step lease.
func (r *run) sharedDevice(d DeviceState) {
	lctx, release, err := r.m.shared.Lease(r.ctx, "fw:"+r.rec.ID+":"+d.Endpoint)
	if err != nil {
		return // another node works on it, or Redis is away: next round
	}
	defer release()
	if g, ok := r.m.store.(DeviceGetter); ok {
		ctx, cancel := context.WithTimeout(lctx, 10*time.Second)
		fresh, err := g.GetDevice(ctx, r.rec.ID, d.Endpoint)
		cancel()
		if err != nil {
			return
		}
		if fresh.State != DevPending && fresh.State != DevRunning {
			r.mu.Lock()
			*r.dev[d.Endpoint] = fresh
			r.mu.Unlock()
			return
		}
		d = fresh
	}
	r.mu.Lock()
	if r.fence == nil {
		r.fence = map[string]context.Context{}
	}
	r.fence[d.Endpoint] = lctx
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.fence, d.Endpoint)
		r.mu.Unlock()
	}()
	r.deviceCtx(lctx, d)
}

// saveCtx is the context of a device's state write: the step lease's in
// shared mode (a fenced write), else a fresh one.
func (r *run) saveCtx(ep string) (context.Context, context.CancelFunc) {
	r.mu.Lock()
	fc := r.fence[ep]
	r.mu.Unlock()
	base := context.Background()
	if fc != nil {
		base = context.WithoutCancel(fc)
	}
	return context.WithTimeout(base, 30*time.Second)
}

// settleVersion reads the version of a device whose update was
// interrupted after Execute, for up to a minute while it may be
// rebooting; it returns the last answer.
func (r *run) settleVersion(ctx context.Context, ep, version string, o Options) (string, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		v, err := r.readVersion(ctx, ep, o)
		if err == nil && v == version || time.Now().After(deadline) || ctx.Err() != nil {
			return v, err
		}
		t := time.NewTimer(2 * time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, fmt.Errorf("firmware: %w", ctx.Err())
		case <-t.C:
		}
	}
}
