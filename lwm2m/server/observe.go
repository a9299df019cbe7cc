package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
)

// ErrTooManyObservations is returned by Observe when the server holds its
// maximum of observations (WithMaxObservations).
var ErrTooManyObservations = errors.New("lwm2m server: too many observations")

// Observation is an observation the server holds on a device's path.
// The zero Observation never ran: Done is closed and Err and Cancel fail
// with ErrNotCreated.
type Observation struct {
	Endpoint string
	// Path is the observed path; the root for an Observe-Composite.
	Path path.Path
	// Paths are the paths of an Observe-Composite (nil otherwise).
	Paths []path.Path
	s     *Server
	o     *bearer.Observation
	key   obsKey
}

// Done is closed when the observation has ended.
func (o *Observation) Done() <-chan struct{} {
	if o.o == nil { // a zero Observation never ran
		return (&bearer.Observation{}).Done()
	}
	return o.o.Done()
}

// Err returns why the observation ended (nil while it runs).
func (o *Observation) Err() error {
	if o.o == nil {
		return ErrNotCreated
	}
	return o.o.Err()
}

// Cancel cancels the observation actively (Core §6.4.2 Cancel Observation:
// GET with Observe=1 and the observation's token).
func (o *Observation) Cancel(ctx context.Context) error {
	if o.o == nil || o.s == nil {
		return ErrNotCreated
	}
	o.s.obs.remove(o)
	return o.o.Cancel(ctx)
}

type obsKey struct {
	ep   string
	path path.Path
	// composite names the path set of an Observe-Composite ("" otherwise).
	composite string
}

func compositeKey(paths []path.Path) string {
	var b strings.Builder
	for i, p := range paths {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// observations is the server's bounded table of observations.
type observations struct {
	mu  sync.Mutex
	m   map[obsKey]*Observation
	max int
}

func (t *observations) init(max int) { t.m = map[obsKey]*Observation{}; t.max = max }

func (t *observations) add(o *Observation) (replaced *Observation, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.m[o.key]
	if old == nil && len(t.m) >= t.max {
		return nil, ErrTooManyObservations
	}
	t.m[o.key] = o
	return old, nil
}

func (t *observations) remove(o *Observation) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m[o.key] == o {
		delete(t.m, o.key)
	}
}

func (t *observations) take(pred func(obsKey) bool) []*Observation {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*Observation
	for k, o := range t.m {
		if pred(k) {
			out = append(out, o)
			delete(t.m, k)
		}
	}
	return out
}

// dropEndpoint ends the observations of a deregistered, expired or
// re-registered client locally (its next notification gets an RST).
func (t *observations) dropEndpoint(ep string) {
	for _, o := range t.take(func(k obsKey) bool { return k.ep == ep }) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = o.o.Cancel(ctx)
	}
}

func (t *observations) closeAll() { t.dropAll() }

func (t *observations) dropAll() {
	for _, o := range t.take(func(obsKey) bool { return true }) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = o.o.Cancel(ctx)
	}
}

// Count returns the number of observations the server holds.
func (s *Server) Observations() int {
	s.obs.mu.Lock()
	defer s.obs.mu.Unlock()
	return len(s.obs.m)
}

// Observe starts observing p on device ep (Core §6.4.1: GET with
// Observe=0). It returns the observation and the current value; every
// later notification goes to fn (if not nil) and to event subscribers as a
// Notified event. An existing observation of the same path is replaced
// (cancelled). Notification attributes are set with WriteAttributes. fn
// runs on the observation's delivery goroutine and must not block.
func (s *Server) Observe(ctx context.Context, ep string, p path.Path, fn func(Notification), opts ...RequestOption) (*Observation, Content, error) {
	reg, e, peer, err := s.target(ep)
	if err != nil {
		return nil, Content{}, err
	}
	o := applyOpts(opts)
	req := bearer.NewRequest(codes.GET, peer, devicePath(reg, p))
	switch {
	case o.hasFmt:
		req.AddOption(bearer.UintOption(message.Accept, uint32(o.format)))
	case p.Len() < path.LevelResource:
		req.AddOption(bearer.UintOption(message.Accept, uint32(PreferredFormat(reg))))
	}
	return s.observe(ctx, e, req, obsSpec{reg: reg, ep: ep, p: p, fn: fn, m: s.resolverFor(o)})
}

