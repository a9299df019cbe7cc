package statetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
)

// Factory makes the stores under test.
type Factory struct {
	// New returns an empty store; the suite closes it.
	New func(t *testing.T) sms.StateStore
	// Reopen closes s and returns a store over its data after a restart.
	Reopen func(t *testing.T, s sms.StateStore) sms.StateStore
	// Peer returns a second store over s's shared counters (another
	// node); nil when not shared.
	Peer func(t *testing.T, s sms.StateStore) sms.StateStore
}

const day = "2026-05-04"

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func budgetErr(err error, scope string) bool {
	var be *sms.BudgetError
	return errors.As(err, &be) && be.Scope == scope
}

// Run runs every StateStore case against f, each as a subtest named after
// it.
func Run(t *testing.T, f Factory) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.need != nil && !c.need(f) {
				t.Skip("not offered by this store")
			}
			s := f.New(t)
			t.Cleanup(func() { s.Close() })
			c.run(t, f, s)
		})
	}
}

// cases are the StateStore suite, run in this order; a case gets a new
// store (closed after it), and is skipped when need says f cannot run it.
var cases = []struct {
	name string
	need func(Factory) bool
	run  func(t *testing.T, f Factory, s sms.StateStore)
}{
	{name: "inbox keeps segments in arrival order", run: inboxOrder},
	{name: "spend within both budgets", run: spendWithin},
	{name: "over a budget changes nothing", run: spendOver},
	{name: "refund", run: refund},
	{name: "concurrent spends never pass the budget", run: concurrentSpends},
	{name: "durable across a restart", need: func(f Factory) bool { return f.Reopen != nil }, run: survivesRestart},
	{name: "peers share the budget", need: func(f Factory) bool { return f.Peer != nil }, run: peersShare},
}

// inboxOrder: StoreSegment assigns increasing IDs; DeleteSegments skips
// unknown IDs; Segments lists the rest in arrival order.
func inboxOrder(t *testing.T, _ Factory, s sms.StateStore) {
	var ids []uint64
	for i := range 5 {
		id, err := s.StoreSegment(fmt.Sprintf("+4917100000%02d", i%2), []byte{byte(i), 0xff, 0})
		must(t, err)
		if len(ids) > 0 && id <= ids[len(ids)-1] {
			t.Fatalf("id %d after %v", id, ids)
		}
		ids = append(ids, id)
	}
	must(t, s.DeleteSegments([]uint64{ids[1], 9999}))
	segs, err := s.Segments()
	must(t, err)
	if len(segs) != 4 || segs[0].ID != ids[0] || segs[1].ID != ids[2] || segs[1].SIM != "+491710000000" || !slices.Equal(segs[3].TPDU, []byte{4, 0xff, 0}) {
		t.Fatalf("segments %+v", segs)
	}
}

// spendWithin: Spend counts a device and the deployment per day; Used
// reads them back.
func spendWithin(t *testing.T, _ Factory, s sms.StateStore) {
	dev, dep, err := s.Spend(day, "+491720000001", 3, 10, 100)
	if err != nil || dev != 3 || dep != 3 {
		t.Fatalf("spend %d %d %v", dev, dep, err)
	}
	dev, dep, err = s.Spend(day, "+491720000002", 4, 10, 100)
	if err != nil || dev != 4 || dep != 7 {
		t.Fatalf("spend %d %d %v", dev, dep, err)
	}
	if n, err := s.Used(day, "+491720000001"); err != nil || n != 3 {
		t.Fatalf("used %d %v", n, err)
	}
	if n, _ := s.Used(day, sms.DeploymentBudget); n != 7 {
		t.Fatalf("deployment used %d", n)
	}
	if n, _ := s.Used("2026-05-05", sms.DeploymentBudget); n != 0 {
		t.Fatalf("other day used %d", n)
	}
}

// spendOver: a Spend over the device or the deployment budget is refused
// with a *sms.BudgetError of that scope and counts nothing.
func spendOver(t *testing.T, _ Factory, s sms.StateStore) {
	s.Spend(day, "+491720000001", 8, 10, 12)
	if _, _, err := s.Spend(day, "+491720000001", 3, 10, 0); !budgetErr(err, "device") {
		t.Fatalf("device budget: %v", err)
	}
	if _, _, err := s.Spend(day, "+491720000002", 5, 10, 12); !budgetErr(err, "deployment") {
		t.Fatalf("deployment budget: %v", err)
	}
	if n, _ := s.Used(day, sms.DeploymentBudget); n != 8 {
		t.Fatalf("refused spends counted: %d", n)
	}
	if _, _, err := s.Spend(day, "+491720000002", 4, 0, 12); err != nil {
		t.Fatalf("exactly the limit: %v", err)
	}
}

