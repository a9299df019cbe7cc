package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/m2mbearer/m2mbearer/internal/backoff"
	"github.com/m2mbearer/m2mbearer/internal/cfgcheck"
)

// Sender sends one SMS-SUBMIT TPDU. from names the SIM it must leave from, or
// is "" when any SIM allowed for to may be used; the SIM actually used and the
// TP-MR the modem returned come back. modem.Pool implements it through the SMS
// bearer's adapter.
type Sender interface {
	SendTPDU(ctx context.Context, from, to string, tpdu []byte) (sim string, mr uint8, err error)
}

// SenderFunc adapts a function to Sender.
type SenderFunc func(ctx context.Context, from, to string, tpdu []byte) (string, uint8, error)

// SendTPDU calls f.
func (f SenderFunc) SendTPDU(ctx context.Context, from, to string, tpdu []byte) (string, uint8, error) {
	return f(ctx, from, to, tpdu)
}

// Retryable reports whether a send error is worth another attempt. An error
// that says of itself (Retryable() or Temporary() or Timeout() somewhere in its
// chain) decides; any other error is taken as retryable, because giving up on
// an accepted datagram is worse than trying again until it expires.
func Retryable(err error) bool {
	var r interface{ Retryable() bool }
	if errors.As(err, &r) {
		return r.Retryable()
	}
	var t interface{ Temporary() bool }
	if errors.As(err, &t) {
		return t.Temporary()
	}
	var to interface{ Timeout() bool }
	if errors.As(err, &to) {
		return to.Timeout()
	}
	return true
}

// Outcome is how an entry ended.
type Outcome int

// Outcomes reported to WorkerConfig.OnDone.
const (
	// Sent: every segment was accepted by a modem (no report asked).
	Sent Outcome = iota
	// DeliveredOutcome: every segment was reported delivered.
	DeliveredOutcome
	// Failed: a permanent error (modem or status report) ended it; Err says why.
	Failed
	// Expired: its Expires passed first; Err wraps ErrExpired.
	Expired
)

