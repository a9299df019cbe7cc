package firmware

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
)

// Campaign status values.
const (
	CampaignRunning   = "running"
	CampaignPaused    = "paused"
	CampaignCancelled = "cancelled"
	CampaignDone      = "done" // every device finished (done, failed or skipped)
)

// Device states in a campaign.
const (
	DevPending   = "pending"
	DevRunning   = "running"
	DevDone      = "done"
	DevFailed    = "failed"
	DevSkipped   = "skipped"
	DevCancelled = "cancelled"
)

// Reasons a device ended as it did, where its state alone does not say
// (DeviceState.Reason, counted in Report.Reasons).
const (
	// ReasonSMSBudget: skipped, its update would exceed the campaign's
	// SMS budget (ErrBudget).
	ReasonSMSBudget = "sms_budget"
	// ReasonUnsupported: skipped, the device cannot take this update
	// (ErrUnsupported).
	ReasonUnsupported = "unsupported"
	// ReasonUpToDate: done without an update, it already ran the version.
	ReasonUpToDate = "up_to_date"
)

// Spec describes a campaign.
type Spec struct {
	Name  string `json:"name"`
	Image string `json:"image"` // image id in the Store
	// Target: the union of Endpoints, the registered endpoints whose name
	// starts with Prefix (if not empty), and the registered endpoints
	// Match accepts (if not nil). The target is resolved once, when the
	// campaign is created, and persisted.
	Endpoints []string                          `json:"-"`
	Prefix    string                            `json:"prefix,omitempty"`
	Match     func(*registry.Registration) bool `json:"-"`
	// Concurrency bounds devices updated at once (default 10).
	Concurrency int `json:"concurrency"`
	// Retries is the number of retries per device after a failure that
	// may be transient: nil means DefaultRetries, new(0) none (a count of
	// 0 is never read as "the default"); negative is refused by Create. A
	// failure the device reports for the image itself (integrity,
	// unsupported type) is not retried.
	Retries *int `json:"retries"`
	// Backoff is the wait before the first retry, doubled each time up to
	// MaxBackoff (defaults 10 s and 10 min).
	Backoff    time.Duration `json:"backoff"`
	MaxBackoff time.Duration `json:"max_backoff"`
	// SMSBudget bounds the SMS the campaign may send (estimated per device
	// before it starts, from Plan.SMS); 0 means no SMS at all for
	// SMS-costing plans, -1 no limit.
	SMSBudget int `json:"sms_budget"`
	// Options are the per-device update options (Progress is ignored).
	Options Options `json:"options"`
}

// DefaultRetries is Spec.Retries when it is nil.
const DefaultRetries = 2

// retries is the number of retries of a stored spec (Create fills it in).
func (s *Spec) retries() int {
	if s.Retries == nil {
		return DefaultRetries
	}
	return *s.Retries
}

// DeviceState is one device's state in a campaign, persisted before each
// step.
type DeviceState struct {
	Endpoint string    `json:"endpoint"`
	State    string    `json:"state"`
	Step     Step      `json:"step,omitempty"`
	Attempts int       `json:"attempts"`
	Method   string    `json:"method,omitempty"`
	SMS      int       `json:"sms,omitempty"`
	Result   int64     `json:"result,omitempty"` // Update Result when the device reported a failure
	Error    string    `json:"error,omitempty"`
	Reason   string    `json:"reason,omitempty"` // a Reason constant (skipped over the SMS budget, ...), or ""
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
}

// Report is a campaign's progress (while it runs) or final report.
//
// The zero Report is that of a campaign with no device: nothing done,
// nothing Failed.
type Report struct {
	ID       string         `json:"id"`
	Spec     Spec           `json:"spec"`
	Version  string         `json:"version"`
	Status   string         `json:"status"`
	Total    int            `json:"total"`
	Counts   map[string]int `json:"counts"`
	Reasons  map[string]int `json:"reasons,omitempty"` // devices by DeviceState.Reason
	SMSUsed  int            `json:"sms_used"`
	Created  time.Time      `json:"created"`
	Finished time.Time      `json:"finished,omitzero"`
	// Devices lists every device's state when asked for (Status with all).
	Devices []DeviceState `json:"devices,omitempty"`
}