// ObserveComposite observes several paths at once (Core 1.1 §6.4.3
// Observe-Composite: FETCH on the root with Observe=0 and a SenML list of
// the paths). Every notification carries the values of all the paths in
// the client's composite format. Cancel sends the same FETCH with
// Observe=1. An existing observation of the same path set is replaced.
func (s *Server) ObserveComposite(ctx context.Context, ep string, paths []path.Path, fn func(Notification)) (*Observation, Content, error) {
	if len(paths) == 0 {
		return nil, Content{}, fmt.Errorf("lwm2m observe-composite %s: no paths", ep)
	}
	reg, e, peer, err := s.target(ep)
	if err != nil {
		return nil, Content{}, err
	}
	f := compositeFormat(reg)
	recs := make([]content.Record, len(paths))
	for i, p := range paths {
		recs[i] = content.Record{Path: p}
	}
	body, err := content.Encode(content.Format(f), path.Root, recs)
	if err != nil {
		return nil, Content{}, fmt.Errorf("lwm2m observe-composite %s: %w", ep, err)
	}
	req := bearer.NewRequest(codes.FETCH, peer, devicePath(reg, path.Root))
	req.SetOption(bearer.ContentFormatOption(f))
	req.SetOption(bearer.UintOption(message.Accept, uint32(f)))
	req.Payload = body
	return s.observe(ctx, e, req, obsSpec{reg: reg, ep: ep, p: path.Root, paths: append([]path.Path(nil), paths...), fn: fn, m: s.resolver()})
}

// obsSpec is what an observation is of and for.
type obsSpec struct {
	reg   *registry.Registration
	ep    string
	p     path.Path   // the observed path (the root for a composite)
	paths []path.Path // the paths of an Observe-Composite (nil otherwise)
	fn    func(Notification)
	m     model.Resolver // decodes the values the server remembers
}

// observe registers req (GET or FETCH with Observe=0) and keeps the
// observation in the server's table.
func (s *Server) observe(ctx context.Context, e *bearer.Endpoint, req *bearer.Request, sp obsSpec) (*Observation, Content, error) {
	reg, ep, p, paths, fn := sp.reg, sp.ep, sp.p, sp.paths, sp.fn
	notePaths := paths
	if notePaths == nil {
		notePaths = []path.Path{p}
	}
	firstCh := make(chan *bearer.Response, 1)
	var gotFirst atomic.Bool
	cb := func(resp *bearer.Response) {
		if gotFirst.CompareAndSwap(false, true) {
			firstCh <- resp
			return
		}
		if resp.Code != codes.Content && resp.Code != codes.Changed {
			return
		}
		seq, _ := resp.Observe()
		n := Notification{Endpoint: ep, Paths: notePaths, Content: contentOf(resp, FormatText), Seq: seq, m: sp.m}
		s.stats.Notifications.Add(1)
		s.remember(ep, "notify", p, n.Content, sp.m)
		s.queueSeen(reg, reg.Transport())
		if fn != nil {
			fn(n)
		}
		s.events.publish(Event{Kind: Notified, Registration: reg, Notification: &n})
	}
	op := "observe"
	if paths != nil {
		op = "observe-composite"
	}
	bo, err := e.ObserveRequest(ctx, req, cb)
	if err != nil {
		select {
		case first := <-firstCh:
			if first.Code>>5 != 2 {
				return nil, Content{}, &Error{Op: op, Endpoint: ep, Path: p.String(), Code: first.Code, Message: diag(first.Payload)}
			}
		default:
		}
		return nil, Content{}, fmt.Errorf("lwm2m %s %s %s: %w", op, ep, p, err)
	}
	// The first response reaches the callback on the observation's
	// delivery goroutine; wait for it.
	var first *bearer.Response
	select {
	case first = <-firstCh:
	case <-bo.Done():
	case <-ctx.Done():
		cctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = bo.Cancel(cctx)
		return nil, Content{}, ctx.Err()
	}
	obs := &Observation{Endpoint: ep, Path: p, Paths: paths, s: s, o: bo, key: obsKey{ep: ep, path: p, composite: compositeKey(paths)}}
	old, err := s.obs.add(obs)
	if err != nil {
		_ = bo.Cancel(ctx)
		return nil, Content{}, err
	}
	if old != nil {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_ = old.o.Cancel(cctx)
	}
	var c Content
	if first != nil {
		c = contentOf(first, FormatText)
		s.remember(ep, "observe", p, c, sp.m)
	}
	return obs, c, nil
}

// CancelObservation cancels the server's observation of p on ep actively.
// It returns ErrNoObservation when there is none.
func (s *Server) CancelObservation(ctx context.Context, ep string, p path.Path) error {
	s.obs.mu.Lock()
	o := s.obs.m[obsKey{ep: ep, path: p}]
	s.obs.mu.Unlock()
	if o == nil {
		return ErrNoObservation
	}
	return o.Cancel(ctx)
}

// CancelCompositeObservation cancels the server's Observe-Composite of
// paths on ep actively. It returns ErrNoObservation when there is none.
func (s *Server) CancelCompositeObservation(ctx context.Context, ep string, paths []path.Path) error {
	s.obs.mu.Lock()
	o := s.obs.m[obsKey{ep: ep, path: path.Root, composite: compositeKey(paths)}]
	s.obs.mu.Unlock()
	if o == nil {
		return ErrNoObservation
	}
	return o.Cancel(ctx)
}

// ErrNoObservation is returned by CancelObservation for an unknown one.
var ErrNoObservation = errors.New("lwm2m server: no such observation")

var _ = registry.NoInstance
