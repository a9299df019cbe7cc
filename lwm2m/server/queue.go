package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/internal/msisdn"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
)

// Queue mode (LwM2M 1.1/1.2 Core Queue Mode; 1.0 "UQ"/"UQS"/"SQ"): with
// EnableQueue, every device management call of the Go API (Read, Discover,
// Write, Write-Attributes, Execute, Create, Delete, Read-Composite,
// Write-Composite and the *Values helpers) for a device registered in queue
// mode goes through a durable queue.Manager: it is stored, sent at once
// while the device is awake and otherwise when it shows up (after an SMS
// wake-up where the device allows one). The call waits for the result
// within its context; when the context ends first it returns a
// *QueuedError carrying the request id, and the request stays queued
// (Queue.Wait, Queue.Get or Queue.Cancel with that id). Observe is not
// queued: its callback cannot outlive a restart.
//
// The Server is the queue's Executor: it sends a queued request with the
// CoAP token of its queue.Attempt, so a re-send of the same attempt is a
// duplicate the device's message layer answers from its cache.

// QueueConfig configures queue mode on a Server: the queue.Manager's
// Config, embedded, and what the Server adds around it.
type QueueConfig struct {
	// Config configures the queue.Manager; Config.Store is required
	// (queue.BoltStore for durability) and Config.Waker sends the SMS
	// wake-ups (smswake.New over the SMS bearer; nil disables
	// them). EnableQueue sets Config.Executor to the Server (it must be
	// left nil) and, when Config.Logger is nil, gives the Manager the
	// Server's logger. Config.DefaultWindow is the awake window after the
	// device sent anything; 0 uses MAX_TRANSMIT_WAIT of the bearer it used.
	// Config.ExecTimeout bounds one attempt (default: DefaultWindow, or
	// 30 s).
	queue.Config
	// Peers, if set (smswake.Peers over the *sms.Bearer, which also sets
	// their SMS security mode: DTLS unless NoSec is chosen explicitly),
	// learns the configured SMS number (DeviceSettings.MSISDN or the
	// endpoint's Binding) of a device that registered over another
	// transport, so the SMS bearer accepts its messages and sends from
	// the right SIM. A registration's own "sms=" number is never added.
	Peers PeerAdder
	// Device returns the per-device settings (number override, server
	// SIM, framing, transport argument, awake window); nil uses the
	// registration alone.
	Device func(reg *registry.Registration) DeviceSettings
	// ShortServerID picks the LwM2M Server Object instance (/1/x, the one
	// whose resource 0 is this value) for the Trigger read and /1/x/8; 0
	// takes the first instance.
	ShortServerID uint16
	// Triggers, when set, keeps what the server learned of each device's
	// /1/x/21 Trigger where every node (and the next start) finds it;
	// without it that is known only to the node that read it, until the
	// device registers again.
	Triggers TriggerStore
}

// PeerAdder learns the SMS peer of a device from its wake target: its
// number (MSISDN), the server SIM it knows and its framing (WAPPush).
// smswake.Peers implements it over the SMS bearer.
type PeerAdder interface {
	AddWakePeer(t queue.WakeTarget) error
}

// TriggerStore keeps the /1 instance of this server and the Trigger value
// (/1/x/21) of each device (redisstore.Triggers). Errors are logged; the
// value is then read again at the device's next registration.
type TriggerStore interface {
	GetTrigger(ep string) (inst uint16, on, ok bool, err error)
	SetTrigger(ep string, inst uint16, on bool) error
}

// DeviceSettings are per-device queue-mode settings, typically from the
// deployment's device table.
type DeviceSettings struct {
	// MSISDN is the device's SMS number from the operator's provisioning
	// store; "" takes the number of the endpoint's Binding (WithSecurity).
	// Wake-ups go only to a configured number, never to the "sms=" of a
	// registration (anyone can register with any sms=); when the
	// registration's sms= differs from the configured number, the device
	// is not woken.
	MSISDN string
	// SIM is the server number the device accepts SMS from.
	SIM string
	// WAPPush frames the trigger as WAP Push rather than raw CoAP.
	WAPPush bool
	// TransportArg is the /1/x/8 Execute argument ("U": send the Update
	// over UDP), LwM2M 1.1+.
	TransportArg string
	// Window overrides QueueConfig's Config.DefaultWindow.
	Window time.Duration
	// NoWake disables SMS wake-ups of the device.
	NoWake bool
}

