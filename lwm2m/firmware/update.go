package firmware

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// Method is how a package reaches the device.
type Method uint8

// Delivery methods.
const (
	Push Method = iota + 1 // block-wise Write of /5/0/0
	Pull                   // Write of /5/0/1 Package URI; the device downloads
)

func (m Method) String() string {
	switch m {
	case Push:
		return "push"
	case Pull:
		return "pull"
	}
	return "none"
}

// Waker wakes a sleeping (queue-mode) device, typically by an SMS trigger
// (lwm2m/queue's SMS waker). Wake returns once the trigger is sent; the
// Updater then waits for the device's Register or Update.
type Waker interface {
	Wake(ctx context.Context, endpoint string) error
}

// WakerFunc adapts a function to Waker.
type WakerFunc func(ctx context.Context, endpoint string) error

// Wake implements Waker.
func (f WakerFunc) Wake(ctx context.Context, ep string) error { return f(ctx, ep) }

// PullURIs are the base URIs under which the Package URI servers serve
// images ("coap://gw.example:5683/fw/"); the image id is appended. Empty
// ones are not offered.
type PullURIs struct {
	CoAP, CoAPS, HTTP, HTTPS string
}

// Config configures an Updater.
type Config struct {
	// Server is the LwM2M server the devices are registered with.
	Server *server.Server
	// Store holds the images.
	Store *Store
	// Endpoints maps the server's transport names ("udp", "dtls", "sms")
	// to the Endpoints attached to the server under those names; push
	// streams Block1 blocks through them.
	Endpoints map[string]*bearer.Endpoint
	// Pull lists the Package URI bases.
	Pull PullURIs
	// Waker wakes queue-mode devices; nil means they are expected awake.
	Waker Waker
	// Logger; nil discards.
	Logger *slog.Logger
	// MaxWaiters bounds the devices being updated at once through this
	// Updater (default 100,000).
	MaxWaiters int
}

// Options are per-update choices.
type Options struct {
	// Prefer picks push or pull when the device supports both (default
	// pull on IP bearers, push on SMS).
	Prefer Method
	// AllowSMSPush allows pushing a package over SMS to a device whose
	// only bearer is SMS (it costs Plan.SMS messages).
	AllowSMSPush bool
	// MaxSMS refuses an update whose estimated SMS cost is higher (0: no
	// limit).
	MaxSMS int
	// PollInterval is the State polling period (default 5 s); a /5/0/3
	// notification triggers a poll at once.
	PollInterval time.Duration
	// DownloadTimeout bounds delivery until State Downloaded (default 10 min).
	DownloadTimeout time.Duration
	// UpdateTimeout bounds Execute until the device is back (default 10 min).
	UpdateTimeout time.Duration
	// WakeTimeout bounds the wait for a woken device (default 5 min).
	WakeTimeout time.Duration
	// AwakeWindow is how long a queue-mode device is taken to be awake
	// after it was last heard from (default its bearer's MAX_TRANSMIT_WAIT).
	AwakeWindow time.Duration
	// NoObserve disables the /5/0/3 observation (polling only).
	NoObserve bool
	// Progress, if set, receives each step as it starts.
	Progress func(Step) `json:"-"`
}

func (o *Options) defaults() {
	if o.PollInterval <= 0 {
		o.PollInterval = 5 * time.Second
	}
	if o.DownloadTimeout <= 0 {
		o.DownloadTimeout = 10 * time.Minute
	}
	if o.UpdateTimeout <= 0 {
		o.UpdateTimeout = 10 * time.Minute
	}
	if o.WakeTimeout <= 0 {
		o.WakeTimeout = 5 * time.Minute
	}
}

// Step names a stage of a single-device update.
type Step string

// Steps, in order.
const (
	StepPlanned      Step = "planned"
	StepWaking       Step = "waking"
	StepDelivering   Step = "delivering"
	StepDownloaded   Step = "downloaded"
	StepUpdating     Step = "updating"
	StepRebooting    Step = "rebooting"
	StepVerified     Step = "verified"
	StepFailed       Step = "failed"
	StepPending      Step = "pending"
	StepCancelled    Step = "cancelled"
	StepSkipped      Step = "skipped"
	StepNotAttempted Step = ""
)

