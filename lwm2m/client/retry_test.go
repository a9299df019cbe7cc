package client_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/lwm2m/client"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

// manualClock is a client.Clock that moves only when the test says so; it
// records every wait it was asked for.
type manualClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []manualWaiter
	waits   []time.Duration
	asked   chan struct{}
}

type manualWaiter struct {
	at time.Time
	ch chan time.Time
}

func newManualClock() *manualClock {
	return &manualClock{now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), asked: make(chan struct{}, 64)}
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, manualWaiter{at: c.now.Add(d), ch: ch})
	c.waits = append(c.waits, d)
	select {
	case c.asked <- struct{}{}:
	default:
	}
	return ch
}

// fireNext moves the clock to the earliest wait and fires it.
func (c *manualClock) fireNext() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.waiters) == 0 {
		return
	}
	i := 0
	for j, w := range c.waiters {
		if w.at.Before(c.waiters[i].at) {
			i = j
		}
	}
	w := c.waiters[i]
	c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
	if w.at.After(c.now) {
		c.now = w.at
	}
	w.ch <- c.now
}

// refuser is a server that refuses every Register with 4.03.
type refuser struct {
	mu       sync.Mutex
	register int
}

func (r *refuser) ServeCoAP(w bearer.ResponseWriter, req *bearer.Request) {
	if req.Path() == "/rd" && req.Code == codes.POST {
		r.mu.Lock()
		r.register++
		r.mu.Unlock()
	}
	_ = w.WriteResponse(codes.Forbidden, []byte("not on the list"))
}

// TestRegistrationProcedureBoundsSMS: a server that refuses every
// Register costs an SMS device at most what the LwM2M 1.1 registration
// procedure allows in a day (defaults: 5 attempts, 60 s × 2^(n−1) apart,
// one sequence), on a manual clock; with /1/x/17–20 set, their values.
func TestRegistrationProcedureBoundsSMS(t *testing.T) {
	for _, tc := range []struct {
		name     string
		res      map[uint16]int64 // /1/0/17..20
		attempts int
		// base waits before each retry and sequence, jitter aside
		waits []time.Duration
	}{
		{"defaults", nil, 5, []time.Duration{60 * time.Second, 120 * time.Second, 240 * time.Second, 480 * time.Second}},
		{"server object 3x2, 10 s, 1 h", map[uint16]int64{17: 3, 18: 10, 19: 3600, 20: 2}, 6,
			[]time.Duration{10 * time.Second, 20 * time.Second, time.Hour, 10 * time.Second, 20 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newManualClock()
			c, err := client.New("refused-light", client.WithBinding("S"), client.WithClock(clk), client.WithLifetime(3600))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.AddServer(client.Server{ShortID: 1, Lifetime: 3600, Binding: "S"}); err != nil {
				t.Fatal(err)
			}
			for id, v := range tc.res {
				if err := c.Set(path.Resource(1, 0, id), content.NewInt(v)); err != nil {
					t.Fatal(err)
				}
			}
			ref := &refuser{}
			dev, srvEP, _ := smsEndpointsH(t, c, ref)
			done := make(chan error, 1)
			go func() { done <- c.StartRetry(context.Background(), dev, msisdn(t, srvNum)) }()
		loop:
			for {
				select {
				case err = <-done:
					break loop
				case <-clk.asked:
					clk.fireNext()
				case <-time.After(20 * time.Second):
					t.Fatal("the procedure neither waited nor ended")
				}
			}
			var rf *client.RegistrationFailedError
			if !errors.As(err, &rf) || !errors.Is(err, client.ErrRegistrationFailed) || rf.Attempts != tc.attempts {
				t.Fatalf("StartRetry: %v, want failure after %d attempts", err, tc.attempts)
			}
			ref.mu.Lock()
			regs := ref.register
			ref.mu.Unlock()
			if regs != tc.attempts {
				t.Fatalf("server saw %d Registers, want %d", regs, tc.attempts)
			}
			clk.mu.Lock()
			waits := append([]time.Duration(nil), clk.waits...)
			elapsed := clk.now.Sub(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
			clk.mu.Unlock()
			if len(waits) != len(tc.waits) {
				t.Fatalf("waits %v, want about %v", waits, tc.waits)
			}
			for i, w := range waits {
				if lo, hi := tc.waits[i]*3/4, tc.waits[i]*5/4; w < lo || w > hi {
					t.Fatalf("wait %d: %v, want %v ± 25 %%", i, w, tc.waits[i])
				}
			}
			// Every attempt is one SMS each way: the physical cost of a
			// refused device for the whole procedure.
			devB := dev.Bearer().(*sms.Bearer)
			u, _ := devB.Usage(srvNum)
			srvB := srvEP.Bearer().(*sms.Bearer)
			su, _ := srvB.Usage(devNum)
			sent, got := sms.Total(u.Sent).Segments, sms.Total(su.Sent).Segments
			t.Logf("%s: %d attempts over %v of clock: device sent %d SMS, server answered %d", tc.name, rf.Attempts, elapsed, sent, got)
			if sent != uint64(tc.attempts) || got != uint64(tc.attempts) {
				t.Fatalf("device sent %d SMS, server %d; want %d each", sent, got, tc.attempts)
			}
			if tc.res == nil && elapsed >= 24*time.Hour {
				t.Fatalf("default procedure took %v", elapsed)
			}
		})
	}
}

func TestRetryPolicyDefaults(t *testing.T) {
	p := client.DefaultRetryPolicy()
	if p.RetryCount != 5 || p.RetryTimer != time.Minute || p.SequenceDelay != 24*time.Hour || p.SequenceCount != 1 || p.MaxAttempts() != 5 {
		t.Fatalf("%+v", p)
	}
	c, err := client.New("x", client.WithRetry(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.RetryPolicy(); got.RetryTimer != 5*time.Second || got.RetryCount != 5 {
		t.Fatalf("%+v", got)
	}
}
