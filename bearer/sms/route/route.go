package route

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
)

// ErrNoRoute is returned for a number no route can send from; it is
// permanent (a configuration error).
var ErrNoRoute error = &noRoute{}

type noRoute struct{}

func (*noRoute) Error() string   { return "route: no transport may send from this number" }
func (*noRoute) Retryable() bool { return false }

// Route is one transport and the numbers it may send from.
type Route struct {
	// Name names the route in errors and stats ("modems", "smpp:op1").
	Name string
	// Transport sends and receives.
	Transport sms.Transport
	// Numbers it can send from ("+" E.164); empty means any number (a
	// transport that picks its own, like a pool given "").
	Numbers []string
	// Ready, when set, reports whether the route can take a send now; a
	// route that is not ready is tried after the ready ones.
	Ready func() bool
	// Space names the TP-MR space of the route's sends (default Name):
	// routes that allocate TP-MRs together and may receive each other's
	// reports (the links of one SMSC account sharing an smpp.State) name
	// the same one.
	Space string
}

// Stats counts sends per route.
type Stats struct {
	Name         string
	Sent, Failed uint64
	FailedOver   uint64 // sends that went to another route after this one failed
	Received     uint64
}

type route struct {
	Route
	numbers                         map[string]bool
	sent, failed, failedOver, recvd atomic.Uint64
}

// Mux is an sms.Transport over several routes. Close stops its merging
// goroutines; the routes' transports stay open (their owners close them).
// The zero Mux has no route (use New): SendTPDU fails with ErrNoRoute and
// Inbound is closed.
type Mux struct {
	routes []*route
	in     chan sms.Inbound
	stop   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once

	// TP-MR translation of numbers with several routes (mr.go).
	shared    map[string]bool
	allShared bool
	tr        *translator
	log       *slog.Logger
	flight    *sends         // sends whose TP-MR is not mapped yet
	heldWG    sync.WaitGroup // reports held for their mapping
	held      atomic.Int32
}

// New returns a Mux over routes, tried in the given order (earlier is
// preferred). A number with several routes needs WithStateFile (see
// MRStats).
func New(routes []Route, opts ...Option) (*Mux, error) {
	if len(routes) == 0 {
		return nil, errors.New("route: no routes")
	}
	o := options{buffer: 256}
	for _, f := range opts {
		if err := f(&o); err != nil {
			return nil, fmt.Errorf("route: New: %w", err)
		}
	}
	m := &Mux{in: make(chan sms.Inbound, o.buffer), stop: make(chan struct{})}
	for _, r := range routes {
		if r.Transport == nil {
			return nil, fmt.Errorf("route %s: nil transport", r.Name)
		}
		rr := &route{Route: r, numbers: map[string]bool{}}
		for _, n := range r.Numbers {
			a, err := sms.ParseMSISDN(n)
			if err != nil {
				return nil, fmt.Errorf("route %s: number %q: %w", r.Name, n, err)
			}
			rr.numbers[a.String()] = true
		}
		m.routes = append(m.routes, rr)
	}
	if err := m.setupMR(o); err != nil {
		return nil, err
	}
	if m.tr != nil {
		m.wg.Add(1)
		go m.pruneMR()
	}
	var open sync.WaitGroup
	open.Add(len(m.routes))
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		open.Wait()
		m.heldWG.Wait() // reports held for their mapping (mr.go) are handed on first
		close(m.in)
	}()
	for _, r := range m.routes {
		m.wg.Add(1)
		go m.forward(r, &open)
	}
	return m, nil
}

func (m *Mux) forward(r *route, open *sync.WaitGroup) {
	defer m.wg.Done()
	defer open.Done()
	src := r.Transport.Inbound()
	for {
		select {
		case <-m.stop:
			return
		case msg, ok := <-src:
			if !ok {
				return
			}
			r.recvd.Add(1)
			if msg, ok = m.translateIn(r, msg); !ok {
				continue
			}
			select {
			case m.in <- msg:
			case <-m.stop:
				if msg.Reject != nil {
					msg.Reject(context.Background())
				}
				return
			}
		}
	}
}

// Inbound implements sms.Transport: what every route received.
func (m *Mux) Inbound() <-chan sms.Inbound {
	if m.in == nil { // the zero Mux receives nothing
		return closedInbound
	}
	return m.in
}

var closedInbound = func() chan sms.Inbound { c := make(chan sms.Inbound); close(c); return c }()

// Routes returns the names of the routes that may send from number, in the
// order they are tried now (ready ones first).
func (m *Mux) Routes(number string) []string {
	var out []string
	for _, r := range m.candidates(number) {
		out = append(out, r.Name)
	}
	return out
}

func (m *Mux) candidates(from string) []*route {
	key := ""
	if from != "" {
		if a, err := sms.ParseMSISDN(from); err == nil {
			key = a.String()
		} else {
			key = strings.TrimSpace(from)
		}
	}
	var ready, later []*route
	for _, r := range m.routes {
		if key != "" && len(r.numbers) > 0 && !r.numbers[key] {
			continue
		}
		if r.Ready != nil && !r.Ready() {
			later = append(later, r)
		} else {
			ready = append(ready, r)
		}
	}
	return append(ready, later...)
}

// SendTPDU implements sms.Transport: it sends over the first route that may
// send from from and is ready, failing over to the next one on a
// retryable error. Errors: ErrNoRoute, a permanent error of a route, or
// the last route's error.
func (m *Mux) SendTPDU(ctx context.Context, from, to string, tpdu []byte) (string, uint8, error) {
	cands := m.candidates(from)
	if len(cands) == 0 {
		return "", 0, fmt.Errorf("%w: %s", ErrNoRoute, from)
	}
	var last error
	for i, r := range cands {
		tok := m.sending(r, tpdu) // until its TP-MR is mapped (mr.go)
		sim, mr, err := r.Transport.SendTPDU(ctx, from, to, tpdu)
		if err == nil {
			r.sent.Add(1)
			defer m.sent(tok)
			return m.translateSent(r, sim, to, tpdu, mr)
		}
		m.sent(tok)
		r.failed.Add(1)
		last = fmt.Errorf("route %s: %w", r.Name, err)
		if !outbox.Retryable(err) || ctx.Err() != nil {
			return "", 0, last
		}
		if i+1 < len(cands) {
			r.failedOver.Add(1)
		}
	}
	return "", 0, last
}

// Stats returns per-route counters in route order.
func (m *Mux) Stats() []Stats {
	out := make([]Stats, 0, len(m.routes))
	for _, r := range m.routes {
		out = append(out, Stats{Name: r.Name, Sent: r.sent.Load(), Failed: r.failed.Load(),
			FailedOver: r.failedOver.Load(), Received: r.recvd.Load()})
	}
	return out
}

// Close stops merging. Messages not yet handed on are rejected back to
// their transport.
func (m *Mux) Close() error {
	if m.stop == nil {
		return nil // the zero Mux: nothing started
	}
	var err error
	m.once.Do(func() {
		close(m.stop)
		m.wg.Wait()
		if m.tr != nil {
			err = m.tr.close()
		}
	})
	m.wg.Wait()
	return err
}

var _ sms.Transport = (*Mux)(nil)