// Plan is what an update of one device will do and cost, computed before
// it starts.
type Plan struct {
	Endpoint  string
	Image     ImageInfo
	Method    Method
	Transport string // the server's transport name the device uses
	URI       string // Package URI (pull)
	BlockSize int    // push block size, from the bearer's parameters
	Blocks    int    // push blocks
	Queue     bool   // device in queue mode (woken before each step)
	// SMS is the estimated number of SMS segments the gateway sends on an
	// SMS bearer (the package or URI write, the plan read, one State poll,
	// the Execute, the re-registration answer and the version read; each
	// further poll costs one more);
	// 0 on IP bearers.
	SMS int
}

// Updater updates the firmware of single devices. It owns one server
// event subscription that it fans out to the updates in flight.
type Updater struct {
	cfg Config
	log *slog.Logger
	sub *server.Subscription

	mu      sync.Mutex
	waiters map[string]chan server.Event
	seen    map[string]time.Time // last heard from, for queue-mode devices
	done    chan struct{}
	wg      sync.WaitGroup
}

// NewUpdater returns an Updater. Close it to end its subscription.
func NewUpdater(cfg Config) (*Updater, error) {
	if cfg.Server == nil || cfg.Store == nil {
		return nil, fmt.Errorf("%w: Server and Store are required", ErrInvalid)
	}
	if cfg.MaxWaiters <= 0 {
		cfg.MaxWaiters = 100000
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sub := cfg.Server.Subscribe(4096)
	if sub == nil {
		return nil, fmt.Errorf("firmware: server refused an event subscription")
	}
	u := &Updater{cfg: cfg, log: log, sub: sub, waiters: map[string]chan server.Event{},
		seen: map[string]time.Time{}, done: make(chan struct{})}
	u.wg.Add(1)
	go u.dispatch()
	return u, nil
}

// Close ends the event subscription; updates in flight fail.
func (u *Updater) Close() error {
	select {
	case <-u.done:
		return nil
	default:
	}
	close(u.done)
	u.sub.Close()
	u.wg.Wait()
	return nil
}

func (u *Updater) dispatch() {
	defer u.wg.Done()
	for {
		select {
		case <-u.done:
			return
		case ev, ok := <-u.sub.C:
			if !ok {
				return
			}
			if ev.Registration == nil || (ev.Kind != server.Registered && ev.Kind != server.Updated) {
				continue
			}
			name := ev.Registration.Endpoint
			u.mu.Lock()
			if _, ok := u.seen[name]; ok {
				u.seen[name] = time.Now()
			}
			ch := u.waiters[name]
			u.mu.Unlock()
			if ch != nil {
				select {
				case ch <- ev:
				default: // one pending event is enough to wake the waiter
				}
			}
		}
	}
}

// watch registers interest in ep's registration events.
func (u *Updater) watch(ep string) (chan server.Event, func(), error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, busy := u.waiters[ep]; busy {
		return nil, nil, fmt.Errorf("%w: update of %s already in progress", ErrInvalid, ep)
	}
	if len(u.waiters) >= u.cfg.MaxWaiters {
		return nil, nil, fmt.Errorf("%w: %d updates in flight", ErrStoreFull, len(u.waiters))
	}
	ch := make(chan server.Event, 1)
	u.waiters[ep] = ch
	u.seen[ep] = time.Time{}
	return ch, func() {
		u.mu.Lock()
		delete(u.waiters, ep)
		delete(u.seen, ep)
		u.mu.Unlock()
	}, nil
}

func (u *Updater) touch(ep string) {
	u.mu.Lock()
	if _, ok := u.seen[ep]; ok {
		u.seen[ep] = time.Now()
	}
	u.mu.Unlock()
}

func (u *Updater) lastSeen(ep string) time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.seen[ep]
}

func isSMS(transport string, p bearer.Params) bool {
	return strings.Contains(transport, "sms") || strings.Contains(p.Name, "sms")
}

