package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/link"
	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

// Client is an LwM2M client. Create it with New, add objects, give it to
// bearer.NewEndpoint as the handler, then Start it.
//
// The zero Client is not usable: use New. Its calls fail with
// ErrNotCreated, as a handler it answers 5.03, and Close does nothing.
type Client struct {
	name string
	cfg  config
	log  *slog.Logger

	t tree

	mu       sync.Mutex
	ep       *bearer.Endpoint
	server   net.Addr
	location string
	// sentLinks is the object list the server has: the payload of the
	// last successful Register, or of an Update that carried one.
	sentLinks string
	updateC   chan struct{}
	stop      chan struct{}
	loopDone  chan struct{}
	started   bool
	closed    bool
	bsFinish  chan struct{} // non-nil while a bootstrap runs
	refused   atomic.Uint64

	sleep    *sleeper     // queue mode (StartQueueMode), nil otherwise
	awakeNow atomic.Bool  // queue mode: awake
	lastSeen atomic.Int64 // queue mode: Unix ns of the last exchange

	obs observers

	sess sessionState // WithRedial (session.go)
}

type config struct {
	lifetime uint32
	version  string
	binding  string
	queue    bool
	sms      string
	model    model.Resolver
	defs     *model.Registry
	logger   *slog.Logger
	retry    time.Duration
	retrySet bool
	clock    Clock
	formats  []content.Format
	redial   func(ctx context.Context) (*bearer.Endpoint, error)
}

// Option configures New. An option given a value out of its range makes
// New fail with an error wrapping ErrInvalidOption.
type Option func(*config) error

// WithLifetime sets the registration lifetime in seconds (default 86400).
func WithLifetime(s uint32) Option {
	return func(c *config) error {
		if s == 0 {
			return fmt.Errorf("%w: WithLifetime(0)", ErrInvalidOption)
		}
		c.lifetime = s
		return nil
	}
}

// WithVersion sets the LwM2M version announced ("1.0", "1.1" default, "1.2").
func WithVersion(v string) Option {
	return func(c *config) error {
		switch v {
		case "1.0", "1.1", "1.2":
		default:
			return fmt.Errorf("%w: WithVersion(%q): not 1.0, 1.1 or 1.2", ErrInvalidOption, v)
		}
		c.version = v
		return nil
	}
}

// WithBinding sets the binding ("U" default; 1.0: "UQ", "UQS", ...).
func WithBinding(b string) Option {
	return func(c *config) error {
		if b == "" || strings.Trim(b, "UQSNT") != "" {
			return fmt.Errorf("%w: WithBinding(%q): not made of U, Q, S, N, T", ErrInvalidOption, b)
		}
		c.binding = b
		return nil
	}
}

// WithQueueMode sets the 1.1+ Q parameter.
func WithQueueMode() Option { return func(c *config) error { c.queue = true; return nil } }

// WithSMSNumber sets the "sms" MSISDN parameter.
func WithSMSNumber(msisdn string) Option { return func(c *config) error { c.sms = msisdn; return nil } }

// WithModel sets the object definitions (default model.DefaultRegistry()).
func WithModel(r *model.Registry) Option { return func(c *config) error { c.defs = r; return nil } }

// WithLogger sets the logger (default: none, a discard logger).
func WithLogger(l *slog.Logger) Option { return func(c *config) error { c.logger = l; return nil } }

// WithRetry sets the Communication Retry Timer (the base wait of the
// registration procedure, see RetryPolicy) of a client whose Server
// object has no /1/x/18 (default 60 s, LwM2M 1.1).
func WithRetry(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: WithRetry(%v): must be positive", ErrInvalidOption, d)
		}
		c.retry, c.retrySet = d, true
		return nil
	}
}

