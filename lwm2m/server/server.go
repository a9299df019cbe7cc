package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/internal/logthrottle"
	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
)

// Server is an LwM2M server. Create it with New, hand Handler(name) to each
// bearer.Endpoint it serves, Attach the Endpoints, and Close it at the end.
// A zero Server (not made by New) refuses everything: its calls return
// ErrNotCreated, its handlers answer 5.03.
type Server struct {
	store registry.Store
	cfg   config
	log   *slog.Logger

	mu        sync.RWMutex
	endpoints map[string]*bearer.Endpoint // by transport name

	events eventHub
	stats  Stats

	wake   chan struct{} // pokes the expiry loop
	stop   chan struct{}
	done   chan struct{}
	closed atomic.Bool

	obs   observations
	dp    sendReceiver
	addrs addrIndex
	last  lastValues

	queue atomic.Pointer[Queue] // queue mode (EnableQueue), nil when off

	policy  policy         // who may register what (policy.go)
	sources *sourceLimiter // requests per source (limits.go); nil: no limit
	// Refusals are logged through these: the first lines of every 10 s,
	// then one line saying how many were held back (Stats keep totals).
	refusedLog, refusedAuthLog logthrottle.Limiter
}

// Option configures a Server. An option given a value out of its range
// makes New fail with an error wrapping ErrInvalidOption.
type Option func(*config) error

type config struct {
	logger        *slog.Logger
	security      IdentityBinding
	nosec         NoSecRule
	nameFromID    func(bearer.Identity) (string, bool)
	peerCheck     PeerCheck
	now           func() time.Time
	expiryBatch   int
	limits        Limits
	maxObserve    int
	sendHandler   func(SendEvent)
	model         model.Resolver
	lastDevices   int
	lastPerDevice int
	// strictBinding refuses 1.1/1.2 bindings written the 1.0 way (b=UQS).
	strictBinding bool
	// node is recorded in each registration this server accepts.
	node string
}

// WithNode names this server's gateway node in a deployment of several
// sharing one registry.Store (redisstore): every Register and Update it
// accepts records the name (registry.Registration.Node), so the others
// know which node holds the client's session. Default "" (one node).
func WithNode(name string) Option { return func(c *config) error { c.node = name; return nil } }

// WithStrictBinding refuses (true) or accepts (false, the default) a
// LwM2M 1.1 or 1.2 Register or Update whose "b" carries the 1.0 queue
// letter ("b=UQS", "b=UQ"): accepted, the Q is read as queue mode and
// counted in Stats.LenientBinding; refused, the client gets 4.00.
func WithStrictBinding(strict bool) Option {
	return func(c *config) error { c.strictBinding = strict; return nil }
}

func (s *Server) parseOptions() registry.ParseOptions {
	return registry.ParseOptions{LenientBinding: !s.cfg.strictBinding}
}

// WithLogger sets the logger (default: none, a discard logger).
func WithLogger(l *slog.Logger) Option { return func(c *config) error { c.logger = l; return nil } }

// WithSecurity sets the endpoint bindings checked on Register, Update and
// De-register (default: none configured). An IdentityBinding that is also a
// Bindings (StaticSecurity) binds SMS numbers too; see policy.go for the
// rules.
func WithSecurity(s IdentityBinding) Option {
	return func(c *config) error { c.security = s; return nil }
}

// WithNoSec allows (true, the default) or refuses every client that is
// not authenticated by a security layer: WithNoSecRule(NoSecAll()) or
// WithNoSecRule(NoSecNone()). Even when allowed, an endpoint with a
// Binding registers only through it.
func WithNoSec(allow bool) Option {
	return func(c *config) error {
		c.nosec = NoSecNone()
		if allow {
			c.nosec = NoSecAll()
		}
		return nil
	}
}

// WithEndpointNameFromIdentity sets how a 1.1+ Register without "ep" gets
// its endpoint name from the peer's identity (Core 1.1 §6.2.1: the name may
// be omitted when the server can derive it from the security layer). The
// default uses the PSK identity, or the IdentityBinding.
func WithEndpointNameFromIdentity(f func(bearer.Identity) (string, bool)) Option {
	return func(c *config) error { c.nameFromID = f; return nil }
}

