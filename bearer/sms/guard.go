package sms

import (
	"hash/fnv"
	"sync"
	"time"

	"github.com/m2mbearer/m2mbearer/internal/cfgcheck"
)

// maxLoopKeys bounds the loop guard's table (identical datagrams tracked
// per peer and direction); past it, expired entries are swept, then the
// table is started afresh.
const maxLoopKeys = 100_000

// loopGuard refuses a loop of identical SMS from or to one peer: the same
// CoAP datagram (message ID and token aside, so that a device retrying a
// refused Register with new IDs is caught) more than max times within
// window. DTLS records are never identical and are not checked (the
// daily budget bounds them).
type loopGuard struct {
	max    int
	window time.Duration
	mu     sync.Mutex
	seen   map[loopKey]*loopEntry
}

type loopKey struct {
	peer     Addr
	received bool
	sum      uint64
}

type loopEntry struct {
	first int64
	n     int
}

func newLoopGuard(max int, window time.Duration) *loopGuard {
	if max <= 0 {
		return nil
	}
	if window <= 0 {
		window = time.Hour
	}
	return &loopGuard{max: max, window: window, seen: map[loopKey]*loopEntry{}}
}

// loopSum hashes a CoAP datagram with its message ID and token left out;
// ok is false for what is not plain CoAP.
func loopSum(p []byte) (uint64, bool) {
	if len(p) < 4 || p[0]>>6 != 1 || isDTLS(p) {
		return 0, false
	}
	tkl := int(p[0] & 0x0f)
	if tkl > 8 || len(p) < 4+tkl {
		return 0, false
	}
	h := fnv.New64a()
	h.Write([]byte{p[0], p[1]}) // version, type, TKL, code
	h.Write(p[4+tkl:])          // options and payload
	return h.Sum64(), true
}

// check counts p for peer and reports how many identical ones were seen
// in the window, and whether this one is over the limit.
func (g *loopGuard) check(peer Addr, received bool, p []byte, now time.Time) (n int, refused bool) {
	if g == nil {
		return 0, false
	}
	sum, ok := loopSum(p)
	if !ok {
		return 0, false
	}
	k := loopKey{peer: peer, received: received, sum: sum}
	t := now.UnixNano()
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.seen[k]
	if e == nil || t-e.first > int64(g.window) {
		if e == nil && len(g.seen) >= maxLoopKeys {
			g.sweepLocked(t)
		}
		e = &loopEntry{first: t}
		g.seen[k] = e
	}
	e.n++
	return e.n, e.n > g.max
}

func (g *loopGuard) sweepLocked(t int64) {
	for k, e := range g.seen {
		if t-e.first > int64(g.window) {
			delete(g.seen, k)
		}
	}
	if len(g.seen) >= maxLoopKeys {
		g.seen = map[loopKey]*loopEntry{}
	}
}

// LoopAlert says the bearer refused an SMS because it repeated the same
// datagram too often (Config.LoopMax within Config.LoopWindow).
type LoopAlert struct {
	Peer     string
	Received bool // from the peer (dropped) or to it (refused)
	Count    int  // identical datagrams in the window, this one included
	Window   time.Duration
}

// BudgetAlert says a daily SMS budget crossed Config.BudgetWarnRatio (or
// was exhausted: Exhausted true).
type BudgetAlert struct {
	Scope     string // "device" or "deployment"
	Peer      string
	Used      int
	Limit     int
	Exhausted bool
}

// budgetWatch turns spends into BudgetAlerts: a budget crossing the
// warning ratio, and the first refusal of a day, once per scope and peer
// and day.
type budgetWatch struct {
	ratio float64
	mu    sync.Mutex
	day   string
	told  map[string]bool // scope|peer|kind told today
}

// once reports whether key was not told yet today, and marks it.
func (w *budgetWatch) once(day, key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.day != day || w.told == nil {
		w.day, w.told = day, map[string]bool{}
	}
	if w.told[key] {
		return false
	}
	w.told[key] = true
	return true
}

// crossed reports whether a count going from before to after crossed the
// warning level of limit.
func (w *budgetWatch) crossed(before, after, limit int) bool {
	if limit <= 0 || w.ratio <= 0 {
		return false
	}
	warn := int(float64(limit)*w.ratio + 0.999)
	return before < warn && after >= warn
}

// ownBudgets checks cfg's daily budgets and gives the bearer its own
// copies (the caller's variables may change afterwards).
func ownBudgets(f *cfgcheck.Fields, cfg *Config) {
	for _, z := range []struct {
		name string
		p    **int
	}{{"DailyBudgetPerDevice", &cfg.DailyBudgetPerDevice}, {"DailyBudget", &cfg.DailyBudget}} {
		if *z.p == nil {
			continue
		}
		if **z.p < 0 {
			f.Badf("%s %d is negative (nil: unlimited, new(0): no SMS)", z.name, **z.p)
			continue
		}
		*z.p = new(**z.p)
	}
}

// limitOf is a budget as the StateStore takes it: 0 is unlimited.
func limitOf(budget *int) int {
	if budget == nil {
		return 0
	}
	return *budget
}

// spend takes n segments for peer from the budgets of day. A budget of
// new(0) refuses every send here: the StateStore reads a limit of 0 as
// unlimited.
func (b *Bearer) spend(day, peer string, n int) (int, int, error) {
	for _, z := range []struct {
		scope  string
		budget *int
		who    string
	}{{"device", b.cfg.DailyBudgetPerDevice, peer}, {"deployment", b.cfg.DailyBudget, deploymentKey}} {
		if z.budget != nil && *z.budget == 0 {
			return 0, 0, &BudgetError{Scope: z.scope, Peer: peer, Limit: 0, Used: b.st.used(day, z.who), Need: n}
		}
	}
	return b.st.spend(day, peer, n, limitOf(b.cfg.DailyBudgetPerDevice), limitOf(b.cfg.DailyBudget))
}