// New returns a client with endpoint name name and no objects. It fails
// on an option out of its range (ErrInvalidOption).
func New(name string, opts ...Option) (*Client, error) {
	cfg := config{lifetime: 86400, version: "1.1", binding: "U", retry: 60 * time.Second,
		formats: []content.Format{content.SenMLJSON, content.SenMLCBOR, content.TLV}}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("lwm2m client: New: %w", err)
		}
	}
	if cfg.defs == nil {
		cfg.defs = model.DefaultRegistry()
	}
	cfg.model = cfg.defs
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	if cfg.version == "1.2" {
		cfg.formats = append(cfg.formats, content.LwM2MCBOR)
	}
	c := &Client{name: name, cfg: cfg, log: cfg.logger, updateC: make(chan struct{}, 1), stop: make(chan struct{})}
	c.t.init()
	c.obs.init()
	return c, nil
}

// Name returns the endpoint name.
func (c *Client) Name() string { return c.name }

// AddObject adds object id, described by the client's model, with hooks h.
func (c *Client) AddObject(id uint16, h Handlers) error {
	if c.stop == nil {
		return ErrNotCreated
	}
	def, ok := c.cfg.defs.Object(id)
	if !ok {
		return fmt.Errorf("%w: %d is not in the model", ErrNoObject, id)
	}
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	c.t.objs[id] = &objNode{def: def, h: h, insts: map[uint16]instNode{}}
	return nil
}

// AddInstance creates an empty instance of an added object.
func (c *Client) AddInstance(obj, inst uint16) error {
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	o, ok := c.t.obj(obj)
	if !ok {
		return fmt.Errorf("%w: %d", ErrNoObject, obj)
	}
	if _, ok := o.insts[inst]; ok {
		return ErrExists
	}
	if len(o.insts) >= MaxInstances {
		return ErrTooMany
	}
	o.insts[inst] = instNode{}
	return nil
}

// Set stores a resource (or resource instance) value, creating the
// object instance when needed, and notifies observers of it.
func (c *Client) Set(p path.Path, v content.Value) error {
	c.t.mu.Lock()
	err := c.t.set(p, v)
	c.t.mu.Unlock()
	if err == nil {
		c.obs.changed(p)
	}
	return err
}

// Get returns the value of a single resource or resource instance.
func (c *Client) Get(p path.Path) (content.Value, bool) {
	c.t.mu.RLock()
	defer c.t.mu.RUnlock()
	recs, err := c.t.records(p)
	if err != nil || len(recs) != 1 || recs[0].Path != p {
		return content.Value{}, false
	}
	return recs[0].Value, true
}

// ObjectLinks returns the Register/Update payload: the root link with the
// announced content formats, then every object (with ver when not 1.0 in
// the announced LwM2M version, see objectVersion) and instance, the
// Security and OSCORE objects excepted (Core §6.2.1).
//
// The root link's ct differs by version: LwM2M 1.1 (Core §6.2.1.1,
// Table 6.2.1.1-1) gives one Content-Format, the preferred one (the first
// of the client's formats, SenML JSON by default); the space-separated
// quoted list is LwM2M 1.2 syntax, and a 1.1 server (Wakaama's) refuses a
// Register that carries it. LwM2M 1.0 has no root link.
func (c *Client) ObjectLinks() []link.Link {
	c.t.mu.RLock()
	defer c.t.mu.RUnlock()
	var links []link.Link
	if c.cfg.version != "1.0" {
		root := link.Link{Target: "/"}
		root.SetQuoted("rt", "oma.lwm2m")
		cts := make([]string, len(c.cfg.formats))
		for i, f := range c.cfg.formats {
			cts[i] = strconv.Itoa(int(f))
		}
		switch {
		case len(cts) == 0:
		case c.cfg.version == "1.1":
			root.Set("ct", cts[0])
		default:
			root.SetQuoted("ct", strings.Join(cts, " "))
		}
		links = append(links, root)
	}
	ids := make([]int, 0, len(c.t.objs))
	for id := range c.t.objs {
		ids = append(ids, int(id))
	}
	sortInts(ids)
	for _, id := range ids {
		if id == 0 || id == 21 { // Security and OSCORE are never listed
			continue
		}
		o := c.t.objs[uint16(id)]
		ver := objectVersion(o.def, c.cfg.version)
		if ver != "1.0" || len(o.insts) == 0 {
			l := link.Link{Target: path.Object(uint16(id)).String()}
			if ver != "1.0" {
				l.Set("ver", ver)
			}
			links = append(links, l)
		}
		iids := make([]int, 0, len(o.insts))
		for iid := range o.insts {
			iids = append(iids, int(iid))
		}
		sortInts(iids)
		for _, iid := range iids {
			links = append(links, link.Link{Target: path.Instance(uint16(id), uint16(iid)).String()})
		}
	}
	return links
}