// Plan reads the device's Object 5 capabilities (/5/0/8 Protocol Support,
// /5/0/9 Delivery Method) and chooses how to deliver image id, with the
// estimated SMS cost. A queue-mode device must be awake (or wakeable:
// Plan does not wake it; it plans from the registration alone when the
// read fails).
func (u *Updater) Plan(ctx context.Context, ep, imageID string, opts Options) (Plan, error) {
	info, err := u.cfg.Store.Get(imageID)
	if err != nil {
		return Plan{}, err
	}
	reg, ok := u.cfg.Server.Lookup(ep)
	if !ok {
		return Plan{}, fmt.Errorf("firmware: %s: %w", ep, server.ErrNotRegistered)
	}
	protos, delivery := u.capabilities(ctx, ep, reg)
	return u.plan(reg, info, protos, delivery, opts)
}

// capabilities reads /5/0/8 and /5/0/9; unknown values mean "anything".
func (u *Updater) capabilities(ctx context.Context, ep string, reg *registry.Registration) (protos map[int64]bool, delivery int64) {
	delivery = DeliveryBoth
	protos = map[int64]bool{}
	if reg.Queue && u.cfg.Waker != nil && u.lastSeen(ep).IsZero() {
		// Asleep: do not wake it just to plan; assume what it says in
		// its binding (pull over UDP, the spec's intent for sleepers).
		return protos, delivery
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	recs, err := u.cfg.Server.ReadValues(rctx, ep, path.Instance(5, 0))
	if err != nil {
		return protos, delivery
	}
	u.touch(ep)
	for _, r := range recs {
		switch r.Path.ResourceID() {
		case 8:
			protos[r.Value.Int()] = true
		case 9:
			delivery = r.Value.Int()
		}
	}
	return protos, delivery
}

func (u *Updater) plan(reg *registry.Registration, info ImageInfo, protos map[int64]bool, delivery int64, opts Options) (Plan, error) {
	p := Plan{Endpoint: reg.Endpoint, Image: info, Transport: reg.Transport(), Queue: reg.Queue}
	e := u.cfg.Endpoints[p.Transport]
	var params bearer.Params
	if e != nil {
		params = e.Params()
		p.BlockSize = e.BlockSize()
	}
	sms := isSMS(p.Transport, params)
	canPush := delivery != DeliveryPull && e != nil
	secure := strings.Contains(p.Transport, "dtls") || strings.Contains(params.Name, "dtls")
	uri := ""
	any := len(protos) == 0
	switch {
	case secure && u.cfg.Pull.CoAPS != "" && (any || protos[ProtoCoAPS]):
		uri = u.cfg.Pull.CoAPS
	case secure && u.cfg.Pull.HTTPS != "" && (any || protos[ProtoHTTPS]):
		uri = u.cfg.Pull.HTTPS
	case u.cfg.Pull.CoAP != "" && (any || protos[ProtoCoAP]):
		uri = u.cfg.Pull.CoAP
	case u.cfg.Pull.HTTP != "" && (any || protos[ProtoHTTP]):
		uri = u.cfg.Pull.HTTP
	case u.cfg.Pull.HTTPS != "" && protos[ProtoHTTPS]:
		uri = u.cfg.Pull.HTTPS
	case u.cfg.Pull.CoAPS != "" && protos[ProtoCoAPS]:
		uri = u.cfg.Pull.CoAPS
	}
	// An SMS-only device cannot pull over IP; an IP device (also a
	// sleeping one, woken by SMS) pulls when it can.
	smsOnly := sms && !reg.Binding.Has(registry.BindingU)
	canPull := delivery != DeliveryPush && uri != "" && !smsOnly
	switch {
	case canPull && canPush:
		p.Method = Pull
		if opts.Prefer == Push || (sms && opts.Prefer != Pull) {
			p.Method = Push
		}
	case canPull:
		p.Method = Pull
	case canPush:
		p.Method = Push
	default:
		return p, fmt.Errorf("%w: %s (delivery %d, transport %q)", ErrUnsupported, reg.Endpoint, delivery, p.Transport)
	}
	if p.Method == Pull {
		p.URI = uri + info.ID
		if sms {
			p.SMS = int(params.Cost(len(p.URI)+blockOverhead) + controlRequests*params.Cost(blockOverhead) + 0.5)
		}
		return p, nil
	}
	if p.BlockSize <= 0 {
		return p, fmt.Errorf("%w: no block size for %q", ErrUnsupported, p.Transport)
	}
	p.Blocks = int((info.Size + int64(p.BlockSize) - 1) / int64(p.BlockSize))
	if sms {
		if !opts.AllowSMSPush {
			return p, fmt.Errorf("%w: %s is reached over SMS only and SMS push is not allowed (it would cost about %d SMS)",
				ErrUnsupported, reg.Endpoint, smsPushCost(params, info.Size, p.BlockSize))
		}
		p.SMS = smsPushCost(params, info.Size, p.BlockSize)
	}
	return p, nil
}

// blockOverhead is the CoAP header room of one Block1 request: header 4,
// token 8, Uri-Path "5","0","0" 6, Content-Format 2, Block1 4, Size1 5.
const blockOverhead = 29

// controlRequests are the small messages the gateway sends in an update
// besides the package: the /5/0 read of the plan, one State poll, the
// Execute, the answer to the device's re-registration and the /3/0/3
// read (more polls cost one segment each).
const controlRequests = 5

// smsPushCost estimates the SMS segments a push sends: each block plus
// its header, in segments, plus the control requests.
func smsPushCost(p bearer.Params, size int64, block int) int {
	full := int(size / int64(block))
	last := int(size % int64(block))
	c := float64(full) * p.Cost(block+blockOverhead)
	if last > 0 {
		c += p.Cost(last + blockOverhead)
	}
	c += controlRequests * p.Cost(blockOverhead)
	return int(c + 0.5)
}

// Result is the outcome of a successful single-device update.
type Result struct {
	Plan     Plan
	Version  string // /3/0/3 after the update
	Duration time.Duration
}

// Update updates device ep to image id: plan, wake if needed, deliver
// (push or pull), wait for State Downloaded, Execute /5/0/2, wait for the
// device to re-register (or report Update Result 1), and check /3/0/3.
// A failure the device reports is a *ResultError.
func (u *Updater) Update(ctx context.Context, ep, imageID string, opts Options) (*Result, error) {
	return u.update(ctx, ep, imageID, opts, nil)
}

// update runs an update with a plan made earlier (campaigns plan before
// reserving SMS budget), or plans first when planned is nil.
func (u *Updater) update(ctx context.Context, ep, imageID string, opts Options, planned *Plan) (*Result, error) {
	opts.defaults()
	start := time.Now()
	events, stop, err := u.watch(ep)
	if err != nil {
		return nil, err
	}
	defer stop()
	step := func(s Step) {
		if opts.Progress != nil {
			opts.Progress(s)
		}
	}
	var plan Plan
	if planned != nil {
		plan = *planned
	} else if plan, err = u.Plan(ctx, ep, imageID, opts); err != nil {
		return nil, err
	}
	if opts.MaxSMS > 0 && plan.SMS > opts.MaxSMS {
		return nil, fmt.Errorf("%w: %s needs about %d SMS, limit %d", ErrBudget, ep, plan.SMS, opts.MaxSMS)
	}
	step(StepPlanned)
	d := &devUpdate{u: u, ep: ep, plan: plan, opts: opts, events: events, step: step}
	if err := d.run(ctx); err != nil {
		return nil, err
	}
	return &Result{Plan: plan, Version: plan.Image.Version, Duration: time.Since(start)}, nil
}

type devUpdate struct {
	u      *Updater
	ep     string
	plan   Plan
	opts   Options
	events chan server.Event
	step   func(Step)
	notify chan struct{}
}

// awake makes sure a queue-mode device is awake: heard from within the
// awake window, or woken and heard from.
func (d *devUpdate) awake(ctx context.Context) error {
	if !d.plan.Queue || d.u.cfg.Waker == nil {
		return nil
	}
	win := d.opts.AwakeWindow
	if win <= 0 {
		if e := d.u.cfg.Endpoints[d.plan.Transport]; e != nil {
			win = e.Params().MaxTransmitWait()
		} else {
			win = 93 * time.Second
		}
	}
	if t := d.u.lastSeen(d.ep); !t.IsZero() && time.Since(t) < win {
		return nil
	}
	d.step(StepWaking)
	// Drop a stale event: only a Register/Update after the wake counts.
	select {
	case <-d.events:
	default:
	}
	if err := d.u.cfg.Waker.Wake(ctx, d.ep); err != nil {
		return fmt.Errorf("firmware: wake %s: %w", d.ep, err)
	}
	t := time.NewTimer(d.opts.WakeTimeout)
	defer t.Stop()
	select {
	case <-d.events:
		d.u.touch(d.ep)
		return nil
	case <-t.C:
		return fmt.Errorf("%w: %s did not wake within %v", ErrTimeout, d.ep, d.opts.WakeTimeout)
	case <-ctx.Done():
		return ctx.Err()
	case <-d.u.done:
		return fmt.Errorf("firmware: updater: %w", bearer.ErrClosed)
	}
}

func (d *devUpdate) run(ctx context.Context) error {
	if err := d.awake(ctx); err != nil {
		return err
	}
	d.notify = make(chan struct{}, 1)
	if !d.opts.NoObserve {
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		obs, _, err := d.u.cfg.Server.Observe(octx, d.ep, path.Resource(5, 0, 3), func(server.Notification) {
			select {
			case d.notify <- struct{}{}:
			default:
			}
		})
		cancel()
		if err == nil {
			defer func() {
				cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = d.u.cfg.Server.CancelObservation(cctx, d.ep, path.Resource(5, 0, 3))
			}()
			_ = obs
		}
	}
	// A device left in Downloaded by an earlier, interrupted attempt of
	// this same image is not sent the image again.
	d.step(StepDelivering)
	if err := d.deliver(ctx); err != nil {
		return err
	}
	if err := d.waitDownloaded(ctx); err != nil {
		return err
	}
	d.step(StepDownloaded)
	return d.execute(ctx)
}

func (d *devUpdate) deliver(ctx context.Context) error {
	if err := d.awake(ctx); err != nil {
		return err
	}
	if d.plan.Method == Pull {
		err := d.u.cfg.Server.WriteValues(ctx, d.ep, path.Resource(5, 0, 1), server.Replace,
			content.Record{Path: path.Resource(5, 0, 1), Value: content.NewString(d.plan.URI)})
		if err != nil {
			return d.deviceError(ctx, fmt.Errorf("firmware: write package URI to %s: %w", d.ep, err))
		}
		d.u.touch(d.ep)
		return nil
	}
	if err := d.push(ctx); err != nil {
		return d.deviceError(ctx, err)
	}
	return nil
}

// deviceError turns a failed request into the device's Update Result when
// it set one.
func (d *devUpdate) deviceError(ctx context.Context, err error) error {
	var se *server.Error
	if !errors.As(err, &se) {
		return err
	}
	// The device sets its Update Result right after refusing the
	// request: read it a few times.
	for i := 0; i < 5; i++ {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		st, res, rerr := d.state(rctx)
		cancel()
		if rerr == nil && res > ResultSuccess && st == StateIdle {
			return fmt.Errorf("%w (%v)", &ResultError{Endpoint: d.ep, Result: res}, err)
		}
		t := time.NewTimer(d.opts.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
	return err
}

// push streams the image to /5/0/0 in Block1 blocks read one at a time
// from the store (RFC 7959 §2.5), following a smaller block size the
// device asks for.
func (d *devUpdate) push(ctx context.Context) error {
	reg, ok := d.u.cfg.Server.Lookup(d.ep)
	if !ok {
		return fmt.Errorf("firmware: %s: %w", d.ep, server.ErrNotRegistered)
	}
	e := d.u.cfg.Endpoints[reg.Transport()]
	peer := reg.PeerAddr()
	if e == nil || peer == nil {
		return fmt.Errorf("%w: no endpoint for transport %q", server.ErrNoTransport, reg.Transport())
	}
	img, err := d.u.cfg.Store.Open(d.plan.Image.ID)
	if err != nil {
		return err
	}
	defer img.Close()
	return pushBlocks(ctx, e, peer, devPath(reg, "/5/0/0"), img, d.plan.BlockSize)
}

func devPath(reg *registry.Registration, p string) string {
	if alt := reg.AltPath(); alt != "/" {
		return alt + p
	}
	return p
}

func pushBlocks(ctx context.Context, e *bearer.Endpoint, peer net.Addr, p string, img *Image, blockSize int) error {
	szx := uint32(0)
	for szx < 6 && 16<<(szx+1) <= blockSize {
		szx++
	}
	total := img.Info.Size
	buf := make([]byte, 16<<szx)
	var offset int64
	for {
		size := int64(16 << szx)
		n := size
		if total-offset < n {
			n = total - offset
		}
		if _, err := img.ReadAt(buf[:n], offset); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("firmware: read image: %w", err)
		}
		more := offset+n < total
		num := uint32(offset / size)
		bv := num<<4 | szx
		if more {
			bv |= 8
		}
		req := bearer.NewRequest(codes.PUT, peer, p)
		req.SetOption(bearer.ContentFormatOption(message.AppOctets))
		req.SetOption(bearer.UintOption(message.Block1, bv))
		if offset == 0 {
			req.SetOption(bearer.UintOption(message.Size1, uint32(total)))
		}
		req.Payload = buf[:n]
		resp, err := e.Do(ctx, req)
		if err != nil {
			return fmt.Errorf("firmware: push block %d: %w", num, err)
		}
		if !more {
			if resp.Code != codes.Changed && resp.Code != codes.Created {
				return &server.Error{Op: "write", Path: p, Code: resp.Code, Message: string(resp.Payload)}
			}
			return nil
		}
		if resp.Code != codes.Continue {
			return &server.Error{Op: "write", Path: p, Code: resp.Code, Message: string(resp.Payload)}
		}
		offset += n
		if v, ok := optUint(resp.Options, message.Block1); ok && v&7 < szx {
			szx = v & 7 // the device wants smaller blocks (RFC 7959 §2.5)
		}
	}
}

// state reads /5/0/3 State and /5/0/5 Update Result.
func (d *devUpdate) state(ctx context.Context) (st, res int64, err error) {
	recs, err := d.u.cfg.Server.ReadValues(ctx, d.ep, path.Instance(5, 0))
	if err != nil {
		return 0, 0, err
	}
	d.u.touch(d.ep)
	st, res = -1, -1
	for _, r := range recs {
		switch r.Path.ResourceID() {
		case 3:
			st = r.Value.Int()
		case 5:
			res = r.Value.Int()
		}
	}
	if st < 0 || res < 0 {
		return 0, 0, fmt.Errorf("firmware: %s: /5/0 without State or Update Result", d.ep)
	}
	return st, res, nil
}

// waitDownloaded polls (and listens for notifications) until State is
// Downloaded, or the device reports a failure.
func (d *devUpdate) waitDownloaded(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.opts.DownloadTimeout)
	defer cancel()
	tick := time.NewTicker(d.opts.PollInterval)
	defer tick.Stop()
	for {
		if err := d.awake(ctx); err != nil {
			return err
		}
		rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
		st, res, err := d.state(rctx)
		rcancel()
		if err == nil {
			switch {
			case st == StateDownloaded:
				return nil
			case st == StateIdle && res > ResultSuccess:
				return &ResultError{Endpoint: d.ep, Result: res}
			}
		} else if ctx.Err() == nil {
			d.u.log.Debug("firmware: poll failed", "ep", d.ep, "err", err)
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%w: %s not Downloaded after %v", ErrTimeout, d.ep, d.opts.DownloadTimeout)
			}
			return ctx.Err()
		case <-d.u.done:
			return fmt.Errorf("firmware: updater: %w", bearer.ErrClosed)
		case <-d.notify:
		case <-tick.C:
		}
	}
}