// ErrQueued is matched by *QueuedError.
var ErrQueued = errors.New("lwm2m server: request queued, device asleep")

// QueuedError is returned by a device management call whose context ended
// while the request waited in the queue for a sleeping device. The request
// stays queued: Queue.Wait(ctx, ID) gets its result later.
type QueuedError struct {
	ID       uint64
	Endpoint string
	Err      error // the context's error
}

func (e *QueuedError) Error() string {
	return fmt.Sprintf("lwm2m server: request %d for %s still queued: %v", e.ID, e.Endpoint, e.Err)
}

// Is matches ErrQueued.
func (e *QueuedError) Is(target error) bool { return target == ErrQueued }

// Unwrap returns the context error.
func (e *QueuedError) Unwrap() error { return e.Err }

// Queue is queue mode on a Server: its queue.Manager and the hooks that
// feed it. Close it before the Server. The zero Queue is not usable
// (Server.EnableQueue makes one): its calls fail with ErrNotCreated.
type Queue struct {
	s   *Server
	m   *queue.Manager
	cfg QueueConfig

	execTimeout time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	probes atomic.Int64 // Trigger reads in flight (bounded by maxProbes)

	mu       sync.Mutex
	triggers map[string]triggerInfo // /1/x/21 learned at Register, dropped on de-registration
	inflight map[string]inflight    // endpoint → the queued request being sent to it
}

// inflight is a queued request on the wire: its Steer and the transport
// its exchange runs on.
type inflight struct {
	steer     *bearer.Steer
	transport string
}

// errUnreachable aborts an exchange whose device's port answered with an
// ICMP port unreachable: the device sleeps (its socket is closed).
var errUnreachable = fmt.Errorf("%w: ICMP port unreachable", queue.ErrDeviceAsleep)

type triggerInfo struct {
	inst uint16
	on   bool
}

func (q *Queue) trigger(ep string) (triggerInfo, bool) {
	q.mu.Lock()
	t, ok := q.triggers[ep]
	q.mu.Unlock()
	if ok || q.cfg.Triggers == nil {
		return t, ok
	}
	inst, on, ok, err := q.cfg.Triggers.GetTrigger(ep)
	if err != nil {
		q.s.log.Warn("lwm2m queue: trigger store", "ep", ep, "err", err)
		return t, false
	}
	if ok {
		t = triggerInfo{inst: inst, on: on}
		q.mu.Lock()
		q.triggers[ep] = t
		q.mu.Unlock()
	}
	return t, ok
}

const maxProbes = 256

type ctxKey int

const (
	directKey ctxKey = iota + 1 // bypass the queue (the Trigger read)
)

// EnableQueue turns on queue mode: it opens a queue.Manager on cfg.Store
// with the Server as its Executor and hooks registration traffic into it.
// It may be called once.
func (s *Server) EnableQueue(cfg QueueConfig) (*Queue, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	if cfg.Store == nil {
		return nil, fmt.Errorf("lwm2m server: queue mode needs a Store")
	}
	if cfg.Executor != nil {
		return nil, fmt.Errorf("lwm2m server: QueueConfig's Executor is the Server: leave it nil")
	}
	q := &Queue{s: s, cfg: cfg, triggers: map[string]triggerInfo{}, inflight: map[string]inflight{}}
	q.ctx, q.cancel = context.WithCancel(context.Background())
	exec := cfg.ExecTimeout
	if exec == 0 {
		exec = cfg.DefaultWindow
	}
	if exec == 0 {
		exec = 30 * time.Second
	}
	qc := cfg.Config
	qc.Executor, qc.ExecTimeout = q, exec
	if qc.Logger == nil {
		qc.Logger = s.log.With("component", "queue")
	}
	m, err := queue.New(qc)
	if err != nil {
		q.cancel()
		return nil, err
	}
	q.m, q.execTimeout = m, exec
	if !s.queue.CompareAndSwap(nil, q) {
		q.cancel()
		_ = m.Close()
		return nil, errors.New("lwm2m server: queue mode already enabled")
	}
	// Devices registered before (a restart with a durable registry) get
	// their wake targets back; their Trigger resource is read when they
	// next show up.
	s.store.Range(func(r *registry.Registration) bool {
		if r.Queue {
			q.configure(r, false)
		}
		return true
	})
	return q, nil
}