func (o Outcome) String() string {
	switch o {
	case Sent:
		return "sent"
	case DeliveredOutcome:
		return "delivered"
	case Failed:
		return "failed"
	case Expired:
		return "expired"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Result is reported once per entry when it leaves the outbox.
type Result struct {
	Entry   *Entry
	Outcome Outcome
	Err     error
}

// WorkerConfig configures a Worker. A zero field takes its default; a
// negative one, or a BackoffMax below BackoffMin, makes NewWorker fail with
// an error wrapping ErrInvalidOption.
type WorkerConfig struct {
	// MaxInFlight bounds entries being sent at once (default 16). Entries for
	// the same destination are sent one at a time, in order.
	MaxInFlight int
	// SendTimeout bounds one SendTPDU call (default 60 s; +CMGS can take seconds).
	SendTimeout time.Duration
	// BackoffMin and BackoffMax bound the retry delay, doubled per attempt
	// with ±20% jitter (defaults 2 s and 10 min).
	BackoffMin, BackoffMax time.Duration
	// Poll is the longest the worker sleeps without a wake-up (default 1 s);
	// it also sets how often expiry is checked.
	Poll time.Duration
	// OnDone receives the result of each finished entry. It must not block
	// for long. Optional.
	OnDone func(Result)
	// Logger for retries and failures (default: none, a discard logger).
	Logger *slog.Logger
	// Seed seeds the jitter (0: random).
	Seed uint64
}

// check refuses negative fields and a BackoffMax below BackoffMin, and
// fills in the defaults of zero ones.
func (c *WorkerConfig) check() error {
	var f cfgcheck.Fields
	cfgcheck.Default(&f, "MaxInFlight", &c.MaxInFlight, 16)
	cfgcheck.Default(&f, "SendTimeout", &c.SendTimeout, 60*time.Second)
	cfgcheck.Default(&f, "BackoffMin", &c.BackoffMin, 2*time.Second)
	cfgcheck.Default(&f, "BackoffMax", &c.BackoffMax, max(10*time.Minute, c.BackoffMin))
	if c.BackoffMax < c.BackoffMin {
		f.Badf("BackoffMax %v is below BackoffMin %v", c.BackoffMax, c.BackoffMin)
	}
	cfgcheck.Default(&f, "Poll", &c.Poll, time.Second)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return f.Err(ErrInvalidOption, "WorkerConfig")
}

// Worker drains an Outbox through a Sender. Run owns every goroutine it starts.
//
// The zero Worker is not usable: use NewWorker. Run and HandleReport fail
// with ErrNotCreated.
type Worker struct {
	ob  *Outbox
	snd Sender
	cfg WorkerConfig

	mu       sync.Mutex
	inflight map[uint64]string // id -> destination
	busyTo   map[string]bool
	rng      *rand.Rand
	// early holds status reports that arrived before the acceptance of
	// their segment was recorded (the SMSC can be faster than our fsync).
	early map[earlyKey]earlyReport
	// reportMu orders a report that finds no segment (the lookup, then
	// keepEarly) against the record of an acceptance (Accepted, then the
	// look for a kept report): one of the two always sees the other. Not
	// held while a kept report is applied.
	reportMu sync.Mutex
}

type earlyKey struct {
	from, to string
	mr       uint8
}

type earlyReport struct {
	status ReportStatus
	cause  error
	at     time.Time
}

const (
	maxEarly = 1024
	earlyTTL = 10 * time.Minute
)

// NewWorker returns a worker for ob sending through s, or an error
// wrapping ErrInvalidOption when ob or s is nil or a WorkerConfig field is
// out of its range (named in the error).
func NewWorker(ob *Outbox, s Sender, cfg WorkerConfig) (*Worker, error) {
	if ob == nil || s == nil {
		return nil, fmt.Errorf("%w: NewWorker needs an Outbox and a Sender", ErrInvalidOption)
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	return &Worker{ob: ob, snd: s, cfg: cfg, inflight: map[uint64]string{}, busyTo: map[string]bool{}, early: map[earlyKey]earlyReport{},
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}, nil
}

// Run sends due entries until ctx is done, then waits for the sends in
// flight to stop (they are cancelled with ctx; an interrupted segment stays
// pending and goes out after the next start) and returns ctx's error.
func (w *Worker) Run(ctx context.Context) error {
	if w.inflight == nil {
		return ErrNotCreated
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, w.cfg.MaxInFlight)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		w.expire()
		free := w.cfg.MaxInFlight - w.inflightCount()
		if free > 0 {
			due, err := w.ob.Due(w.ob.now(), free, w.skip)
			if err != nil && !errors.Is(err, ErrClosed) {
				w.cfg.Logger.Error("outbox: reading due entries", "err", err)
			}
			for _, e := range due {
				if !w.claim(e) {
					continue
				}
				sem <- struct{}{}
				wg.Add(1)
				go func(e *Entry) {
					defer wg.Done()
					defer func() { <-sem }()
					defer w.release(e)
					w.send(ctx, e)
				}(e)
			}
		}
		wait := w.cfg.Poll
		if t, ok := w.ob.NextDue(); ok {
			if d := t.Sub(w.ob.now()); d < wait {
				wait = max(d, time.Millisecond)
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w.ob.Wake():
		case <-timer.C:
		}
	}
}

func (w *Worker) inflightCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.inflight)
}

func (w *Worker) skip(id uint64, to string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, busy := w.inflight[id]
	return busy || w.busyTo[to]
}

func (w *Worker) claim(e *Entry) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.inflight[e.ID]; ok || w.busyTo[e.To] {
		return false
	}
	w.inflight[e.ID] = e.To
	w.busyTo[e.To] = true
	return true
}

func (w *Worker) release(e *Entry) {
	w.mu.Lock()
	delete(w.inflight, e.ID)
	delete(w.busyTo, e.To)
	w.mu.Unlock()
	w.ob.signal()
}

func (w *Worker) expire() {
	gone, err := w.ob.Expire(w.ob.now())
	if err != nil && !errors.Is(err, ErrClosed) {
		w.cfg.Logger.Error("outbox: expiring entries", "err", err)
	}
	for _, e := range gone {
		w.cfg.Logger.Warn("outbox: entry expired", "id", e.ID, "to", e.To, "attempts", e.Attempts, "last_error", e.LastError)
		w.done(Result{Entry: e, Outcome: Expired, Err: fmt.Errorf("%w (to %s after %d attempts: %s)", ErrExpired, e.To, e.Attempts, e.LastError)})
	}
}

func (w *Worker) done(r Result) {
	if w.cfg.OnDone != nil {
		w.cfg.OnDone(r)
	}
}

