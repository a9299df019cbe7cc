package sms

import (
	"time"
)

// StateStore keeps the bearer's durable state: received segments not yet
// handed on (the inbox: an SMS is acknowledged to the modem only once
// stored here) and the daily SMS budget counters. BoltState (a file in
// Config.StateDir) is the default; redisstore has one shared by the
// gateway nodes of a cluster, so budgets hold for the whole deployment.
// Implementations are safe for concurrent use; a write that returns nil
// survives a crash.
type StateStore interface {
	// StoreSegment stores a received TPDU from the SIM sim and returns its
	// id (never reused).
	StoreSegment(sim string, tpdu []byte) (uint64, error)
	// DeleteSegments removes segments; unknown ids are ignored.
	DeleteSegments(ids []uint64) error
	// Segments returns the stored segments in arrival order.
	Segments() ([]StoredSegment, error)
	// Spend adds n segments (negative: a refund) to peer's and the
	// deployment's counters of day (YYYY-MM-DD, UTC) if neither budget
	// would be exceeded (a limit of 0 is unlimited), in one atomic step:
	// of several nodes spending at once, none passes a limit. It returns
	// the counts after the spend, or a *BudgetError and changes nothing.
	Spend(day, peer string, n, perDevice, perDeployment int) (devAfter, depAfter int, err error)
	// Used returns the count of day for who (DeploymentBudget for the
	// deployment).
	Used(day, who string) (int, error)
	// Close releases the store.
	Close() error
}

// DeploymentBudget is the name of the deployment's budget counter in
// StateStore.Spend and Used.
const DeploymentBudget = "*"

// StoredSegment is one received TPDU in a StateStore.
type StoredSegment struct {
	ID   uint64
	SIM  string
	TPDU []byte
}

// RateLimiter limits the segments sent per destination: Take removes n
// tokens of key's bucket at now, or returns how long until they are
// there. The default is in memory, per bearer; redisstore shares the
// buckets between the nodes of a cluster. An error (the shared store out
// of reach) refuses the send.
type RateLimiter interface {
	Take(key string, n int, now time.Time) (ok bool, wait time.Duration, err error)
}

// state adapts a StateStore to the bearer's calls.
type state struct{ s StateStore }

type storedSegment struct {
	id   uint64
	sim  string
	tpdu []byte
}

func (s *state) close() error { return s.s.Close() }

func (s *state) storeSegment(sim string, tpdu []byte) (uint64, error) {
	return s.s.StoreSegment(sim, tpdu)
}

func (s *state) deleteSegments(ids []uint64) error {
	if len(ids) == 0 {
		return nil
	}
	return s.s.DeleteSegments(ids)
}

func (s *state) segments() ([]storedSegment, error) {
	segs, err := s.s.Segments()
	out := make([]storedSegment, len(segs))
	for i, x := range segs {
		out[i] = storedSegment{id: x.ID, sim: x.SIM, tpdu: x.TPDU}
	}
	return out, err
}

func (s *state) spend(day, peer string, n, perDevice, perDeployment int) (int, int, error) {
	return s.s.Spend(day, peer, n, perDevice, perDeployment)
}

func (s *state) used(day, who string) int {
	n, _ := s.s.Used(day, who)
	return n
}

// Take implements RateLimiter (never fails).
func (l *limiter) Take(key string, n int, now time.Time) (bool, time.Duration, error) {
	ok, wait := l.take(key, n, now)
	return ok, wait, nil
}

// NewRateLimiter returns the in-memory RateLimiter: a token bucket per key
// of rate tokens a second and burst, tracking at most max keys (0:
// 100,000; idle full buckets are forgotten first).
func NewRateLimiter(rate float64, burst, max int) RateLimiter { return newLimiter(rate, burst, max) }