// Manager returns the queue.Manager (Get, Wait, Cancel, Pending,
// Subscribe, Stats).
func (q *Queue) Manager() *queue.Manager { return q.m }

// Enqueue stores req for its device and returns its id at once.
func (q *Queue) Enqueue(ctx context.Context, req queue.Request) (uint64, error) {
	if q.m == nil {
		return 0, ErrNotCreated
	}
	return q.m.Enqueue(ctx, req)
}

// Wait waits for request id within ctx (see queue.Manager.Wait).
func (q *Queue) Wait(ctx context.Context, id uint64) (*queue.Record, error) {
	if q.m == nil {
		return nil, ErrNotCreated
	}
	return q.m.Wait(ctx, id)
}

// Close stops the queue's goroutines and the Manager; queued requests stay
// in the Store for the next start. Close it before the Server.
func (q *Queue) Close() error {
	if q.s == nil || q.m == nil { // a zero Queue: EnableQueue makes them
		return nil
	}
	q.s.queue.CompareAndSwap(q, nil)
	q.cancel()
	q.wg.Wait()
	return q.m.Close()
}

// Queued reports whether device management requests for ep go through
// the queue (queue mode is enabled and ep is registered in queue mode): the
// queue then wakes the device when a request waits for it.
func (s *Server) Queued(ep string) bool {
	reg, ok := s.Lookup(ep)
	return ok && s.queueFor(context.Background(), reg) != nil
}

// queueFor returns the queue a call for reg goes through, or nil.
func (s *Server) queueFor(ctx context.Context, reg *registry.Registration) *Queue {
	q := s.queue.Load()
	if q == nil || !reg.Queue || ctx.Value(directKey) != nil {
		return nil
	}
	return q
}

// opKind maps a do() operation name to the queue kind.
func opKind(op string, code codes.Code) (queue.Kind, bool) {
	switch op {
	case "read":
		return queue.KindRead, true
	case "discover":
		return queue.KindDiscover, true
	case "write":
		if code == codes.POST {
			return queue.KindWritePartial, true
		}
		return queue.KindWrite, true
	case "write-attributes":
		return queue.KindWriteAttributes, true
	case "execute":
		return queue.KindExecute, true
	case "create":
		return queue.KindCreate, true
	case "delete":
		return queue.KindDelete, true
	case "read-composite":
		return queue.KindReadComposite, true
	case "write-composite":
		return queue.KindWriteComposite, true
	}
	return 0, false
}

// toQueued turns a built CoAP request into a queue.Request: the method
// comes from the kind, Args holds the Accept number (reads) or the
// Uri-Query list joined by "&" (Write-Attributes).
func toQueued(ep string, kind queue.Kind, p path.Path, req *bearer.Request) queue.Request {
	qr := queue.Request{Endpoint: ep, Kind: kind, Paths: []string{p.String()}, Payload: req.Payload, ContentFormat: queue.NoContentFormat}
	if cf, err := req.Options.ContentFormat(); err == nil {
		qr.ContentFormat = int32(cf)
	}
	switch kind {
	case queue.KindWriteAttributes:
		qr.Args = strings.Join(req.Queries(), "&")
	default:
		if a, err := req.Options.GetUint32(message.Accept); err == nil {
			qr.Args = strconv.FormatUint(uint64(a), 10)
		}
	}
	return qr
}