// objectVersion is the version of object def a client of LwM2M version
// enabler announces ("1.0" when the definition states none). The core
// objects of the LwM2M 1.0 enabler (0 Security … 7 Connectivity
// Statistics) are all version 1.0; the built-in definitions are their
// 1.1-and-later editions (Security, Server, Device 1.1, Connectivity
// Monitoring 1.3, ...), so a 1.0 registration announces 1.0 for those, as
// a 1.0 server expects. Other objects keep the version of their definition.
func objectVersion(def *model.Object, enabler string) string {
	v := def.Version
	if v == "" {
		v = "1.0"
	}
	if enabler == "1.0" && def.ID <= model.ConnectivityStatisticsID && def.LwM2MVersion != "" && def.LwM2MVersion != "1.0" {
		return "1.0"
	}
	return v
}

func sortInts(a []int) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// ErrNotRegistered is returned by Update, Deregister and Send before a
// successful Register.
var ErrNotRegistered = errors.New("lwm2m client: not registered")

// ErrNotCreated is returned by a zero Client (not made by New).
var ErrNotCreated = errors.New("lwm2m client: zero Client, not made by New")

// ErrInvalidOption is wrapped by New's error for an option given a value
// out of its range (WithLifetime(0), WithVersion("2.0"), WithRetry(0)).
var ErrInvalidOption = errors.New("lwm2m client: invalid option")

// RegistrationError is a Register/Update/De-register the server refused.
type RegistrationError struct {
	Op   string
	Code codes.Code
	Diag string
}

func (e *RegistrationError) Error() string {
	return fmt.Sprintf("lwm2m client: %s refused: %v %s", e.Op, e.Code, e.Diag)
}

// Start registers with the server at addr through ep and starts the
// update loop, which sends an Update before the lifetime runs out (at 90%
// of it), re-registers when the server forgot the client (4.04), and
// retries after errors. ep must have been created with the client as its
// handler; nil with WithRedial (the client dials).
func (c *Client) Start(ctx context.Context, ep *bearer.Endpoint, addr net.Addr) error {
	if c.stop == nil {
		return ErrNotCreated
	}
	c.mu.Lock()
	if c.started || c.closed {
		c.mu.Unlock()
		return errors.New("lwm2m client: already started or closed")
	}
	c.ep, c.server = ep, addr
	c.mu.Unlock()
	if err := c.ensureSession(ctx); err != nil {
		return err
	}
	if err := c.Register(ctx); err != nil {
		c.sessionLost(err)
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("lwm2m client: closed")
	}
	c.started = true
	c.loopDone = make(chan struct{})
	go c.loop()
	return nil
}

