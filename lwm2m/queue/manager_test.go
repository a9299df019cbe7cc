package queue

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
)

// A request for a sleeping device is queued, the waker is called, the
// device shows up, the queue drains in order with NSTART=1 and the results
// reach Wait.
func TestWakeDrainInOrder(t *testing.T) {
	r := newRig(t, nil)
	r.waker.onWake = func(ep string, n int) { go r.m.Seen(ep, 0) }
	if err := r.m.SetDevice("lamp-1", DeviceConfig{Wake: wakeable("+491710000002")}); err != nil {
		t.Fatal(err)
	}
	sub := r.m.Subscribe(64)
	var ids []uint64
	for i := range 5 {
		ids = append(ids, r.enqueue(t, "lamp-1", KindRead, fmt.Sprintf("/3/0/%d", i)))
	}
	for _, id := range ids {
		rec, err := r.wait(t, id)
		if err != nil {
			t.Fatalf("wait %d: %v", id, err)
		}
		if rec.State != StateDone || rec.Result == nil || string(rec.Result.Payload) != fmt.Sprintf("lamp-1:%d", id) {
			t.Fatalf("record %+v", rec)
		}
	}
	if got := r.fleet.order("lamp-1"); !equalIDs(got, ids) {
		t.Fatalf("order %v, want %v", got, ids)
	}
	if r.fleet.maxInflight != 1 {
		t.Fatalf("NSTART violated: %d outstanding", r.fleet.maxInflight)
	}
	if n := r.waker.count("lamp-1"); n != 1 {
		t.Fatalf("%d wake-ups, want 1", n)
	}
	types := map[EventType]int{}
	waitFor(t, "events", func() bool {
		for {
			select {
			case ev := <-sub.C():
				types[ev.Type]++
			default:
				return types[EventDone] == 5
			}
		}
	})
	if types[EventQueued] != 5 || types[EventWake] != 1 || types[EventWoke] != 1 || types[EventSent] != 5 {
		t.Fatalf("events %v", types)
	}
}

// Many devices drain concurrently, each in order with one request
// outstanding, never more than Concurrency at once (property).
func TestDrainOrderProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		conc := rapid.IntRange(1, 4).Draw(rt, "conc")
		r := newRig(t, func(c *Config) { c.Concurrency = conc; c.Waker = nil })
		defer r.m.Close()
		nDev := rapid.IntRange(1, 6).Draw(rt, "devices")
		ops := rapid.SliceOfN(rapid.IntRange(0, nDev-1), 1, 40).Draw(rt, "ops")
		awakeFirst := rapid.Bool().Draw(rt, "awakeFirst")
		want := map[string][]uint64{}
		if awakeFirst {
			for d := range nDev {
				r.m.Seen(fmt.Sprint("d", d), time.Hour)
			}
		}
		var all []uint64
		for _, d := range ops {
			ep := fmt.Sprint("d", d)
			id := r.enqueue(t, ep, KindRead, "/3/0")
			want[ep] = append(want[ep], id)
			all = append(all, id)
		}
		if !awakeFirst {
			for d := range nDev {
				r.m.Seen(fmt.Sprint("d", d), time.Hour)
			}
		}
		for _, id := range all {
			if _, err := r.wait(t, id); err != nil {
				rt.Fatalf("wait %d: %v", id, err)
			}
		}
		for ep, ids := range want {
			if got := r.fleet.order(ep); !equalIDs(got, ids) {
				rt.Fatalf("%s order %v, want %v", ep, got, ids)
			}
		}
		if r.fleet.maxInflight > 1 || r.fleet.maxGlobal > conc {
			rt.Fatalf("outstanding per device %d, global %d > %d", r.fleet.maxInflight, r.fleet.maxGlobal, conc)
		}
	})
}