// viaQueue runs a device management request through the queue and returns
// the device's answer as a Response.
func (q *Queue) viaQueue(ctx context.Context, qr queue.Request) (*bearer.Response, error) {
	id, err := q.m.Enqueue(ctx, qr)
	if err != nil {
		return nil, fmt.Errorf("lwm2m %s %s %s: %w", qr.Kind, qr.Endpoint, qr.Paths[0], err)
	}
	rec, err := q.m.Wait(ctx, id)
	if err != nil {
		if ctx.Err() != nil && (errors.Is(err, ctx.Err()) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			return nil, &QueuedError{ID: id, Endpoint: qr.Endpoint, Err: ctx.Err()}
		}
		return nil, fmt.Errorf("lwm2m %s %s %s: %w", qr.Kind, qr.Endpoint, qr.Paths[0], err)
	}
	if rec.Result == nil {
		return nil, fmt.Errorf("lwm2m %s %s %s: request %d done without result", qr.Kind, qr.Endpoint, qr.Paths[0], id)
	}
	return resultResponse(rec.Kind, rec.Result), nil
}

// resultResponse rebuilds the Response of a stored Result (a Create's
// Location-Path is kept in the Result payload).
func resultResponse(kind queue.Kind, r *queue.Result) *bearer.Response {
	resp := &bearer.Response{Code: codes.Code(r.Code), Payload: r.Payload}
	if kind == queue.KindCreate && resp.Code == codes.Created {
		for _, seg := range strings.Split(strings.Trim(string(r.Payload), "/"), "/") {
			if seg != "" {
				resp.Options = append(resp.Options, bearer.StringOption(message.LocationPath, seg))
			}
		}
		resp.Payload = nil
		return resp
	}
	if r.ContentFormat != queue.NoContentFormat {
		resp.Options = append(resp.Options, bearer.ContentFormatOption(message.MediaType(r.ContentFormat)))
	}
	return resp
}

// Execute implements queue.Executor: it sends one queued request to the
// awake device with the attempt's CoAP token. Any answer of the device,
// error codes included, is a Result; no answer means the device is asleep
// (queue.ErrDeviceAsleep).
func (q *Queue) Execute(ctx context.Context, ep string, req *queue.Request) (*queue.Result, error) {
	if q.s == nil {
		return nil, ErrNotCreated
	}
	if len(req.Paths) == 0 {
		return nil, fmt.Errorf("request %d has no path", req.ID)
	}
	p, err := path.Parse(req.Paths[0])
	if err != nil {
		return nil, fmt.Errorf("request %d: %w", req.ID, err)
	}
	reg, e, peer, err := q.s.target(ep)
	if err != nil {
		return nil, err
	}
	creq := bearer.NewRequest(codes.GET, peer, devicePath(reg, p))
	creq.Token = message.Token(req.Attempt.Token())
	// Token and message ID both come from the attempt: a re-send of the same
	// attempt (after a crash or a device that fell asleep mid-request) is a
	// CoAP duplicate the device answers from its cache (RFC 7252 §4.5).
	creq.SetMessageID(req.Attempt.MessageID())
	if req.ContentFormat != queue.NoContentFormat {
		creq.SetOption(bearer.ContentFormatOption(message.MediaType(req.ContentFormat)))
	}
	creq.Payload = req.Payload
	if err := setQueuedMethod(creq, req); err != nil {
		return nil, err
	}
	// While it is on the wire, the device's next message re-sends it at
	// once to where the device is now (q.seen), and an ICMP port
	// unreachable from the device's port aborts it (q.unreachable).
	st := bearer.NewSteer()
	creq.SetSteer(st)
	q.mu.Lock()
	q.inflight[ep] = inflight{steer: st, transport: reg.Transport()}
	q.mu.Unlock()
	// A message of the device handled between q.s.target and here found
	// nothing in flight to steer, and peer may be its old address (a
	// re-registration from a new port, the old one silent behind a stale
	// NAT mapping): look again now that the request is in flight, so
	// either that message's q.seen steers it or this does.
	if cur, _, _, err := q.s.target(ep); err == nil && (cur.Transport() != reg.Transport() || bearer.AddrKey(cur.PeerAddr()) != bearer.AddrKey(peer)) {
		q.resendInFlight(cur)
	}
	resp, err := e.Do(ctx, creq)
	q.mu.Lock()
	if q.inflight[ep].steer == st {
		delete(q.inflight, ep)
	}
	q.mu.Unlock()
	if err != nil {
		return nil, queuedError(err)
	}
	q.seen(reg, reg.Transport()) // it answered: it is awake
	res := &queue.Result{Code: uint8(resp.Code), ContentFormat: queue.NoContentFormat, Payload: resp.Payload}
	if cf, ok := resp.ContentFormat(); ok {
		res.ContentFormat = int32(cf)
	}
	if req.Kind == queue.KindCreate && resp.Code == codes.Created {
		res.Payload = []byte(resp.LocationPath())
	}
	return res, nil
}

