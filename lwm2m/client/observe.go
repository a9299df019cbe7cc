package client

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/link"
	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

// MaxObservations bounds the observations a client serves.
const MaxObservations = 256

// observation is one server observation of a path. Its goroutine decides
// when to notify under the attributes in force (Core 1.1 §5.1.2, §6.4):
//   - never sooner than pmin after the last notification;
//   - at the latest pmax after it, changed or not;
//   - on a change, only if no gt/lt/st is set, or the value crossed gt or
//     lt since the last evaluation, or moved by st or more since the last
//     notification.
type observation struct {
	c   *Client
	o   *bearer.Observer
	req *bearer.Request
	p   path.Path
	// paths is set for an Observe-Composite (FETCH with Observe=0, Core
	// 1.1 §6.4.3): the observation covers every path in it and notifies
	// with a composite payload.
	paths   []path.Path
	changed chan struct{}

	last         time.Time
	prev         float64 // value at the last evaluation
	lastNotified float64
	numeric      bool
}

type observers struct {
	mu     sync.Mutex
	set    map[*observation]struct{}
	stop   chan struct{}
	wg     sync.WaitGroup
	closed bool
}

func (s *observers) init() {
	s.set = map[*observation]struct{}{}
	s.stop = make(chan struct{})
}

// Observations returns the number of observations the client serves.
func (c *Client) Observations() int {
	c.obs.mu.Lock()
	defer c.obs.mu.Unlock()
	return len(c.obs.set)
}

// changed wakes the observations that overlap p.
func (s *observers) changed(p path.Path) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ob := range s.set {
		if ob.covers(p) {
			select {
			case ob.changed <- struct{}{}:
			default:
			}
		}
	}
}

// dropUnder wakes observations under a deleted path: their next
// evaluation finds the path gone and ends them with 4.04.
func (s *observers) dropUnder(p path.Path) { s.changed(p) }

func (s *observers) closeAll() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.stop)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (c *Client) observe(w bearer.ResponseWriter, r *bearer.Request, p path.Path) {
	c.startObservation(w, r, &observation{c: c, req: r, p: p})
}

// observeComposite serves Observe-Composite: a FETCH on the root with
// Observe=0 naming the paths (LwM2M 1.1 Core §6.4.3). Attributes of the
// root (the server's defaults) govern pmin and pmax.
func (c *Client) observeComposite(w bearer.ResponseWriter, r *bearer.Request, p path.Path) {
	if !p.IsRoot() {
		answer(w, codes.MethodNotAllowed, "FETCH on the root only")
		return
	}
	paths, err := c.compositePaths(r)
	if err != nil {
		answer(w, codeOf(err), err.Error())
		return
	}
	if len(paths) == 0 {
		answer(w, codes.BadRequest, "no paths to observe")
		return
	}
	c.startObservation(w, r, &observation{c: c, req: r, p: path.Root, paths: paths})
}

// startObservation answers r with ob's current value and, when the
// Endpoint accepts the registration, starts ob.
func (c *Client) startObservation(w bearer.ResponseWriter, r *bearer.Request, ob *observation) {
	f, body, code, diag := ob.current()
	if code != codes.Content {
		answer(w, code, diag)
		return
	}
	c.obs.mu.Lock()
	accept := !c.obs.closed && len(c.obs.set) < MaxObservations
	c.obs.mu.Unlock()
	var o *bearer.Observer
	if accept {
		o, _ = w.Observe() // on error the response goes without Observe
	}
	if o == nil {
		ob = nil
	} else {
		// Registered before the response leaves, so a change made as soon
		// as the server has the response is not missed.
		ob.o, ob.changed, ob.last = o, make(chan struct{}, 1), time.Now()
		if ob.paths == nil {
			ob.prev, ob.numeric = c.numeric(ob.p)
		}
		ob.lastNotified = ob.prev
		c.obs.mu.Lock()
		if c.obs.closed {
			c.obs.mu.Unlock()
			o.Cancel()
			ob = nil
		} else {
			c.obs.set[ob] = struct{}{}
			c.obs.wg.Add(1)
			c.obs.mu.Unlock()
		}
	}
	w.SetOption(bearer.ContentFormatOption(message.MediaType(f)))
	_ = w.WriteResponse(codes.Content, body)
	if ob != nil {
		go ob.run()
	}
}

// numeric returns the value of a single numeric resource at p.
func (c *Client) numeric(p path.Path) (float64, bool) {
	v, ok := c.Get(p)
	if !ok {
		return 0, false
	}
	switch v.Type() {
	case model.Integer, model.Time:
		return float64(v.Int()), true
	case model.Unsigned:
		return float64(v.Uint()), true
	case model.Float:
		return v.Float(), true
	}
	return 0, false
}