func TestBounds(t *testing.T) {
	big := make([]byte, 1000)
	tests := []struct {
		name        string
		lim         Limits
		reqs        int
		payload     []byte
		devices     int
		scope, what string
	}{
		{"device count", Limits{PerDevice: 3}, 4, nil, 1, "device", "count"},
		{"device bytes", Limits{PerDeviceBytes: 2500}, 3, big, 1, "device", "bytes"},
		{"total count", Limits{Total: 5}, 3, nil, 2, "total", "count"},
		{"total bytes", Limits{TotalBytes: 4500}, 3, big, 2, "total", "bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, func(c *Config) { c.Limits = tc.lim })
			var err error
			n := 0
		loop:
			for d := range tc.devices {
				for range tc.reqs {
					_, err = r.m.Enqueue(context.Background(), Request{Endpoint: fmt.Sprint("d", d), Kind: KindWrite, Paths: []string{"/3/0/1"}, Payload: tc.payload})
					if err != nil {
						break loop
					}
					n++
				}
			}
			var fe *FullError
			if !errors.As(err, &fe) || !errors.Is(err, ErrQueueFull) {
				t.Fatalf("after %d: err %v, want *FullError", n, err)
			}
			if fe.Scope != tc.scope || fe.What != tc.what {
				t.Fatalf("got %s/%s, want %s/%s", fe.Scope, fe.What, tc.scope, tc.what)
			}
			if st := r.m.Stats(); st.Live != n {
				t.Fatalf("live %d, accepted %d", st.Live, n)
			}
			if r.met.get("rejected_full") != 1 {
				t.Fatalf("metric rejected_full %v", r.met.get("rejected_full"))
			}
		})
	}
}

func TestInvalidRequest(t *testing.T) {
	r := newRig(t, nil)
	for _, req := range []Request{
		{Kind: KindRead},
		{Endpoint: "x"},
		{Endpoint: "x", Kind: 99},
		{Endpoint: "x", Kind: KindRead, Expires: r.clk.Now().Add(-time.Second)},
	} {
		t.Run(fmt.Sprintf("%+v", req), func(t *testing.T) {
			if _, err := r.m.Enqueue(context.Background(), req); !errors.Is(err, ErrInvalidRequest) {
				t.Errorf("%+v: %v", req, err)
			}
		})
	}
}

