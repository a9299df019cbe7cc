package queue

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/internal/clocktest"
)

// fakeClock is a manual clock: time moves only by Advance.
type fakeClock = clocktest.Manual

func newFakeClock() *fakeClock {
	return clocktest.New(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// fakeFleet plays the devices: it runs requests, deduplicating by attempt
// token as a CoAP message layer would, and checks NSTART=1.
type fakeFleet struct {
	mu          sync.Mutex
	ran         map[string][]uint64        // ep → request ids run, in order
	runs        map[uint64]int             // id → times the operation ran
	seenTokens  map[string]*Result         // token → cached answer
	inflight    map[string]int             // ep → outstanding
	maxInflight int                        // max over devices
	global      int                        // outstanding in all
	maxGlobal   int                        //
	asleepOnce  map[uint64]bool            // id → answer "asleep" once, after running
	gate        chan struct{}              // if set, each Execute waits for a token
	fail        map[uint64]error           // id → executor error
	attempts    map[uint64][]Attempt       // id → attempts seen
	onExec      func(ep string, id uint64) // optional hook
}

func newFleet() *fakeFleet {
	return &fakeFleet{
		ran: map[string][]uint64{}, runs: map[uint64]int{}, seenTokens: map[string]*Result{},
		inflight: map[string]int{}, asleepOnce: map[uint64]bool{}, fail: map[uint64]error{},
		attempts: map[uint64][]Attempt{},
	}
}

func (f *fakeFleet) Execute(ctx context.Context, ep string, req *Request) (*Result, error) {
	f.mu.Lock()
	f.inflight[ep]++
	f.global++
	f.maxInflight = max(f.maxInflight, f.inflight[ep])
	f.maxGlobal = max(f.maxGlobal, f.global)
	f.attempts[req.ID] = append(f.attempts[req.ID], req.Attempt)
	gate := f.gate
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inflight[ep]--
		f.global--
		f.mu.Unlock()
	}()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail[req.ID]; err != nil {
		return nil, err
	}
	tok := string(req.Attempt.Token())
	res, dup := f.seenTokens[tok]
	if !dup {
		f.runs[req.ID]++
		f.ran[ep] = append(f.ran[ep], req.ID)
		res = &Result{Code: 0x45, ContentFormat: 0, Payload: fmt.Appendf(nil, "%s:%d", ep, req.ID)}
		f.seenTokens[tok] = res
	}
	if f.asleepOnce[req.ID] {
		delete(f.asleepOnce, req.ID)
		return nil, fmt.Errorf("no answer: %w", ErrDeviceAsleep)
	}
	if f.onExec != nil {
		f.onExec(ep, req.ID)
	}
	return res, nil
}

func (f *fakeFleet) order(ep string) []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]uint64(nil), f.ran[ep]...)
}

// fakeWaker records wake-ups; onWake may make the device show up.
type fakeWaker struct {
	mu     sync.Mutex
	calls  map[string][]time.Time
	err    error
	onWake func(ep string, n int)
	clk    *fakeClock
}

func (w *fakeWaker) Wake(ctx context.Context, ep string, t WakeTarget) error {
	w.mu.Lock()
	if w.calls == nil {
		w.calls = map[string][]time.Time{}
	}
	w.calls[ep] = append(w.calls[ep], w.clk.Now())
	n, err, on := len(w.calls[ep]), w.err, w.onWake
	w.mu.Unlock()
	if err != nil {
		return err
	}
	if on != nil {
		on(ep, n)
	}
	return nil
}

// at returns the clock time of wake-up n (1-based) of ep.
func (w *fakeWaker) at(ep string, n int) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.calls[ep][n-1]
}

func (w *fakeWaker) count(ep string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.calls[ep])
}

func wakeable(msisdn string) *WakeTarget {
	return &WakeTarget{MSISDN: msisdn, Version: "1.1", Trigger: true}
}

type testMetrics struct {
	mu sync.Mutex
	c  map[string]float64
	g  map[string]float64
}

func (m *testMetrics) Add(n string, d float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.c == nil {
		m.c = map[string]float64{}
	}
	m.c[n] += d
}

func (m *testMetrics) Set(n string, v float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.g == nil {
		m.g = map[string]float64{}
	}
	m.g[n] = v
}

func (m *testMetrics) get(n string) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.c[n]
}

type rig struct {
	m     *Manager
	clk   *fakeClock
	fleet *fakeFleet
	waker *fakeWaker
	met   *testMetrics
	store Store
}

// waitTimer waits until the Manager holds a timer of kind k for the
// instant at and its timer loop waits on the clock for it (or for an
// earlier one). A test that moves the clock before then races the timer
// being set: the wake-up timeout, for one, is armed after Waker.Wake
// returns, so seeing the wake-up is not enough.
func (r *rig) waitTimer(t testing.TB, k timerKind, at time.Time) {
	t.Helper()
	waitFor(t, "a timer for "+at.Format(time.TimeOnly), func() bool {
		r.m.mu.Lock()
		found := false
		for _, tm := range r.m.timers {
			if tm.kind == k && tm.at == at.UnixNano() {
				found = true
				break
			}
		}
		r.m.mu.Unlock()
		return found && r.clk.ArmedBy(at)
	})
}

func newRig(t testing.TB, mut func(*Config)) *rig {
	t.Helper()
	r := &rig{clk: newFakeClock(), fleet: newFleet(), met: &testMetrics{}, store: NewMemStore()}
	r.waker = &fakeWaker{clk: r.clk}
	cfg := Config{
		Store: r.store, Executor: r.fleet, Waker: r.waker, Clock: r.clk, Metrics: r.met,
		Concurrency: 4,
		Wake:        WakePolicy{Timeout: time.Minute, Factor: 2, MaxTimeout: 10 * time.Minute, MaxWakes: new(3), MinInterval: 10 * time.Second},
	}
	if mut != nil {
		mut(&cfg)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.m = m
	t.Cleanup(func() { m.Close() })
	return r
}

func (r *rig) enqueue(t testing.TB, ep string, kind Kind, path string) uint64 {
	t.Helper()
	id, err := r.m.Enqueue(context.Background(), Request{Endpoint: ep, Kind: kind, Paths: []string{path}, ContentFormat: NoContentFormat})
	if err != nil {
		t.Fatalf("enqueue %s %s: %v", ep, path, err)
	}
	return id
}

func (r *rig) wait(t testing.TB, id uint64) (*Record, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rec, err := r.m.Wait(ctx, id)
	if err == context.DeadlineExceeded {
		t.Fatalf("wait %d: %v", id, err)
	}
	return rec, err
}

func equalIDs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (f *fakeFleet) runCount(id uint64) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.runs[id]
}

func (f *fakeFleet) attemptsOf(id uint64) []Attempt {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Attempt(nil), f.attempts[id]...)
}
