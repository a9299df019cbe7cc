package firmware

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/internal/cfgcheck"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

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

// Config configures an Updater. Server and Store are required; a zero
// MaxWaiters takes its default, a negative one makes
// NewUpdater fail with an error wrapping ErrInvalidOption.
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
	// Logger receives the updater's logs (default: none, a discard logger).
	Logger *slog.Logger
	// MaxWaiters bounds the devices being updated at once through this
	// Updater (default 100,000).
	MaxWaiters int
}

// Options are per-update choices. A zero duration takes its default; a
// negative one (or MaxSMS) fails the update with an error wrapping
// ErrInvalidOption, before anything is sent.
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
	// after it was last heard from: its Register/Update or any answer to
	// the Updater's requests (default its bearer's MAX_TRANSMIT_WAIT).
	AwakeWindow time.Duration
	// NoObserve disables the /5/0/3 observation (polling only).
	NoObserve bool
	// Progress, if set, receives each step as it starts.
	Progress func(Step) `json:"-"`
}

// check refuses negative fields and fills in the defaults of zero ones.
func (o *Options) check() error {
	var f cfgcheck.Fields
	cfgcheck.Default(&f, "PollInterval", &o.PollInterval, 5*time.Second)
	cfgcheck.Default(&f, "DownloadTimeout", &o.DownloadTimeout, 10*time.Minute)
	cfgcheck.Default(&f, "UpdateTimeout", &o.UpdateTimeout, 10*time.Minute)
	cfgcheck.Default(&f, "WakeTimeout", &o.WakeTimeout, 5*time.Minute)
	cfgcheck.NonNegative(&f, "AwakeWindow", o.AwakeWindow)
	cfgcheck.NonNegative(&f, "MaxSMS", o.MaxSMS)
	return f.Err(ErrInvalidOption, "Options")
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

// Updater updates the firmware of single devices. It owns one server
// event subscription that it fans out to the updates in flight.
//
// The zero Updater is not usable: use NewUpdater. Its calls fail with
// ErrNotCreated and Close does nothing.
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
	var f cfgcheck.Fields
	if cfg.Server == nil || cfg.Store == nil {
		f.Badf("Server and Store are required")
	}
	cfgcheck.Default(&f, "MaxWaiters", &cfg.MaxWaiters, 100000)
	if err := f.Err(ErrInvalidOption, "Config"); err != nil {
		return nil, err
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
	if u.done == nil { // a zero Updater: nothing runs
		return nil
	}
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
	if _, ok := u.seen[ep]; !ok {
		// When it was last heard from outlives the watch: the campaign's
		// version read and the update that follows share one wake-up.
		u.seen[ep] = time.Time{}
	}
	return ch, func() {
		u.mu.Lock()
		delete(u.waiters, ep)
		u.pruneSeenLocked()
		u.mu.Unlock()
	}, nil
}

// pruneSeenLocked bounds the last-heard table: past MaxWaiters entries,
// those of devices not being updated and not heard from within an hour
// go.
func (u *Updater) pruneSeenLocked() {
	if len(u.seen) <= u.cfg.MaxWaiters {
		return
	}
	cut := time.Now().Add(-time.Hour)
	for ep, t := range u.seen {
		if _, busy := u.waiters[ep]; !busy && t.Before(cut) {
			delete(u.seen, ep)
		}
	}
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
	if u.done == nil {
		return nil, ErrNotCreated
	}
	return u.update(ctx, ep, imageID, opts, nil)
}

// update runs an update with a plan made earlier (campaigns plan before
// reserving SMS budget), or plans first when planned is nil.
func (u *Updater) update(ctx context.Context, ep, imageID string, opts Options, planned *Plan) (*Result, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
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

// Version reads device ep's /3/0/3 firmware version, waking it first
// when it is in queue mode and a Waker is configured.
func (u *Updater) Version(ctx context.Context, ep string, opts Options) (string, error) {
	if u.done == nil {
		return "", ErrNotCreated
	}
	if err := opts.check(); err != nil {
		return "", err
	}
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
	u.touch(ep) // it answered: the update that follows shares this wake-up
	if len(recs) != 1 {
		return "", fmt.Errorf("firmware: %s: /3/0/3 has %d values", ep, len(recs))
	}
	return recs[0].Value.Str(), nil
}