// execute runs /5/0/2 and waits for the device to come back with the new
// version: a Register/Update after the Execute, or State Idle with Update
// Result 1 (devices that do not re-register), then /3/0/3 is read.
func (d *devUpdate) execute(ctx context.Context) error {
	if err := d.awake(ctx); err != nil {
		return err
	}
	select { // only a registration after the Execute counts
	case <-d.events:
	default:
	}
	d.step(StepUpdating)
	if err := d.u.cfg.Server.Execute(ctx, d.ep, path.Resource(5, 0, 2), ""); err != nil {
		return d.deviceError(ctx, fmt.Errorf("firmware: execute update on %s: %w", d.ep, err))
	}
	d.u.touch(d.ep)
	ctx, cancel := context.WithTimeout(ctx, d.opts.UpdateTimeout)
	defer cancel()
	tick := time.NewTicker(d.opts.PollInterval)
	defer tick.Stop()
	d.step(StepRebooting)
	registered := false
	for !registered {
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%w: %s did not come back after Execute within %v", ErrTimeout, d.ep, d.opts.UpdateTimeout)
			}
			return ctx.Err()
		case <-d.u.done:
			return fmt.Errorf("firmware: updater: %w", bearer.ErrClosed)
		case <-d.events:
			registered = true
			continue
		case <-d.notify:
		case <-tick.C:
		}
		if d.plan.Queue && d.u.cfg.Waker != nil {
			continue // a sleeping device comes back by itself
		}
		rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
		st, res, err := d.state(rctx)
		rcancel()
		if err != nil {
			continue // rebooting
		}
		if res > ResultSuccess && st != StateUpdating {
			return &ResultError{Endpoint: d.ep, Result: res}
		}
		if res == ResultSuccess && st == StateIdle {
			break
		}
	}
	rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
	defer rcancel()
	recs, err := d.u.cfg.Server.ReadValues(rctx, d.ep, path.Resource(3, 0, 3))
	if err != nil {
		return fmt.Errorf("firmware: read /3/0/3 of %s: %w", d.ep, err)
	}
	if len(recs) != 1 || recs[0].Value.Str() != d.plan.Image.Version {
		got := ""
		if len(recs) == 1 {
			got = recs[0].Value.Str()
		}
		if st, res, err := d.state(rctx); err == nil && res > ResultSuccess && st != StateUpdating {
			return &ResultError{Endpoint: d.ep, Result: res}
		}
		return fmt.Errorf("%w: %s reports %q, image is %q", ErrVersionMismatch, d.ep, got, d.plan.Image.Version)
	}
	d.step(StepVerified)
	return nil
}

// Version reads device ep's /3/0/3 firmware version, waking it first
// when it is in queue mode and a Waker is configured.
func (u *Updater) Version(ctx context.Context, ep string, opts Options) (string, error) {
	opts.defaults()
	reg, ok := u.cfg.Server.Lookup(ep)
	if !ok {
		return "", fmt.Errorf("firmware: %s: %w", ep, server.ErrNotRegistered)
	}
	events, stop, err := u.watch(ep)
	if err != nil {
		return "", err
	}
	defer stop()
	d := &devUpdate{u: u, ep: ep, plan: Plan{Endpoint: ep, Transport: reg.Transport(), Queue: reg.Queue},
		opts: opts, events: events, step: func(Step) {}}
	if err := d.awake(ctx); err != nil {
		return "", err
	}
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	recs, err := u.cfg.Server.ReadValues(rctx, ep, path.Resource(3, 0, 3))
	if err != nil {
		return "", fmt.Errorf("firmware: read /3/0/3 of %s: %w", ep, err)
	}
	if len(recs) != 1 {
		return "", fmt.Errorf("firmware: %s: /3/0/3 has %d values", ep, len(recs))
	}
	return recs[0].Value.Str(), nil
}