// refund: a negative Spend refunds, never below zero.
func refund(t *testing.T, _ Factory, s sms.StateStore) {
	s.Spend(day, "+491720000001", 5, 0, 0)
	dev, dep, err := s.Spend(day, "+491720000001", -5, 0, 0)
	if err != nil || dev != 0 || dep != 0 {
		t.Fatalf("refund %d %d %v", dev, dep, err)
	}
	if dev, _, _ := s.Spend(day, "+491720000001", -3, 0, 0); dev != 0 {
		t.Fatalf("negative count %d", dev)
	}
}

// concurrentSpends: concurrent Spends accept exactly the budget.
func concurrentSpends(t *testing.T, _ Factory, s sms.StateStore) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for g := range 10 {
		wg.Go(func() {
			for range 10 {
				if _, _, err := s.Spend(day, fmt.Sprintf("+49172000%04d", g), 1, 0, 37); err == nil {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if n, _ := s.Used(day, sms.DeploymentBudget); ok != 37 || n != 37 {
		t.Fatalf("accepted %d, counted %d, want 37", ok, n)
	}
}

// survivesRestart: segments, counters and the ID sequence survive Reopen.
func survivesRestart(t *testing.T, f Factory, s sms.StateStore) {
	id, err := s.StoreSegment("+491710000001", []byte("tpdu"))
	must(t, err)
	s.Spend(day, "+491720000001", 6, 0, 0)
	s = f.Reopen(t, s)
	t.Cleanup(func() { s.Close() })
	segs, err := s.Segments()
	must(t, err)
	if len(segs) != 1 || segs[0].ID != id || string(segs[0].TPDU) != "tpdu" {
		t.Fatalf("segments after restart %+v", segs)
	}
	if n, _ := s.Used(day, "+491720000001"); n != 6 {
		t.Fatalf("used after restart %d", n)
	}
	if id2, _ := s.StoreSegment("+491710000001", []byte("x")); id2 <= id {
		t.Fatalf("id %d after %d", id2, id)
	}
}

// peersShare: a peer store over the same counters sees and enforces the
// budget spent through the first.
func peersShare(t *testing.T, f Factory, s sms.StateStore) {
	p := f.Peer(t, s)
	t.Cleanup(func() { p.Close() })
	s.Spend(day, "+491720000001", 6, 10, 0)
	if _, _, err := p.Spend(day, "+491720000001", 5, 10, 0); !budgetErr(err, "device") {
		t.Fatalf("peer passed the device budget: %v", err)
	}
	if n, _ := p.Used(day, sms.DeploymentBudget); n != 6 {
		t.Fatalf("peer sees %d", n)
	}
}

// LimiterFactory makes rate limiters with rate (tokens a second) and
// burst; Peer, when not nil, one sharing the first's buckets.
type LimiterFactory struct {
	New  func(t *testing.T, rate float64, burst int) sms.RateLimiter
	Peer func(t *testing.T, l sms.RateLimiter, rate float64, burst int) sms.RateLimiter
}

// RunLimiter runs the RateLimiter cases against f.
func RunLimiter(t *testing.T, f LimiterFactory) {
	t0 := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	t.Run("burst then rate", func(t *testing.T) {
		l := f.New(t, 2, 4)
		for i := range 4 {
			if ok, _, err := l.Take("+491720000001", 1, t0); !ok || err != nil {
				t.Fatalf("take %d: %v %v", i, ok, err)
			}
		}
		ok, wait, err := l.Take("+491720000001", 1, t0)
		if ok || err != nil || wait < 400*time.Millisecond || wait > 600*time.Millisecond {
			t.Fatalf("5th take: %v wait %v %v", ok, wait, err)
		}
		if ok, _, _ := l.Take("+491720000002", 2, t0); !ok {
			t.Fatal("another destination's bucket is full")
		}
		if ok, _, _ := l.Take("+491720000001", 1, t0.Add(500*time.Millisecond)); !ok {
			t.Fatal("refilled token refused")
		}
	})
	t.Run("a datagram larger than the burst goes when the bucket is full", func(t *testing.T) {
		l := f.New(t, 1, 3)
		if ok, _, _ := l.Take("k", 8, t0); !ok {
			t.Fatal("large datagram refused with a full bucket")
		}
		if ok, _, _ := l.Take("k", 1, t0.Add(time.Second)); ok {
			t.Fatal("bucket not in debt after the large datagram")
		}
	})
	t.Run("peers share buckets", func(t *testing.T) {
		if f.Peer == nil {
			t.Skip("not shared")
		}
		a := f.New(t, 1, 2)
		b := f.Peer(t, a, 1, 2)
		a.Take("k", 2, t0)
		if ok, _, _ := b.Take("k", 1, t0); ok {
			t.Fatal("the peer's bucket was full")
		}
	})
}