func TestExpiry(t *testing.T) {
	r := newRig(t, func(c *Config) { c.Waker = nil })
	sub := r.m.Subscribe(16)
	id, err := r.m.Enqueue(context.Background(), Request{Endpoint: "lamp", Kind: KindRead, Paths: []string{"/3/0"}, Expires: r.clk.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	keep := r.enqueue(t, "lamp", KindRead, "/3/0/1") // default expiry: a day
	r.clk.Advance(59 * time.Second)
	if rec, _ := r.m.Get(id); rec.State != StateQueued {
		t.Fatalf("state %v before expiry", rec.State)
	}
	r.clk.Advance(2 * time.Second)
	rec, err := r.wait(t, id)
	if !errors.Is(err, ErrExpired) || rec.State != StateExpired {
		t.Fatalf("state %v err %v", rec.State, err)
	}
	if got := r.m.Pending("lamp"); !equalIDs(got, []uint64{keep}) {
		t.Fatalf("pending %v", got)
	}
	waitFor(t, "expired event", func() bool {
		for {
			select {
			case ev := <-sub.C():
				if ev.Type == EventExpired && ev.ID == id && errors.Is(ev.Err, ErrExpired) {
					return true
				}
			default:
				return false
			}
		}
	})
	r.m.Seen("lamp", 0)
	if _, err := r.wait(t, keep); err != nil {
		t.Fatal(err)
	}
	if r.fleet.runCount(id) != 0 {
		t.Fatal("expired request ran")
	}
}

func TestCancel(t *testing.T) {
	r := newRig(t, func(c *Config) { c.Waker = nil })
	a := r.enqueue(t, "lamp", KindExecute, "/3/0/4")
	b := r.enqueue(t, "lamp", KindRead, "/3/0/0")
	if err := r.m.Cancel(a); err != nil {
		t.Fatal(err)
	}
	rec, err := r.wait(t, a)
	if !errors.Is(err, ErrCancelled) || rec.State != StateCancelled {
		t.Fatalf("%v %v", rec.State, err)
	}
	if err := r.m.Cancel(a); err == nil {
		t.Fatal("second cancel succeeded")
	}
	if err := r.m.Cancel(12345); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	r.m.Seen("lamp", 0)
	if _, err := r.wait(t, b); err != nil {
		t.Fatal(err)
	}
	if r.fleet.runCount(a) != 0 || r.fleet.runCount(b) != 1 {
		t.Fatalf("runs %v", r.fleet.runs)
	}
	// A request being executed cannot be cancelled.
	r.fleet.gate = make(chan struct{})
	c := r.enqueue(t, "lamp", KindRead, "/3/0/0")
	waitFor(t, "sending", func() bool { rec, _ := r.m.Get(c); return rec.State == StateSending })
	if err := r.m.Cancel(c); !errors.Is(err, ErrInProgress) {
		t.Fatalf("cancel in flight: %v", err)
	}
	close(r.fleet.gate)
	if _, err := r.wait(t, c); err != nil {
		t.Fatal(err)
	}
}

func TestRetention(t *testing.T) {
	r := newRig(t, func(c *Config) { c.Waker = nil; c.Retention = time.Hour; c.MaxResults = 3 })
	r.m.Seen("lamp", 24*time.Hour)
	var ids []uint64
	for range 5 {
		id := r.enqueue(t, "lamp", KindRead, "/3/0")
		if _, err := r.wait(t, id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	// MaxResults: the two oldest results are pruned (just after the
	// newest is reported).
	waitFor(t, "MaxResults prune", func() bool { _, err := r.m.Get(ids[1]); return errors.Is(err, ErrNotFound) })
	for i, id := range ids {
		_, err := r.m.Get(id)
		if (i < 2) != errors.Is(err, ErrNotFound) {
			t.Fatalf("result %d: %v", i, err)
		}
	}
	// Retention: all pruned an hour later.
	r.clk.Advance(2 * time.Hour)
	waitFor(t, "retention prune", func() bool { return r.m.Stats().Results == 0 })
	if _, err := r.m.Get(ids[4]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after retention: %v", err)
	}
	if n := r.store.(*MemStore).Len(); n != 0 {
		t.Fatalf("%d records left in store", n)
	}
}

// The first wake-up is lost; the second follows after the wake timeout.
func TestWakeLostThenBackoff(t *testing.T) {
	r := newRig(t, nil)
	r.waker.onWake = func(ep string, n int) {
		if n == 2 {
			go r.m.Seen(ep, 0)
		}
	}
	r.m.SetDevice("lamp", DeviceConfig{Wake: wakeable("+491710000002")})
	id := r.enqueue(t, "lamp", KindRead, "/3/0")
	waitFor(t, "first wake", func() bool { return r.waker.count("lamp") == 1 })
	due := r.waker.at("lamp", 1).Add(time.Minute)
	r.waitTimer(t, timerWake, due)
	r.clk.Advance(59 * time.Second)
	if n := r.waker.count("lamp"); n != 1 {
		t.Fatalf("%d wake-ups before the timeout", n)
	}
	r.waitTimer(t, timerWake, due)
	r.clk.Advance(time.Second)
	if _, err := r.wait(t, id); err != nil {
		t.Fatal(err)
	}
	if n := r.waker.count("lamp"); n != 2 {
		t.Fatalf("%d wake-ups", n)
	}
	if d := r.waker.calls["lamp"][1].Sub(r.waker.calls["lamp"][0]); d != time.Minute {
		t.Fatalf("second wake after %v", d)
	}
}

// The device never wakes: wake-ups with backoff (1, 2, 4 min), then the
// requests fail with ErrNotWoken.
func TestNeverWakes(t *testing.T) {
	r := newRig(t, nil)
	r.m.SetDevice("lamp", DeviceConfig{Wake: wakeable("+491710000002")})
	a := r.enqueue(t, "lamp", KindRead, "/3/0")
	b := r.enqueue(t, "lamp", KindWrite, "/3/0/14")
	for i, step := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute} {
		waitFor(t, fmt.Sprint("wake ", i+1), func() bool { return r.waker.count("lamp") == i+1 })
		due := r.waker.at("lamp", i+1).Add(step)
		r.waitTimer(t, timerWake, due)
		r.clk.Advance(step - time.Second)
		if rec, _ := r.m.Get(a); rec.State != StateQueued {
			t.Fatalf("state %v before the last timeout", rec.State)
		}
		if n := r.waker.count("lamp"); n != i+1 {
			t.Fatalf("wake-ups %d early", n)
		}
		r.waitTimer(t, timerWake, due)
		r.clk.Advance(time.Second)
	}
	for _, c := range []struct {
		name string
		id   uint64
	}{{"read", a}, {"write", b}} {
		t.Run(c.name+" fails not woken", func(t *testing.T) {
			rec, err := r.wait(t, c.id)
			var nw *NotWokenError
			if !errors.Is(err, ErrNotWoken) || !errors.As(err, &nw) || nw.Wakes != 3 || rec.State != StateFailed {
				t.Fatalf("%d: %v %v", c.id, rec.State, err)
			}
		})
	}
	if r.waker.count("lamp") != 3 || r.met.get("not_woken") != 1 || r.met.get("wakeups") != 3 {
		t.Fatalf("wakes %d metrics %v", r.waker.count("lamp"), r.met.c)
	}
	// Stored error survives without the in-memory cause.
	rec, _ := r.m.Get(a)
	if !errors.Is(rec.Err(), ErrNotWoken) {
		t.Fatalf("stored error %v", rec.Err())
	}
}

// A wake-up the waker refuses (ErrWakeRefused: the SMS waker so marks a
// budget error of the SMS bearer) fails the requests at once, with the
// budget error as the cause.
func TestWakeBudgetExceeded(t *testing.T) {
	r := newRig(t, nil)
	r.waker.err = RefuseWake(fmt.Errorf("send: %w", &sms.BudgetError{Scope: "device", Peer: "+491710000002", Limit: 5, Used: 5, Need: 1}))
	r.m.SetDevice("lamp", DeviceConfig{Wake: wakeable("+491710000002")})
	id := r.enqueue(t, "lamp", KindRead, "/3/0")
	_, err := r.wait(t, id)
	if !errors.Is(err, ErrNotWoken) || !errors.Is(err, sms.ErrBudgetExceeded) {
		t.Fatalf("err %v", err)
	}
}

// Wake-ups of one device are at least MinInterval apart.
func TestWakeRateLimit(t *testing.T) {
	r := newRig(t, func(c *Config) { c.Wake.MinInterval = 5 * time.Minute })
	r.m.SetDevice("lamp", DeviceConfig{Wake: wakeable("+491710000002")})
	r.enqueue(t, "lamp", KindRead, "/3/0")
	waitFor(t, "first wake", func() bool { return r.waker.count("lamp") == 1 })
	// The device shows up briefly and falls asleep on the first request.
	r.fleet.mu.Lock()
	r.fleet.fail[2] = fmt.Errorf("x: %w", ErrDeviceAsleep)
	r.fleet.mu.Unlock()
	r.enqueue(t, "lamp", KindRead, "/3/0/1") // id 2
	r.m.Seen("lamp", time.Second)
	waitFor(t, "first done", func() bool { rec, _ := r.m.Get(1); return rec.State == StateDone })
	waitFor(t, "requeued", func() bool { return r.met.get("requeued") == 1 })
	due := r.waker.at("lamp", 1).Add(5 * time.Minute)
	r.waitTimer(t, timerWake, due)
	r.clk.Advance(4 * time.Minute)
	if n := r.waker.count("lamp"); n != 1 {
		t.Fatalf("%d wake-ups inside MinInterval", n)
	}
	r.waitTimer(t, timerWake, due)
	r.clk.Advance(time.Minute)
	waitFor(t, "second wake", func() bool { return r.waker.count("lamp") == 2 })
}

// The device falls asleep mid-drain: the request goes back to the head,
// a wake-up is planned, and the re-send carries the same attempt, so the
// device (deduplicating) runs it once.
func TestAsleepMidDrain(t *testing.T) {
	r := newRig(t, nil)
	r.m.SetDevice("lamp", DeviceConfig{Wake: wakeable("+491710000002")})
	r.m.Seen("lamp", 0)
	r.fleet.gate = make(chan struct{})
	a := r.enqueue(t, "lamp", KindExecute, "/3/0/4")
	b := r.enqueue(t, "lamp", KindCreate, "/9")
	c := r.enqueue(t, "lamp", KindRead, "/3/0")
	r.fleet.mu.Lock()
	r.fleet.asleepOnce[b] = true // runs, but the answer is lost
	r.fleet.mu.Unlock()
	r.fleet.gate <- struct{}{}
	r.fleet.gate <- struct{}{}
	waitFor(t, "wake-up after sleep", func() bool { return r.waker.count("lamp") == 1 })
	if got := r.m.Pending("lamp"); !equalIDs(got, []uint64{b, c}) {
		t.Fatalf("pending %v", got)
	}
	if r.m.Awake("lamp") {
		t.Fatal("device still awake")
	}
	close(r.fleet.gate)
	r.m.Seen("lamp", 0)
	for _, q := range []struct {
		name string
		id   uint64
	}{{"execute", a}, {"create (answer lost)", b}, {"read", c}} {
		t.Run(q.name+" done", func(t *testing.T) {
			if _, err := r.wait(t, q.id); err != nil {
				t.Fatal(err)
			}
		})
	}
	if got := r.fleet.order("lamp"); !equalIDs(got, []uint64{a, b, c}) {
		t.Fatalf("ran %v", got)
	}
	at := r.fleet.attemptsOf(b)
	if len(at) != 2 || at[0] != at[1] || r.fleet.runCount(b) != 1 {
		t.Fatalf("attempts %v runs %d", at, r.fleet.runCount(b))
	}
}

// Outside the dedup window a lost answer is resolved by kind: idempotent
// requests get a fresh attempt, others fail with ErrUnknownOutcome.
func TestUnknownOutcome(t *testing.T) {
	r := newRig(t, func(c *Config) { c.Waker = nil; c.DedupWindow = time.Minute })
	r.m.Seen("lamp", time.Hour)
	r.fleet.gate = make(chan struct{})
	ex := r.enqueue(t, "lamp", KindExecute, "/3/0/4")
	rd := r.enqueue(t, "lamp", KindRead, "/3/0")
	r.fleet.mu.Lock()
	r.fleet.asleepOnce[ex] = true
	r.fleet.mu.Unlock()
	r.fleet.gate <- struct{}{}
	waitFor(t, "requeue", func() bool { return r.met.get("requeued") == 1 })
	r.clk.Advance(2 * time.Minute)
	close(r.fleet.gate)
	r.m.Seen("lamp", time.Hour)
	_, err := r.wait(t, ex)
	if !errors.Is(err, ErrUnknownOutcome) {
		t.Fatalf("execute: %v", err)
	}
	if _, err := r.wait(t, rd); err != nil {
		t.Fatal(err)
	}
	if r.fleet.runCount(ex) != 1 {
		t.Fatalf("execute ran %d times", r.fleet.runCount(ex))
	}
	// An idempotent one is re-sent as attempt 2.
	r.fleet.gate = make(chan struct{})
	w := r.enqueue(t, "lamp", KindWrite, "/3/0/14")
	r.fleet.mu.Lock()
	r.fleet.asleepOnce[w] = true
	r.fleet.mu.Unlock()
	r.fleet.gate <- struct{}{}
	waitFor(t, "requeue", func() bool { return r.met.get("requeued") == 2 })
	r.clk.Advance(2 * time.Minute)
	close(r.fleet.gate)
	r.m.Seen("lamp", time.Hour)
	if _, err := r.wait(t, w); err != nil {
		t.Fatal(err)
	}
	if at := r.fleet.attemptsOf(w); len(at) != 2 || at[0].N != 1 || at[1].N != 2 {
		t.Fatalf("attempts %v", at)
	}
}

func TestExecutorError(t *testing.T) {
	r := newRig(t, func(c *Config) { c.Waker = nil })
	boom := errors.New("4.04 not found at transport")
	r.fleet.fail[1] = boom
	r.m.Seen("lamp", time.Hour)
	id := r.enqueue(t, "lamp", KindRead, "/3/0")
	rec, err := r.wait(t, id)
	if !errors.Is(err, ErrExecutor) || !errors.Is(err, boom) || rec.ErrMsg != boom.Error() {
		t.Fatalf("%v %+v", err, rec)
	}
}

func TestAwakeWindow(t *testing.T) {
	r := newRig(t, func(c *Config) { c.Waker = nil })
	if r.m.Awake("lamp") {
		t.Fatal("awake before seen")
	}
	r.m.SeenParams("lamp", sms.DefaultParams()) // 90 s
	r.clk.Advance(89 * time.Second)
	if !r.m.Awake("lamp") {
		t.Fatal("asleep inside the window")
	}
	r.clk.Advance(time.Second)
	if r.m.Awake("lamp") {
		t.Fatal("awake after the window")
	}
	r.m.SetDevice("lamp", DeviceConfig{Window: 10 * time.Second})
	r.m.Seen("lamp", 0)
	r.clk.Advance(10 * time.Second)
	if r.m.Awake("lamp") {
		t.Fatal("configured window ignored")
	}
	r.m.Seen("lamp", 0)
	r.m.Asleep("lamp")
	if r.m.Awake("lamp") {
		t.Fatal("Asleep ignored")
	}
}

func TestWakeable(t *testing.T) {
	tests := []struct {
		t    *WakeTarget
		want bool
	}{
		{nil, false},
		{&WakeTarget{Version: "1.0", Binding: "UQS", MSISDN: "+491710000002"}, true},
		{&WakeTarget{Version: "1.0", Binding: "SQ", MSISDN: "+491710000002"}, true},
		{&WakeTarget{Version: "1.0", Binding: "UQ", MSISDN: "+491710000002"}, false},
		{&WakeTarget{Version: "1.0", Binding: "UQS"}, false},
		{&WakeTarget{Version: "1.1", Trigger: true, MSISDN: "+491710000002"}, true},
		{&WakeTarget{Version: "1.2", Trigger: false, MSISDN: "+491710000002"}, false},
		{&WakeTarget{Version: "2.0", Trigger: true, MSISDN: "+491710000002"}, false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%+v", tc.t), func(t *testing.T) {
			if got := tc.t.Wakeable(); got != tc.want {
				t.Errorf("%+v: %v", tc.t, got)
			}
		})
	}
}

func TestRestartMemStoreKeepsQueue(t *testing.T) {
	store := NewMemStore()
	clk := newFakeClock()
	fleet := newFleet()
	m, err := New(Config{Store: store, Executor: fleet, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for i := range 3 {
		id, err := m.Enqueue(context.Background(), Request{Endpoint: "lamp", Kind: KindRead, Paths: []string{fmt.Sprint("/3/0/", i)}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	m.Close()
	if _, err := m.Enqueue(context.Background(), Request{Endpoint: "lamp", Kind: KindRead}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
	m2, err := New(Config{Store: store, Executor: fleet, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if got := m2.Pending("lamp"); !equalIDs(got, ids) {
		t.Fatalf("pending after restart %v", got)
	}
	m2.Seen("lamp", 0)
	for _, id := range ids {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := m2.Wait(ctx, id)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// A request whose expiry passes while it is being sent is not expired
// under the executor; if the device then sleeps, it expires afterwards.
func TestExpiryDuringSend(t *testing.T) {
	r := newRig(t, func(c *Config) { c.Waker = nil })
	r.m.Seen("lamp", time.Hour)
	r.fleet.gate = make(chan struct{})
	id, err := r.m.Enqueue(context.Background(), Request{Endpoint: "lamp", Kind: KindRead, Paths: []string{"/3/0"}, Expires: r.clk.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	other := r.enqueue(t, "lamp", KindRead, "/3/0/1")
	waitFor(t, "sending", func() bool { rec, _ := r.m.Get(id); return rec.State == StateSending })
	if err := r.m.Cancel(other); err != nil { // not the one being sent
		t.Fatal(err)
	}
	r.clk.Advance(2 * time.Minute)
	if rec, _ := r.m.Get(id); rec.State != StateSending {
		t.Fatalf("expired under the executor: %v", rec.State)
	}
	r.fleet.mu.Lock()
	r.fleet.fail[id] = ErrDeviceAsleep
	r.fleet.mu.Unlock()
	r.fleet.gate <- struct{}{}
	waitFor(t, "requeued", func() bool { return r.met.get("requeued") == 1 })
	r.clk.Advance(2 * time.Second)
	rec, err := r.wait(t, id)
	if !errors.Is(err, ErrExpired) || rec.ErrMsg != "expired after a send whose answer was lost" {
		t.Fatalf("%v %q", err, rec.ErrMsg)
	}
}

func TestForgetDevice(t *testing.T) {
	r := newRig(t, nil)
	r.m.SetDevice("lamp", DeviceConfig{Wake: wakeable("+491710000002")})
	r.m.ForgetDevice("lamp")
	r.enqueue(t, "lamp", KindRead, "/3/0")
	r.clk.Advance(time.Hour)
	if n := r.waker.count("lamp"); n != 0 {
		t.Fatalf("forgotten device woken %d times", n)
	}
}

// A device reached over SMS has a longer dedup window (its bearer's
// EXCHANGE_LIFETIME): inside it, a lost answer is re-sent as the same
// attempt even for Execute, and the device runs it once.
func TestPerDeviceDedupWindow(t *testing.T) {
	r := newRig(t, func(c *Config) { c.Waker = nil; c.DedupWindow = time.Minute })
	r.m.SetDevice("lamp", DeviceConfig{DedupWindow: 10 * time.Minute})
	r.m.Seen("lamp", time.Hour)
	r.fleet.gate = make(chan struct{})
	ex := r.enqueue(t, "lamp", KindExecute, "/3/0/4")
	r.fleet.mu.Lock()
	r.fleet.asleepOnce[ex] = true
	r.fleet.mu.Unlock()
	r.fleet.gate <- struct{}{}
	waitFor(t, "requeue", func() bool { return r.met.get("requeued") == 1 })
	r.clk.Advance(5 * time.Minute)
	close(r.fleet.gate)
	r.m.Seen("lamp", time.Hour)
	if _, err := r.wait(t, ex); err != nil {
		t.Fatal(err)
	}
	if at := r.fleet.attemptsOf(ex); len(at) != 2 || at[0] != at[1] || r.fleet.runCount(ex) != 1 {
		t.Fatalf("attempts %v runs %d", at, r.fleet.runCount(ex))
	}
}

// An Execute whose only transmission met an ICMP port unreachable
// (ErrNotDelivered) was never delivered: when the device wakes after the
// dedup window it is sent as a fresh attempt and runs once, instead of
// failing with ErrUnknownOutcome. The same request left unanswered
// without that knowledge fails (TestUnknownOutcome).
func TestNotDeliveredIsNotUnknownOutcome(t *testing.T) {
	r := newRig(t, func(c *Config) { c.Waker = nil; c.DedupWindow = time.Minute })
	r.m.Seen("lamp", time.Hour)
	r.fleet.gate = make(chan struct{})
	ex := r.enqueue(t, "lamp", KindExecute, "/3/0/4")
	r.fleet.mu.Lock()
	r.fleet.fail[ex] = fmt.Errorf("%w: %w", ErrNotDelivered, ErrDeviceAsleep)
	r.fleet.mu.Unlock()
	r.fleet.gate <- struct{}{}
	waitFor(t, "requeue", func() bool { return r.met.get("requeued") == 1 })
	if rec, _ := r.m.Get(ex); rec.State != StateQueued || !rec.SendingSince.IsZero() {
		t.Fatalf("after ICMP: %s, sending since %v; want queued, never sent", rec.State, rec.SendingSince)
	}
	r.clk.Advance(5 * time.Minute) // far past the dedup window
	r.fleet.mu.Lock()
	delete(r.fleet.fail, ex)
	r.fleet.mu.Unlock()
	close(r.fleet.gate)
	r.m.Seen("lamp", time.Hour)
	if _, err := r.wait(t, ex); err != nil {
		t.Fatalf("execute after a late wake-up: %v", err)
	}
	if at := r.fleet.attemptsOf(ex); len(at) != 2 || at[0].N != 1 || at[1].N != 2 || r.fleet.runCount(ex) != 1 {
		t.Fatalf("attempts %v, runs %d", at, r.fleet.runCount(ex))
	}
	if r.met.get("not_delivered") != 1 {
		t.Fatalf("not_delivered %v", r.met.get("not_delivered"))
	}
}