// Register sends a Register (POST /rd) and records the location.
func (c *Client) Register(ctx context.Context) error {
	if c.stop == nil {
		return ErrNotCreated
	}
	c.mu.Lock()
	ep, srv := c.ep, c.server
	c.mu.Unlock()
	if ep == nil {
		return errors.New("lwm2m client: no endpoint")
	}
	req := bearer.NewRequest(codes.POST, srv, "/rd")
	q := []string{"ep=" + c.name, "lt=" + strconv.FormatUint(uint64(c.lifetime()), 10), "lwm2m=" + c.cfg.version, "b=" + c.cfg.binding}
	if c.cfg.sms != "" {
		q = append(q, "sms="+c.cfg.sms)
	}
	if c.cfg.queue && c.cfg.version != "1.0" {
		q = append(q, "Q")
	}
	for _, s := range q {
		req.AddOption(bearer.StringOption(message.URIQuery, s))
	}
	req.SetOption(bearer.ContentFormatOption(message.AppLinkFormat))
	req.Payload = link.Encode(c.ObjectLinks())
	resp, err := ep.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("lwm2m client: register: %w", err)
	}
	sent := string(req.Payload)
	if resp.Code != codes.Created {
		return &RegistrationError{Op: "register", Code: resp.Code, Diag: string(resp.Payload)}
	}
	loc := resp.LocationPath()
	if loc == "" {
		return &RegistrationError{Op: "register", Code: resp.Code, Diag: "no Location-Path"}
	}
	c.mu.Lock()
	c.location, c.sentLinks = loc, sent
	c.mu.Unlock()
	c.log.Info("lwm2m client registered", "ep", c.name, "location", loc)
	return nil
}

// lifetime is the Lifetime of the first LwM2M Server instance (/1/x/1)
// when there is one, else the WithLifetime value.
func (c *Client) lifetime() uint32 {
	c.t.mu.RLock()
	defer c.t.mu.RUnlock()
	if o, ok := c.t.objs[1]; ok {
		for _, iid := range slices.Sorted(maps.Keys(o.insts)) {
			if rn, ok := o.insts[iid][1]; ok && rn.multi == nil && rn.single.Int() > 0 && rn.single.Int() <= 1<<32-1 {
				return uint32(rn.single.Int())
			}
		}
	}
	return c.cfg.lifetime
}

// Location returns the registration location ("/rd/…"), "" before Register.
func (c *Client) Location() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.location
}

// Update sends a registration Update now. The object list goes along
// whenever it differs from the one the server last accepted (an instance
// was created or deleted, by the server or through AddInstance/Set), so
// the server's view never goes stale (Core §6.2.2: the Update carries
// the Objects and Object Instances when they changed); with objects true
// it goes along in any case.
func (c *Client) Update(ctx context.Context, objects bool) error {
	c.mu.Lock()
	ep, srv, loc, sent := c.ep, c.server, c.location, c.sentLinks
	c.mu.Unlock()
	if loc == "" {
		return ErrNotRegistered
	}
	req := bearer.NewRequest(codes.POST, srv, loc)
	payload := link.Encode(c.ObjectLinks())
	if objects || string(payload) != sent {
		req.SetOption(bearer.ContentFormatOption(message.AppLinkFormat))
		req.Payload = payload
	}
	resp, err := ep.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("lwm2m client: update: %w", err)
	}
	if resp.Code != codes.Changed {
		return &RegistrationError{Op: "update", Code: resp.Code, Diag: string(resp.Payload)}
	}
	if req.Payload != nil {
		c.mu.Lock()
		if c.location == loc {
			c.sentLinks = string(payload)
		}
		c.mu.Unlock()
	}
	return nil
}

// TriggerUpdate asks the update loop to send an Update now (what
// Execute on /1/x/8, Registration Update Trigger, does).
func (c *Client) TriggerUpdate() {
	select {
	case c.updateC <- struct{}{}:
	default:
	}
}

// Deregister sends a De-register (DELETE on the location).
func (c *Client) Deregister(ctx context.Context) error {
	c.mu.Lock()
	ep, srv, loc := c.ep, c.server, c.location
	c.mu.Unlock()
	if loc == "" {
		return ErrNotRegistered
	}
	resp, err := ep.Delete(ctx, srv, loc)
	if err != nil {
		return fmt.Errorf("lwm2m client: deregister: %w", err)
	}
	if resp.Code != codes.Deleted {
		return &RegistrationError{Op: "deregister", Code: resp.Code, Diag: string(resp.Payload)}
	}
	c.mu.Lock()
	c.location = ""
	c.mu.Unlock()
	return nil
}