// PeerCheck decides whether a client at peer, reached over transport
// ("udp", "dtls", "sms", ... as given to Handler) with identity id, may
// register, update or de-register as endpoint ep. A non-nil error refuses
// the request with 4.03 Forbidden (on Register its text is the
// diagnostic payload and is logged).
//
// It is where a gateway binds what a security layer cannot: a NoSec SMS
// client is known only by its MSISDN, so the number must be the one
// configured for the endpoint name (otherwise a device could register as
// another and have that one's commands and wake-ups sent to itself).
type PeerCheck func(ep, transport string, peer net.Addr, id bearer.Identity) error

// WithPeerCheck sets a PeerCheck run on Register (after the IdentityBinding
// rules), Update and De-register (default: none).
func WithPeerCheck(f PeerCheck) Option { return func(c *config) error { c.peerCheck = f; return nil } }

// WithClock sets the time source (tests).
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return fmt.Errorf("%w: WithClock(nil)", ErrInvalidOption)
		}
		c.now = now
		return nil
	}
}

// WithSendHandler sets the callback for data sent by clients with the 1.1
// Send operation (POST /dp); it runs after the 2.04 answer, one call at a
// time. Send data also goes to event subscribers.
func WithSendHandler(f func(SendEvent)) Option {
	return func(c *config) error { c.sendHandler = f; return nil }
}

// WithMaxObservations bounds the observations the server keeps (default
// 100,000).
func WithMaxObservations(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return fmt.Errorf("%w: WithMaxObservations(%d) is negative", ErrInvalidOption, n)
		}
		c.maxObserve = n
		return nil
	}
}

// New returns a Server keeping registrations in store and starts its expiry
// loop (stopped by Close). It fails, starting nothing, on a nil store or an
// option out of its range (ErrInvalidOption).
func New(store registry.Store, opts ...Option) (*Server, error) {
	if store == nil {
		return nil, fmt.Errorf("lwm2m server: New: %w: nil store", ErrInvalidOption)
	}
	c := config{nosec: NoSecAll(), now: time.Now, expiryBatch: 1024, maxObserve: 100_000,
		lastDevices: DefaultLastValueDevices, lastPerDevice: DefaultLastValuesPerDevice}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, fmt.Errorf("lwm2m server: New: %w", err)
		}
	}
	c.limits = c.limits.withDefaults()
	if c.limits.MinLifetime > c.limits.MaxLifetime {
		return nil, fmt.Errorf("lwm2m server: New: %w: lifetime bounds [%d, %d] are empty",
			ErrInvalidOption, c.limits.MinLifetime, c.limits.MaxLifetime)
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if c.model == nil {
		c.model = model.DefaultRegistry()
	}
	s := &Server{
		store: store, cfg: c, log: c.logger,
		policy:    policy{bindings: bindingsOf(c.security), nosec: c.nosec, peerCheck: c.peerCheck},
		sources:   newSourceLimiter(c.limits),
		endpoints: map[string]*bearer.Endpoint{},
		wake:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	s.events.init()
	s.obs.init(c.maxObserve)
	s.addrs.init()
	s.last.init(c.lastDevices, c.lastPerDevice)
	store.Range(func(r *registry.Registration) bool { s.addrs.set(r); return true })
	go s.expiryLoop()
	return s, nil
}

// Store returns the registration store.
func (s *Server) Store() registry.Store { return s.store }

// Attach makes ep the Endpoint used to reach clients that registered over
// the transport called name (the name given to Handler).
func (s *Server) Attach(name string, ep *bearer.Endpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.endpoints == nil { // a zero Server
		return
	}
	s.endpoints[name] = ep
	if ep == nil {
		return
	}
	if ur, ok := ep.Bearer().(bearer.UnreachableReporter); ok {
		// An ICMP port unreachable from a queue-mode device's port
		// means it sleeps (see Queue).
		ur.OnUnreachable(func(peer net.Addr) {
			if q := s.queue.Load(); q != nil {
				q.unreachable(name, peer)
			}
		})
	}
}

func (s *Server) endpoint(name string) (*bearer.Endpoint, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ep, ok := s.endpoints[name]
	return ep, ok
}

// Close stops the expiry loop, ends the event subscriptions and cancels
// the server's observations locally. It does not close the store or the
// Endpoints.
func (s *Server) Close() error {
	if s.stop == nil { // a zero Server: nothing runs
		return nil
	}
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(s.stop)
	<-s.done
	s.obs.closeAll()
	s.events.close()
	return nil
}

// Lookup returns the registration of an endpoint name.
func (s *Server) Lookup(endpoint string) (*registry.Registration, bool) {
	if s.store == nil {
		return nil, false
	}
	return s.store.ByEndpoint(endpoint)
}

func (s *Server) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// expiryLoop removes registrations whose lifetime ended: one timer set to
// the store's earliest expiry (a heap inside the store), not a goroutine
// or timer per device.
func (s *Server) expiryLoop() {
	defer close(s.done)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		wait := time.Hour
		if next, ok := s.store.NextExpiry(); ok {
			wait = max(next.Sub(s.cfg.now()), 0)
		}
		t.Reset(wait)
		select {
		case <-s.stop:
			return
		case <-s.wake:
			continue
		case <-t.C:
		}
		s.expireDue()
	}
}