// effective returns the attributes for p: those set on p, else on its
// parents up to the object, pmin/pmax defaulting to the Server object's
// Default Minimum/Maximum Period (/1/x/2, /1/x/3).
func (c *Client) effective(p path.Path) (a link.Attributes) {
	c.t.mu.RLock()
	for q := p; q.Len() >= 1; q = q.Parent() {
		x, ok := c.t.attrs[q]
		if !ok {
			continue
		}
		if a.Pmin == nil {
			a.Pmin = x.Pmin
		}
		if a.Pmax == nil {
			a.Pmax = x.Pmax
		}
		if q == p { // gt, lt, st apply to the resource they are set on
			a.Gt, a.Lt, a.St = x.Gt, x.Lt, x.St
		}
	}
	c.t.mu.RUnlock()
	if a.Pmin == nil {
		if v, ok := c.Get(path.Resource(1, 0, 2)); ok {
			a.Pmin = link.Ptr(uint32(v.Int()))
		}
	}
	if a.Pmax == nil {
		if v, ok := c.Get(path.Resource(1, 0, 3)); ok {
			a.Pmax = link.Ptr(uint32(v.Int()))
		}
	}
	return a
}

func secs(v *uint32) time.Duration {
	if v == nil {
		return 0
	}
	return time.Duration(*v) * time.Second
}

func (ob *observation) run() {
	c := ob.c
	defer func() {
		c.obs.mu.Lock()
		delete(c.obs.set, ob)
		c.obs.mu.Unlock()
		c.obs.wg.Done()
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	pending := false
	for {
		a := c.effective(ob.p)
		pmin, pmax := secs(a.Pmin), secs(a.Pmax)
		now := time.Now()
		wait := time.Duration(-1)
		if pending {
			if now.Sub(ob.last) >= pmin {
				pending = false
				if ob.worth(a) {
					if !ob.notify() {
						return
					}
					now = time.Now()
				}
			} else {
				wait = ob.last.Add(pmin).Sub(now)
			}
		}
		if pmax > 0 && pmax >= pmin {
			due := ob.last.Add(pmax)
			if !now.Before(due) {
				if !ob.notify() {
					return
				}
				due = ob.last.Add(pmax)
			}
			if d := time.Until(due); wait < 0 || d < wait {
				wait = d
			}
		}
		if wait < 0 {
			wait = time.Hour
		}
		timer.Reset(max(wait, time.Millisecond))
		select {
		case <-ob.o.Done():
			return
		case <-c.obs.stop:
			ob.o.Cancel()
			return
		case <-ob.changed:
			pending = true
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// worth applies gt, lt and st to a change (a composite observation
// reports every change, within pmin and pmax).
func (ob *observation) worth(a link.Attributes) bool {
	if ob.paths != nil {
		return true
	}
	cur, ok := ob.c.numeric(ob.p)
	prev := ob.prev
	ob.prev = cur
	if !ok || (a.Gt == nil && a.Lt == nil && a.St == nil) {
		return true
	}
	crossed := func(th float64) bool { return (prev <= th) != (cur <= th) }
	if a.Gt != nil && crossed(*a.Gt) {
		return true
	}
	if a.Lt != nil && crossed(*a.Lt) {
		return true
	}
	if a.St != nil && math.Abs(cur-ob.lastNotified) >= *a.St {
		return true
	}
	return false
}

// covers reports whether a change at p concerns the observation.
func (ob *observation) covers(p path.Path) bool {
	if p.IsRoot() {
		return true
	}
	if ob.paths == nil {
		return path.Overlaps(ob.p, p)
	}
	for _, q := range ob.paths {
		if path.Overlaps(q, p) {
			return true
		}
	}
	return false
}

// current encodes what the observation reports now.
func (ob *observation) current() (content.Format, []byte, codes.Code, string) {
	if ob.paths == nil {
		return ob.c.encode(ob.req, ob.p)
	}
	f, body, err := ob.c.encodeComposite(ob.req, ob.paths)
	if err != nil {
		return f, nil, codes.NotAcceptable, err.Error()
	}
	return f, body, codes.Content, ""
}

// notify sends the current value; false when the observation ended.
func (ob *observation) notify() bool {
	f, body, code, diag := ob.current()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	go func() {
		select {
		case <-ob.c.obs.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	ob.last = time.Now()
	if code != codes.Content {
		_ = ob.o.Notify(ctx, code, []byte(diag)) // ends the observation
		return false
	}
	if v, ok := ob.c.numeric(ob.p); ok {
		ob.lastNotified, ob.prev = v, v
	}
	if err := ob.o.Notify(ctx, codes.Content, body, bearer.ContentFormatOption(message.MediaType(f))); err != nil {
		return false
	}
	return true
}