func (c *Client) loop() {
	defer close(c.loopDone)
	lt := time.Duration(c.lifetime()) * time.Second
	period := max(lt*9/10, 500*time.Millisecond)
	t := time.NewTimer(period)
	defer t.Stop()
	fails := 0 // Update failures in a row
	for {
		lost := false
		select {
		case <-c.stop:
			return
		case <-t.C:
		case <-c.updateC:
		case <-c.endpointDone():
			// The session ended under the client (the server's
			// close_notify or fatal alert): a new one and a new
			// registration, through the registration procedure.
			c.log.Warn("lwm2m client: the secured session ended", "ep", c.name)
			c.sess.lost.Store(true)
			lost = true
		}
		if lost {
			if !c.reregister() {
				return
			}
			fails = 0
			t.Reset(period)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(lt/2, 5*time.Second))
		c.cancelOnStop(ctx, cancel)
		err := c.Update(ctx, false)
		cancel()
		var re *RegistrationError
		reregister := errors.As(err, &re) && re.Code == codes.NotFound // the server forgot us
		// No answer on a secured session that can be renewed: the server
		// may have lost it; a new session and a new registration.
		reregister = reregister || c.sessionLost(err)
		next := period
		if err != nil && !reregister {
			fails++
			c.log.Warn("lwm2m client: update failed", "ep", c.name, "failures", fails, "err", err)
			next, reregister = c.updateRetry(fails, period)
		}
		if reregister {
			if !c.reregister() {
				return
			}
			err, next = nil, period
		}
		if err == nil {
			fails = 0
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(next)
	}
}

// Close stops the update loop and the observations. It does not
// de-register (call Deregister first) and does not close the Endpoint.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed || c.stop == nil {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.stop)
	done := c.loopDone
	c.mu.Unlock()
	if done != nil {
		<-done
	}
	c.obs.closeAll()
	c.closeSession()
	return nil
}

// reregister runs the registration procedure, with its backoff (a refused
// device costs at most what the Server object allows), until Close. It
// reports false when the procedure gave up or the client closed: the
// loop stops.
func (c *Client) reregister() bool {
	rctx, rcancel := context.WithCancel(context.Background())
	defer rcancel()
	c.cancelOnStop(rctx, rcancel)
	if err := c.RegisterWithRetry(rctx); err != nil {
		if rctx.Err() == nil {
			c.log.Error("lwm2m client: registration failed, update loop stops", "ep", c.name, "err", err)
		}
		return false
	}
	return true
}

// Send sends the current values of paths to the server with the 1.1 Send
// operation (POST /dp, SenML CBOR; SenML JSON for a 1.1 client announcing
// it first).
func (c *Client) Send(ctx context.Context, paths ...path.Path) error {
	c.mu.Lock()
	ep, srv, loc := c.ep, c.server, c.location
	c.mu.Unlock()
	if loc == "" {
		return ErrNotRegistered
	}
	if c.cfg.version == "1.0" {
		return errors.New("lwm2m client: Send needs LwM2M 1.1 or later")
	}
	var recs []content.Record
	c.t.mu.RLock()
	for _, p := range paths {
		r, err := c.t.records(p)
		if err != nil {
			c.t.mu.RUnlock()
			return err
		}
		recs = append(recs, r...)
	}
	c.t.mu.RUnlock()
	f := content.SenMLCBOR
	body, err := content.Encode(f, path.Root, recs)
	if err != nil {
		return err
	}
	req := bearer.NewRequest(codes.POST, srv, "/dp")
	req.SetOption(bearer.ContentFormatOption(message.MediaType(f)))
	req.Payload = body
	resp, err := ep.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("lwm2m client: send: %w", err)
	}
	if resp.Code != codes.Changed {
		return &RegistrationError{Op: "send", Code: resp.Code, Diag: string(resp.Payload)}
	}
	return nil
}