// Failed reports whether some device failed (the campaign "says so").
func (r Report) Failed() int { return r.Counts[DevFailed] }

// CampaignEvent is sent to the metrics hook on each device state change.
type CampaignEvent struct {
	Campaign string
	Name     string // Spec.Name
	Device   DeviceState
}

// ManagerOption configures a Manager. An option given a value out of its
// range makes NewManager fail with an error wrapping ErrInvalidOption.
type ManagerOption func(*Manager) error

// WithCampaignHook sets a hook called on each device state change (for
// metrics); it must not block.
func WithCampaignHook(f func(CampaignEvent)) ManagerOption {
	return func(m *Manager) error { m.hook = f; return nil }
}

// WithManagerLogger sets the logger (default: none, a discard logger).
func WithManagerLogger(l *slog.Logger) ManagerOption {
	return func(m *Manager) error { m.log = l; return nil }
}

// WithMaxCampaigns bounds the campaigns kept, at least 1 (default 100);
// finished ones beyond it must be deleted first.
func WithMaxCampaigns(n int) ManagerOption {
	return func(m *Manager) error { m.maxCampaigns = n; return atLeast1("WithMaxCampaigns", n) }
}

// WithMaxDevices bounds the devices of one campaign, at least 1 (default
// 100,000).
func WithMaxDevices(n int) ManagerOption {
	return func(m *Manager) error { m.maxDevices = n; return atLeast1("WithMaxDevices", n) }
}

// Manager runs firmware campaigns and keeps them in bbolt: a campaign
// interrupted by a crash resumes when a Manager opens the same database,
// and no device is updated twice: each device's state is stored before
// each step, a device whose Execute may have been sent is only checked
// (its /3/0/3 read) and never sent the update again, and every attempt
// starts by reading /3/0/3 and skips a device already on the version.
//
// The zero Manager is not usable: use NewManager. Its calls fail with
// ErrNotCreated, List is empty and Close does nothing.
type Manager struct {
	store        CampaignStore
	upd          *Updater
	log          *slog.Logger
	hook         func(CampaignEvent)
	maxCampaigns int
	maxDevices   int
	shared       *Shared // several nodes on one store (shared.go)

	mu   sync.Mutex
	runs map[string]*run
	wg   sync.WaitGroup
	ctx  context.Context
	stop context.CancelFunc
}

// campaignRecord is the Manager's name for a stored campaign.
type campaignRecord = CampaignRecord

type run struct {
	m   *Manager
	mu  sync.Mutex
	rec campaignRecord
	dev map[string]*DeviceState
	ord []string

	ctx    context.Context
	cancel context.CancelFunc
	resume chan struct{} // closed when not paused
	done   chan struct{}
	// fence: the step lease contexts of the devices this node works on
	// (shared mode), by endpoint.
	fence map[string]context.Context
}

// NewManager opens the campaigns in the bbolt database db and resumes
// the running ones (NewManagerOn with NewBoltCampaigns(db)).
func NewManager(db *bolt.DB, upd *Updater, opts ...ManagerOption) (*Manager, error) {
	st, err := NewBoltCampaigns(db)
	if err != nil {
		return nil, err
	}
	return NewManagerOn(st, upd, opts...)
}