// setQueuedMethod gives creq the method (and Accept or Uri-Query) of the
// queued request's kind.
func setQueuedMethod(creq *bearer.Request, req *queue.Request) error {
	accept := func() {
		if a, err := strconv.ParseUint(req.Args, 10, 16); err == nil {
			creq.SetOption(bearer.UintOption(message.Accept, uint32(a)))
		}
	}
	switch req.Kind {
	case queue.KindRead, queue.KindDiscover:
		accept()
	case queue.KindReadComposite:
		creq.Code = codes.FETCH
		accept()
	case queue.KindWrite:
		creq.Code = codes.PUT
	case queue.KindWritePartial, queue.KindExecute, queue.KindCreate:
		creq.Code = codes.POST
	case queue.KindWriteAttributes:
		creq.Code = codes.PUT
		for _, a := range strings.Split(req.Args, "&") {
			if a != "" {
				creq.AddOption(bearer.StringOption(message.URIQuery, a))
			}
		}
	case queue.KindDelete:
		creq.Code = codes.DELETE
	case queue.KindWriteComposite:
		creq.Code = codes.IPATCH
	default:
		return fmt.Errorf("lwm2m server: queued %v is not supported", req.Kind)
	}
	return nil
}

// queuedError turns the error of a queued request's exchange into what the
// queue branches on: ErrNotDelivered (the one datagram met a closed port),
// ErrDeviceAsleep (no answer), or the error itself.
func queuedError(err error) error {
	var ab *bearer.AbortError
	if errors.Is(err, errUnreachable) && errors.As(err, &ab) && ab.Transmissions == 1 && !ab.Acked && ab.Blocks == 0 {
		// Sent once, and that one datagram met a closed port: the
		// device never got it, so a later send is a first one (an
		// Execute is not failed as "unknown outcome").
		return fmt.Errorf("%w: %w", queue.ErrNotDelivered, err)
	}
	if errors.Is(err, queue.ErrDeviceAsleep) {
		return err
	}
	if isNoAnswer(err) {
		return fmt.Errorf("%w: %w", queue.ErrDeviceAsleep, err)
	}
	return err
}