func (s *Server) expireDue() {
	for {
		gone, err := s.store.Expire(context.Background(), s.cfg.now(), s.cfg.expiryBatch)
		if err != nil {
			s.log.Error("lwm2m server: expiry", "err", err)
			return
		}
		for _, r := range gone {
			s.stats.Expired.Add(1)
			s.log.Info("lwm2m registration expired", "ep", r.Endpoint, "location", r.Location())
			s.addrs.del(r)
			s.obs.dropEndpoint(r.Endpoint)
			s.events.publish(Event{Kind: Expired, Registration: r})
			s.queueGone(r.Endpoint)
		}
		if len(gone) < s.cfg.expiryBatch {
			return
		}
	}
}

// Stats are the server's counters, read with Load.
type Stats struct {
	Registered   atomic.Uint64 // successful Register
	Updated      atomic.Uint64 // successful Update
	Deregistered atomic.Uint64 // successful De-register
	Expired      atomic.Uint64 // lifetime expiries
	Rejected     atomic.Uint64 // registration-interface requests refused (4.xx/5.xx)
	Forbidden    atomic.Uint64 // of which security policy refusals (4.03)
	// Of Rejected, by reason: from another source than a NoSec
	// registration's (4.04), over the source rate (4.29), lifetime out of
	// bounds (4.00), object list too large (4.13), registry full (5.03).
	WrongSource, RateLimited, BadLifetime, TooLarge, Full atomic.Uint64
	// Unavailable: of Rejected, requests refused because the registry
	// store was out of reach (a Redis outage: 5.03 with Max-Age 5; the
	// client retries, nothing was stored).
	Unavailable atomic.Uint64
	// LogSuppressed counts refusal log lines held back by the log limit.
	LogSuppressed  atomic.Uint64
	Notifications  atomic.Uint64 // observe notifications received
	Sends          atomic.Uint64 // Send (/dp) requests accepted
	EventsDropped  atomic.Uint64 // events not delivered to a full subscription
	StoreErrors    atomic.Uint64 // store failures (5.xx)
	BadPayloadResp atomic.Uint64 // device responses that could not be used
	// LenientBinding counts 1.1/1.2 Register and Update requests accepted
	// with a 1.0-style binding ("b=UQS"): see WithStrictBinding.
	LenientBinding atomic.Uint64
}

// Stats returns the server's counters.
func (s *Server) Stats() *Stats { return &s.stats }

var errClosed = errors.New("lwm2m server: closed")

// ErrNotCreated is returned by the calls of a zero Server: use New.
var ErrNotCreated = errors.New("lwm2m server: zero Server, not created by New")

// ErrInvalidOption is wrapped by New's error for an option given a value
// out of its range (a negative limit, WithClock(nil), empty lifetime
// bounds).
var ErrInvalidOption = errors.New("lwm2m server: invalid option")

func (s *Server) checkOpen() error {
	if s.store == nil {
		return ErrNotCreated
	}
	if s.closed.Load() {
		return errClosed
	}
	return nil
}

// ErrNotRegistered is returned by device management calls for an endpoint
// name with no registration.
var ErrNotRegistered = errors.New("lwm2m server: endpoint not registered")

// ErrNoTransport is returned when the transport a device registered over
// has no attached Endpoint.
var ErrNoTransport = errors.New("lwm2m server: no endpoint attached for transport")

func notRegistered(ep string) error { return fmt.Errorf("%w: %q", ErrNotRegistered, ep) }