// send sends e's pending segments in order and records each acceptance.
func (w *Worker) send(ctx context.Context, e *Entry) {
	for i := e.NextPending(); i >= 0; i = e.NextPending() {
		if ctx.Err() != nil {
			return
		}
		sctx, cancel := context.WithTimeout(ctx, w.cfg.SendTimeout)
		sim, mr, err := w.snd.SendTPDU(sctx, e.From, e.To, e.Segments[i].TPDU)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return // shutting down: the segment stays pending
			}
			w.failed(e, err)
			return
		}
		w.reportMu.Lock()
		ne, finished, err := w.ob.Accepted(e.ID, i, sim, mr)
		var early earlyReport
		var ek earlyKey
		kept := false
		if err == nil && !finished && ne.WantReport {
			ek, early, kept = w.takeEarly(ne.From, ne.To, mr)
		}
		w.reportMu.Unlock()
		if err != nil {
			if !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrClosed) {
				w.cfg.Logger.Error("outbox: recording accepted segment", "id", e.ID, "seg", i, "err", err)
			}
			return
		}
		if finished {
			w.done(Result{Entry: ne, Outcome: Sent})
			return
		}
		if kept && w.applyEarly(ek, early) {
			if _, err := w.ob.Get(e.ID); errors.Is(err, ErrNotFound) {
				return // the early report finished it
			}
		}
		e = ne
	}
}

func (w *Worker) failed(e *Entry, err error) {
	if !Retryable(err) {
		gone, rerr := w.ob.Remove(e.ID)
		if rerr != nil {
			return
		}
		w.cfg.Logger.Warn("outbox: permanent send failure", "id", e.ID, "to", e.To, "err", err)
		w.done(Result{Entry: gone, Outcome: Failed, Err: err})
		return
	}
	d := w.backoff(e.Attempts)
	w.cfg.Logger.Info("outbox: send failed, will retry", "id", e.ID, "to", e.To, "attempt", e.Attempts+1, "in", d, "err", err)
	if _, rerr := w.ob.Retry(e.ID, w.ob.now().Add(d), err); rerr != nil && !errors.Is(rerr, ErrNotFound) && !errors.Is(rerr, ErrClosed) {
		w.cfg.Logger.Error("outbox: scheduling retry", "id", e.ID, "err", rerr)
	}
}

func (w *Worker) backoff(attempts int) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return backoff.Policy{Min: w.cfg.BackoffMin, Max: w.cfg.BackoffMax, Jitter: 0.2}.Next(attempts, w.rng.Float64)
}

// HandleReport applies a status report (see Outbox.Report) and reports the
// entry's end through OnDone when the report finished it.
func (w *Worker) HandleReport(from string, mr uint8, status ReportStatus, cause error) error {
	return w.HandleReportTo(from, "", mr, status, cause)
}

// HandleReportTo is HandleReport for a report naming its recipient (see
// Outbox.ReportTo).
func (w *Worker) HandleReportTo(from, to string, mr uint8, status ReportStatus, cause error) error {
	if w.inflight == nil {
		return ErrNotCreated
	}
	w.reportMu.Lock()
	e, _, finished, err := w.ob.ReportTo(from, to, mr, status)
	if err == nil && e == nil {
		// No stored segment waits for this reference yet: the report may
		// have overtaken the record of the acceptance. Keep it a while.
		w.keepEarly(earlyKey{from, to, mr}, status, cause)
		w.reportMu.Unlock()
		return nil
	}
	w.reportMu.Unlock()
	if err != nil || !finished {
		return err
	}
	if status == ReportPermanent {
		if cause == nil {
			cause = errors.New("outbox: SMSC reported permanent delivery failure")
		}
		w.done(Result{Entry: e, Outcome: Failed, Err: cause})
		return nil
	}
	w.done(Result{Entry: e, Outcome: DeliveredOutcome})
	return nil
}

func (w *Worker) keepEarly(k earlyKey, status ReportStatus, cause error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.ob.now()
	if len(w.early) >= maxEarly {
		for k, r := range w.early {
			if now.Sub(r.at) > earlyTTL || len(w.early) >= maxEarly {
				delete(w.early, k)
			}
		}
	}
	w.early[k] = earlyReport{status: status, cause: cause, at: now}
}

// takeEarly takes the kept report for (from, to, mr), or for (from, mr)
// from a report that named no recipient, if any.
func (w *Worker) takeEarly(from, to string, mr uint8) (earlyKey, earlyReport, bool) {
	k := earlyKey{from, to, mr}
	w.mu.Lock()
	defer w.mu.Unlock()
	r, ok := w.early[k]
	if !ok {
		k = earlyKey{from, "", mr}
		r, ok = w.early[k]
	}
	delete(w.early, k)
	return k, r, ok
}

// applyEarly applies report r taken for k unless it is older than
// earlyTTL; it reports whether it applied it.
func (w *Worker) applyEarly(k earlyKey, r earlyReport) bool {
	if w.ob.now().Sub(r.at) > earlyTTL {
		return false
	}
	if err := w.HandleReportTo(k.from, k.to, k.mr, r.status, r.cause); err != nil {
		w.cfg.Logger.Error("outbox: applying an early status report", "from", k.from, "mr", k.mr, "err", err)
	}
	return true
}