// NewManagerOn opens the campaigns kept in store and resumes the running
// ones.
func NewManagerOn(store CampaignStore, upd *Updater, opts ...ManagerOption) (*Manager, error) {
	m := &Manager{store: store, upd: upd, maxCampaigns: 100, maxDevices: 100000, runs: map[string]*run{}}
	for _, o := range opts {
		if err := o(m); err != nil {
			return nil, fmt.Errorf("firmware: NewManager: %w", err)
		}
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.ctx, m.stop = context.WithCancel(context.Background())
	recs, devs, err := store.Load(m.ctx)
	if err != nil {
		return nil, fmt.Errorf("firmware: campaigns: %w", err)
	}
	for _, rec := range recs {
		r := m.newRun(rec, devs[rec.ID])
		m.runs[rec.ID] = r
		switch rec.Status {
		case CampaignRunning:
			m.start(r)
		case CampaignPaused:
			m.start(r)
		default:
			close(r.done)
		}
	}
	if m.shared != nil {
		m.wg.Add(1)
		go m.syncLoop()
	}
	return m, nil
}

func (m *Manager) newRun(rec campaignRecord, devs []DeviceState) *run {
	r := &run{m: m, rec: rec, dev: map[string]*DeviceState{}, resume: make(chan struct{}), done: make(chan struct{})}
	for i := range devs {
		d := devs[i]
		r.dev[d.Endpoint] = &d
		r.ord = append(r.ord, d.Endpoint)
	}
	sort.Strings(r.ord)
	if rec.Status != CampaignPaused {
		close(r.resume)
	}
	r.ctx, r.cancel = context.WithCancel(m.ctx)
	return r
}

// Close stops the running campaigns (they resume when a Manager opens the
// database again) and waits for their workers.
func (m *Manager) Close() error {
	if m.stop == nil { // a zero Manager: nothing runs
		return nil
	}
	m.stop()
	m.wg.Wait()
	return nil
}

// Create resolves the spec's target, stores the campaign and starts it.
func (m *Manager) Create(ctx context.Context, spec Spec) (string, error) {
	if m.runs == nil {
		return "", ErrNotCreated
	}
	uo := spec.Options
	if err := uo.check(); err != nil { // refused now, not once per device
		return "", err
	}
	info, err := m.upd.cfg.Store.Get(spec.Image)
	if err != nil {
		return "", err
	}
	if spec.Concurrency <= 0 {
		spec.Concurrency = 10
	}
	if spec.Retries != nil && *spec.Retries < 0 {
		return "", fmt.Errorf("%w: retries %d is negative (new(0): none)", ErrInvalid, *spec.Retries)
	}
	spec.Retries = new(spec.retries()) // stored as a number, never the caller's variable
	if spec.Backoff <= 0 {
		spec.Backoff = 10 * time.Second
	}
	if spec.MaxBackoff <= 0 {
		spec.MaxBackoff = 10 * time.Minute
	}
	spec.Options.Progress = nil
	targets := map[string]bool{}
	for _, ep := range spec.Endpoints {
		targets[ep] = true
	}
	if spec.Prefix != "" || spec.Match != nil {
		m.upd.cfg.Server.Store().Range(func(r *registry.Registration) bool {
			if (spec.Prefix != "" && strings.HasPrefix(r.Endpoint, spec.Prefix)) || (spec.Match != nil && spec.Match(r)) {
				targets[r.Endpoint] = true
			}
			return len(targets) <= m.maxDevices
		})
	}
	if len(targets) == 0 {
		return "", fmt.Errorf("%w: campaign targets no device", ErrInvalid)
	}
	if len(targets) > m.maxDevices {
		return "", fmt.Errorf("%w: more than %d devices", ErrStoreFull, m.maxDevices)
	}
	m.mu.Lock()
	if len(m.runs) >= m.maxCampaigns {
		m.mu.Unlock()
		return "", fmt.Errorf("%w: %d campaigns", ErrStoreFull, len(m.runs))
	}
	m.mu.Unlock()
	n, err := m.store.NextID(ctx)
	if err != nil {
		return "", fmt.Errorf("firmware: store campaign: %w", err)
	}
	id := "c" + strconv.FormatUint(n, 10)
	rec := campaignRecord{ID: id, Spec: spec, Version: info.Version, Status: CampaignRunning, Created: time.Now().UTC()}
	devs := make([]DeviceState, 0, len(targets))
	for ep := range targets {
		devs = append(devs, DeviceState{Endpoint: ep, State: DevPending})
	}
	err = m.store.Create(ctx, rec, devs)
	if err != nil {
		return "", fmt.Errorf("firmware: store campaign: %w", err)
	}
	r := m.newRun(rec, devs)
	m.mu.Lock()
	m.runs[id] = r
	m.mu.Unlock()
	m.start(r)
	return id, nil
}

func (m *Manager) get(id string) (*run, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.runs == nil {
		return nil, ErrNotCreated
	}
	r, ok := m.runs[id]
	if !ok {
		return nil, fmt.Errorf("%w: campaign %q", ErrNotFound, id)
	}
	return r, nil
}

// Pause stops starting new devices; updates in flight finish.
func (m *Manager) Pause(id string) error {
	r, err := m.get(id)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rec.Status != CampaignRunning {
		return fmt.Errorf("%w: campaign %s is %s", ErrInvalid, id, r.rec.Status)
	}
	r.rec.Status = CampaignPaused
	r.resume = make(chan struct{})
	return r.saveLocked()
}

// Resume continues a paused campaign.
func (m *Manager) Resume(id string) error {
	r, err := m.get(id)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rec.Status != CampaignPaused {
		return fmt.Errorf("%w: campaign %s is %s", ErrInvalid, id, r.rec.Status)
	}
	r.rec.Status = CampaignRunning
	close(r.resume)
	return r.saveLocked()
}

// Cancel stops the campaign: updates in flight are abandoned and devices
// not finished are marked cancelled.
func (m *Manager) Cancel(id string) error {
	r, err := m.get(id)
	if err != nil {
		return err
	}
	r.mu.Lock()
	if r.rec.Status == CampaignDone || r.rec.Status == CampaignCancelled {
		r.mu.Unlock()
		return nil
	}
	r.rec.Status = CampaignCancelled
	err = r.saveLocked()
	r.mu.Unlock()
	r.cancel()
	<-r.done
	return err
}

// Delete removes a finished or cancelled campaign.
func (m *Manager) Delete(id string) error {
	r, err := m.get(id)
	if err != nil {
		return err
	}
	select {
	case <-r.done:
	default:
		return fmt.Errorf("%w: campaign %s is still active", ErrInvalid, id)
	}
	err = m.store.Delete(m.ctx, id)
	if err != nil {
		return fmt.Errorf("firmware: delete campaign: %w", err)
	}
	m.mu.Lock()
	delete(m.runs, id)
	m.mu.Unlock()
	return nil
}

// Status returns the campaign's progress; with devices, every device's
// state too.
func (m *Manager) Status(id string, devices bool) (Report, error) {
	r, err := m.get(id)
	if err != nil {
		return Report{}, err
	}
	return r.report(devices), nil
}

// List returns the progress of every campaign, without device lists.
func (m *Manager) List() []Report {
	m.mu.Lock()
	runs := make([]*run, 0, len(m.runs))
	for _, r := range m.runs {
		runs = append(runs, r)
	}
	m.mu.Unlock()
	out := make([]Report, 0, len(runs))
	for _, r := range runs {
		out = append(out, r.report(false))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out
}

// Wait waits until the campaign finishes (done or cancelled) and returns
// its final report with every device.
func (m *Manager) Wait(ctx context.Context, id string) (Report, error) {
	r, err := m.get(id)
	if err != nil {
		return Report{}, err
	}
	select {
	case <-r.done:
		return r.report(true), nil
	case <-ctx.Done():
		return r.report(false), ctx.Err()
	case <-m.ctx.Done():
		return r.report(false), fmt.Errorf("firmware: manager closed: %w", ErrCancelled)
	}
}

func (r *run) report(devices bool) Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := Report{ID: r.rec.ID, Spec: r.rec.Spec, Version: r.rec.Version, Status: r.rec.Status, Total: len(r.dev),
		Counts: map[string]int{}, SMSUsed: r.rec.SMSUsed, Created: r.rec.Created, Finished: r.rec.Finished}
	for _, ep := range r.ord {
		d := r.dev[ep]
		rep.Counts[d.State]++
		if d.Reason != "" {
			if rep.Reasons == nil {
				rep.Reasons = map[string]int{}
			}
			rep.Reasons[d.Reason]++
		}
		if devices {
			rep.Devices = append(rep.Devices, *d)
		}
	}
	return rep
}

func (r *run) saveLocked() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return r.m.store.SaveCampaign(ctx, r.rec)
}