func isNoAnswer(err error) bool {
	if errors.Is(err, bearer.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// seen is called for anything a registered device sent on transport.
func (s *Server) queueSeen(reg *registry.Registration, transport string) {
	q := s.queue.Load()
	if q == nil || reg == nil || !reg.Queue {
		return
	}
	q.seen(reg, transport)
}

func (q *Queue) seen(reg *registry.Registration, transport string) {
	q.markSeen(reg, transport)
	q.resendInFlight(reg)
}

// resendInFlight re-sends the request on the wire to reg's device, if
// any, at once and to reg's current address: the device just sent
// something, so it listens now, maybe on a new port. Same message ID and
// token, so a device that had received it answers from its cache. When
// the device moved to another transport the exchange cannot follow: it is
// aborted and the request goes back to the head of the queue, drained
// over the new transport right away.
func (q *Queue) resendInFlight(reg *registry.Registration) {
	q.mu.Lock()
	in, ok := q.inflight[reg.Endpoint]
	q.mu.Unlock()
	if !ok {
		return
	}
	if in.transport != reg.Transport() {
		in.steer.Abort(fmt.Errorf("%w: device moved from %s to %s", queue.ErrDeviceAsleep, in.transport, reg.Transport()))
		return
	}
	in.steer.Resend(reg.PeerAddr())
}

// unreachable handles an ICMP port unreachable for peer on transport: if
// peer is the current address of a queue-mode device, the device sleeps
// (its socket is closed): it is marked asleep and the request on the wire
// to it goes back to the queue at once instead of being retransmitted into
// the closed port; the device's next message sends it again.
func (q *Queue) unreachable(transport string, peer net.Addr) {
	id, ok := q.s.addrs.lookup(peer)
	if !ok {
		return
	}
	reg, ok := q.s.store.Get(id)
	if !ok || !reg.Queue || reg.Transport() != transport || bearer.AddrKey(reg.PeerAddr()) != bearer.AddrKey(peer) {
		return
	}
	q.m.Asleep(reg.Endpoint)
	q.mu.Lock()
	in, ok := q.inflight[reg.Endpoint]
	q.mu.Unlock()
	if ok && in.transport == transport {
		in.steer.Abort(errUnreachable)
	}
}

// markSeen tells the Manager the device is awake, with its window.
func (q *Queue) markSeen(reg *registry.Registration, transport string) {
	w := q.cfg.DefaultWindow
	if q.cfg.Device != nil {
		if d := q.cfg.Device(reg); d.Window > 0 {
			w = d.Window
		}
	}
	if w > 0 {
		q.m.Seen(reg.Endpoint, w)
		return
	}
	if e, ok := q.s.endpoint(transport); ok {
		q.m.SeenParams(reg.Endpoint, e.Params())
		return
	}
	q.m.Seen(reg.Endpoint, 0)
}

// registered configures the device on Register and Update: wake target,
// SMS peer, and on Register, or on an Update when it is not known yet
// (after a server restart, or a failed read), an asynchronous read of the
// LwM2M 1.1+ Trigger resource; otherwise the Trigger learned before stays.
func (s *Server) queueRegistered(reg *registry.Registration, transport string, first bool) {
	q := s.queue.Load()
	if q == nil || reg == nil {
		return
	}
	if !reg.Queue {
		q.m.ForgetDevice(reg.Endpoint)
		return
	}
	_, known := q.trigger(reg.Endpoint)
	q.configure(reg, first || !known)
	q.seen(reg, transport)
}

func (s *Server) queueGone(ep string) {
	if q := s.queue.Load(); q != nil {
		q.m.Asleep(ep)
		q.m.ForgetDevice(ep)
		q.mu.Lock()
		delete(q.triggers, ep)
		q.mu.Unlock()
	}
}

// configure sets the device's queue-mode config. With probe true a 1.1+
// device that may be woken by SMS gets its /1/x/21 Trigger read.
func (q *Queue) configure(reg *registry.Registration, probe bool) {
	var d DeviceSettings
	if q.cfg.Device != nil {
		d = q.cfg.Device(reg)
	}
	dc := queue.DeviceConfig{Window: d.Window}
	t := q.wakeTarget(reg, d)
	if t != nil && !probe {
		if prev, ok := q.trigger(reg.Endpoint); ok {
			t.ServerInstance, t.Trigger = prev.inst, prev.on
		}
	}
	if t != nil {
		dc.Wake = t
		if q.cfg.Peers != nil && reg.Transport() != "sms" {
			if err := q.cfg.Peers.AddWakePeer(*t); err != nil {
				q.s.log.Warn("lwm2m queue: SMS peer not added", "ep", reg.Endpoint, "err", err)
			}
		}
	}
	if err := q.m.SetDevice(reg.Endpoint, dc); err != nil {
		q.s.log.Warn("lwm2m queue: device not configured", "ep", reg.Endpoint, "err", err)
	}
	if t != nil && probe && reg.Version != registry.V1_0 && q.probes.Load() < maxProbes {
		q.probes.Add(1)
		q.wg.Add(1)
		go func() {
			defer q.wg.Done()
			defer q.probes.Add(-1)
			q.readTrigger(reg, dc)
		}()
	}
}

// wakeTarget says how to wake reg by SMS, or nil. The number is the
// configured one (DeviceSettings.MSISDN, else the endpoint's Binding), or
// for a device registered over SMS the number it registered from (which
// the SMS bearer and the policy vouched for); never the registration's
// "sms=" parameter alone.
func (q *Queue) wakeTarget(reg *registry.Registration, d DeviceSettings) *queue.WakeTarget {
	if d.NoWake {
		return nil
	}
	var number string
	configured := d.MSISDN
	if configured == "" {
		configured = q.s.policy.msisdn(reg.Endpoint)
	}
	if configured != "" {
		a, err := msisdn.Normalize(configured)
		if err != nil {
			return nil
		}
		if reg.SMS != "" {
			r, err := msisdn.Normalize(reg.SMS)
			if err != nil || r != a {
				q.s.log.Warn("lwm2m queue: registered sms= differs from the configured number; no SMS wake-up",
					"ep", reg.Endpoint, "sms", reg.SMS, "configured", configured)
				return nil
			}
		}
		number = a
	}
	if number == "" {
		if a, ok := reg.PeerAddr().(smsAddr); ok && reg.Transport() == "sms" {
			number = a.String()
		}
	}
	if number == "" {
		return nil
	}
	a, err := msisdn.Normalize(number)
	if err != nil {
		return nil
	}
	return &queue.WakeTarget{MSISDN: a, Version: reg.Version.String(),
		Binding: registry.BindingMode(reg.Version, reg.Binding, reg.Queue),
		WAPPush: d.WAPPush, TransportArg: d.TransportArg, SIM: d.SIM}
}

// smsAddr is the plain SMS bearer's peer address (bearer/sms.Addr): a
// number the SMS bearer read from the network. A DTLS or OSCORE address
// over SMS (secure.Addr, oscore.Addr) has no Digits and is not taken.
type smsAddr interface {
	net.Addr
	Digits() string
}

// readTrigger reads /1 of an LwM2M 1.1+ device to learn the instance x of
// this server and its Trigger (/1/x/21), then updates the wake target.
func (q *Queue) readTrigger(reg *registry.Registration, dc queue.DeviceConfig) {
	ctx, cancel := context.WithTimeout(context.WithValue(q.ctx, directKey, true), q.execTimeout)
	defer cancel()
	recs, err := q.s.ReadValues(ctx, reg.Endpoint, path.Object(1))
	if err != nil {
		q.s.log.Info("lwm2m queue: trigger read failed", "ep", reg.Endpoint, "err", err)
		return
	}
	inst, trig, ok := findTrigger(recs, q.cfg.ShortServerID)
	if !ok {
		return
	}
	t := *dc.Wake
	t.ServerInstance, t.Trigger = inst, trig
	dc.Wake = &t
	q.mu.Lock()
	q.triggers[reg.Endpoint] = triggerInfo{inst: inst, on: trig}
	q.mu.Unlock()
	if q.cfg.Triggers != nil {
		if err := q.cfg.Triggers.SetTrigger(reg.Endpoint, inst, trig); err != nil {
			q.s.log.Warn("lwm2m queue: trigger store", "ep", reg.Endpoint, "err", err)
		}
	}
	if err := q.m.SetDevice(reg.Endpoint, dc); err != nil {
		q.s.log.Warn("lwm2m queue: device not configured", "ep", reg.Endpoint, "err", err)
	}
}

// findTrigger finds the /1 instance with Short Server ID ssid (0: the
// first instance) and its Trigger value.
func findTrigger(recs []content.Record, ssid uint16) (inst uint16, trigger, ok bool) {
	type srv struct {
		ssid           int64
		hasSSID, found bool
		trig           bool
	}
	insts := map[uint16]*srv{}
	var order []uint16
	for _, r := range recs {
		if r.Path.ObjectID() != 1 || r.Path.Len() < path.LevelResource {
			continue
		}
		i := r.Path.InstanceID()
		sv := insts[i]
		if sv == nil {
			sv = &srv{}
			insts[i] = sv
			order = append(order, i)
		}
		switch r.Path.ResourceID() {
		case 0:
			sv.ssid, sv.hasSSID = r.Value.Int(), true
		case 21:
			sv.trig, sv.found = r.Value.Bool(), true
		}
	}
	for _, i := range order {
		sv := insts[i]
		if ssid == 0 || sv.hasSSID && sv.ssid == int64(ssid) {
			return i, sv.trig, true
		}
	}
	return 0, false, false
}
