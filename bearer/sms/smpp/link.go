package smpp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/internal/backoff"
	"github.com/m2mbearer/m2mbearer/internal/smppwire"
)

// Link is an SMPP ESME connection to one SMSC account; it implements
// sms.Transport. Dial starts the goroutines that bind, keep alive and
// re-bind; Close unbinds and stops them. The zero Link was never dialled:
// it behaves as a closed one (SendTPDU fails with ErrClosed, Inbound is
// closed).
type Link struct {
	cfg     Config
	log     *slog.Logger
	state   *State
	owns    bool // state opened by Dial (no Config.State), closed by Close
	sources map[string]Address
	defSrc  string
	in      chan sms.Inbound

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu       sync.Mutex
	tx       *session      // bound session that submits, or nil
	txReady  chan struct{} // closed when tx is set
	rxBound  bool          // a session that receives is bound
	thrUntil time.Time
	thrN     int

	submits *rate.Limiter // submit_sm rate (Config.Rate, Burst)
	held    atomic.Int32  // receipts held now (holdReceipt)
	inRef   atomic.Uint32
	c       counters
	lastErr atomic.Pointer[string] // the last failed bind's error; nil after a bind
}

// Dial opens the link's state, starts binding in the background and
// returns at once; SendTPDU waits for the bind (within its context).
// Errors: a bad Config, or the state file cannot be opened.
func Dial(cfg Config) (*Link, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	l := &Link{cfg: cfg, log: cfg.Logger.With("smpp", cfg.Name), sources: map[string]Address{},
		in: make(chan sms.Inbound, cfg.InboundBuffer), txReady: make(chan struct{}), state: cfg.State}
	for i, s := range cfg.Sources {
		a, err := SourceAddress(s)
		if err != nil {
			return nil, fmt.Errorf("%w: Config.Sources[%d]: %w", ErrInvalidOption, i, err)
		}
		k := normalise(s)
		l.sources[k] = a
		if i == 0 {
			l.defSrc = k
		}
	}
	l.submits = rate.NewLimiter(rate.Inf, cfg.Burst)
	if cfg.Rate > 0 {
		l.submits.SetLimit(rate.Limit(cfg.Rate))
	}
	if l.state == nil {
		if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
			return nil, fmt.Errorf("smpp: state dir: %w", err)
		}
		var err error
		if l.state, err = OpenState(StateFile(cfg.StateDir, cfg.Name)); err != nil {
			return nil, err
		}
		l.owns = true
	} else if l.state.st == nil {
		return nil, errors.New("smpp: Config.State is not open (OpenState)")
	}
	l.prune()
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.wg.Add(1)
	go l.housekeep()
	switch cfg.Bind {
	case TransmitterReceiver:
		l.wg.Add(2)
		go l.keepBound(smppwire.BindTransmitter)
		go l.keepBound(smppwire.BindReceiver)
	default:
		l.wg.Add(1)
		go l.keepBound(smppwire.BindTransceiver)
	}
	return l, nil
}

// Name returns the link's name.
func (l *Link) Name() string { return l.cfg.Name }

// Sources returns the numbers the link may send from, normalised.
func (l *Link) Sources() []string {
	out := make([]string, 0, len(l.sources))
	for _, s := range l.cfg.Sources {
		out = append(out, normalise(s))
	}
	return out
}

// Ready reports whether a session that submits is bound now.
func (l *Link) Ready() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tx != nil
}

// Inbound implements sms.Transport. The channel closes after Close.
func (l *Link) Inbound() <-chan sms.Inbound {
	if l.in == nil { // the zero Link receives nothing
		return closedInbound
	}
	return l.in
}

var closedInbound = func() chan sms.Inbound { c := make(chan sms.Inbound); close(c); return c }()

// Close unbinds, stops the link's goroutines and closes its state. It does
// not wait for the bearer to acknowledge what it holds: deliver_sm not yet
// answered are delivered again by the SMSC after the next bind.
func (l *Link) Close() error {
	if l.ctx == nil {
		return nil // the zero Link: never dialled
	}
	var err error
	l.once.Do(func() {
		l.cancel()
		l.wg.Wait()
		close(l.in)
		if l.owns {
			err = l.state.Close()
		}
	})
	return err
}

// SendTPDU implements sms.Transport: it submits one SMS-SUBMIT TPDU from
// the source from (or the first configured) to to, and returns the source
// and the TP-MR the link allocated. It waits for a bind, the rate limit,
// a window slot and any throttling pause, within ctx. Errors:
// ErrUnknownSource and ErrBadTPDU (permanent), ErrNotBound and
// ErrResponseTimeout (retryable), *StatusError (by its status), ErrClosed.
func (l *Link) SendTPDU(ctx context.Context, from, to string, tpdu []byte) (string, uint8, error) {
	if l.ctx == nil || l.ctx.Err() != nil {
		return "", 0, ErrClosed
	}
	src := l.defSrc
	if from != "" {
		src = normalise(from)
	}
	srcAddr, ok := l.sources[src]
	if !ok {
		return "", 0, fmt.Errorf("%w: %s", ErrUnknownSource, from)
	}
	to = normalise(to)
	p, err := parseSubmit(tpdu)
	if err != nil {
		l.c.refused.Add(1)
		return "", 0, err
	}
	if l.cfg.Concat == ConcatPayload && p.concat.Total > 1 {
		return l.sendPayloadSegment(ctx, src, to, p, tpdu)
	}
	sm, err := l.segmentSM(srcAddr, to, p)
	if err != nil {
		l.c.refused.Add(1)
		return "", 0, err
	}
	// In flight until the correlation is stored (the deferred calls run in
	// reverse: stored, then the end of the flight).
	defer l.state.flight.end(l.state.flight.start())
	id, err := l.submit(ctx, sm)
	if err != nil {
		return "", 0, err
	}
	defer l.stored(id)
	mrs, err := l.state.st.accepted(id, leg{src, to}, 1, p.sub.StatusReport, l.cfg.Now())
	if err != nil {
		return "", 0, err
	}
	return src, mrs[0], nil
}

// sendPayloadSegment keeps a segment of a set durably and, once the set is
// complete, submits it whole as one message_payload from source src (a key
// of l.sources, checked by the caller).
func (l *Link) sendPayloadSegment(ctx context.Context, src, to string, p *submitParts, tpdu []byte) (string, uint8, error) {
	srcAddr := l.sources[src]
	c := p.concat
	if c.Seq < 1 || c.Seq > c.Total {
		return "", 0, fmt.Errorf("%w: segment %d of %d", ErrBadTPDU, c.Seq, c.Total)
	}
	set := segSet{leg{src, to}, c.Ref, c.Total}
	segs, mrs, evicted, err := l.state.st.addSegment(set, c.Seq, tpdu, l.cfg.Now(), l.cfg.MaxPayloadSets)
	if err != nil {
		return "", 0, err
	}
	if evicted != "" {
		l.c.setsEvicted.Add(1)
		l.log.Warn("smpp: incomplete payload set removed: too many sets held", "set", evicted, "limit", l.cfg.MaxPayloadSets)
	}
	parts := make([]*submitParts, 0, len(segs))
	for _, s := range segs {
		if s == nil {
			// Not complete yet: the segment is kept, and counts as
			// accepted; the whole goes with the last one.
			return src, mrs[c.Seq-1], nil
		}
		sp, err := parseSubmit(s)
		if err != nil {
			return "", 0, err
		}
		parts = append(parts, sp)
	}
	sm, err := l.payloadSM(srcAddr, to, parts)
	if err != nil {
		return "", 0, err
	}
	defer l.state.flight.end(l.state.flight.start())
	id, err := l.submit(ctx, sm)
	if err != nil {
		return "", 0, err
	}
	defer l.stored(id)
	if err := l.state.st.setSubmitted(set, id, mrs, p.sub.StatusReport, l.cfg.Now()); err != nil {
		return "", 0, err
	}
	return src, mrs[c.Seq-1], nil
}

// stored releases receipts for id that arrived while its correlation was
// being written.
func (l *Link) stored(id string) {
	if ch, ok := l.state.storing.LoadAndDelete(id); ok {
		close(ch.(chan struct{}))
	}
}

// submit sends sm and returns the SMSC's message_id, submitting the same
// PDU again after each throttling answer.
func (l *Link) submit(ctx context.Context, sm *smppwire.SM) (string, error) {
	body, err := sm.Marshal()
	if err != nil {
		l.c.refused.Add(1)
		return "", fmt.Errorf("%w: %w", ErrBadTPDU, err)
	}
	for {
		if err := l.waitThrottle(ctx); err != nil {
			return "", err
		}
		// The bind first, then the rate slot: slots taken while the link
		// is down would all come due at once when it is back.
		s, err := l.session(ctx)
		if err != nil {
			return "", err
		}
		if d := l.submitDelay(time.Now()); d > 0 {
			if err := backoff.Wait(ctx, d); err != nil {
				return "", fmt.Errorf("%w: %w", ErrNotBound, err)
			}
		}
		resp, err := s.requestWindowed(ctx, smppwire.SubmitSM, body)
		if err != nil {
			l.c.submitErrors.Add(1)
			return "", err
		}
		if resp.Status == smppwire.ROK {
			r, err := smppwire.ParseSubmitResp(resp.Body)
			if err != nil {
				// Accepted, but the id is unreadable: no receipt can be
				// correlated; the segment is not sent again.
				l.log.Warn("smpp: submit_sm_resp with an unreadable message_id", "err", err)
				r = &smppwire.SubmitResp{}
			}
			l.unthrottle()
			l.c.submitted.Add(1)
			return r.MessageID, nil
		}
		if resp.Status.Throttling() {
			l.c.throttled.Add(1)
			l.throttle()
			continue
		}
		l.c.submitErrors.Add(1)
		return "", &StatusError{Command: smppwire.SubmitSM, Status: resp.Status}
	}
}

func (l *Link) throttle() {
	l.mu.Lock()
	d := backoff.Policy{Min: l.cfg.ThrottleMin, Max: l.cfg.ThrottleMax}.Delay(l.thrN)
	l.thrN++
	l.thrUntil = time.Now().Add(d)
	l.mu.Unlock()
	l.log.Info("smpp: SMSC throttles, pausing submits", "pause", d)
}

func (l *Link) unthrottle() {
	l.mu.Lock()
	l.thrN = 0
	l.mu.Unlock()
}

// submitDelay takes a submit_sm slot of the configured rate at now and
// returns how long to wait before using it.
func (l *Link) submitDelay(now time.Time) time.Duration {
	if l.submits == nil {
		return 0
	}
	return l.submits.ReserveN(now, 1).DelayFrom(now)
}

func (l *Link) waitThrottle(ctx context.Context) error {
	l.mu.Lock()
	d := time.Until(l.thrUntil)
	l.mu.Unlock()
	if d <= 0 {
		return nil
	}
	if err := backoff.Wait(ctx, d); err != nil {
		return fmt.Errorf("%w: throttled by the SMSC: %w", ErrNotBound, err)
	}
	return nil
}

// session waits for a bound session that submits.
func (l *Link) session(ctx context.Context) (*session, error) {
	for {
		l.mu.Lock()
		s, ready := l.tx, l.txReady
		l.mu.Unlock()
		if s != nil {
			return s, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrNotBound, ctx.Err())
		case <-l.ctx.Done():
			return nil, ErrClosed
		}
	}
}

// setBound publishes (s non-nil) or withdraws the session bound with cmd.
func (l *Link) setBound(cmd smppwire.CommandID, s *session) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cmd != smppwire.BindTransmitter {
		l.rxBound = s != nil
	}
	if cmd == smppwire.BindReceiver {
		return
	}
	if s != nil {
		l.tx = s
		close(l.txReady)
		return
	}
	l.tx = nil
	l.txReady = make(chan struct{})
}

// keepBound binds with cmd, serves the session until it ends, and binds
// again with backoff, until Close.
func (l *Link) keepBound(cmd smppwire.CommandID) {
	defer l.wg.Done()
	fails := 0
	for l.ctx.Err() == nil {
		s, err := l.bind(cmd)
		if err != nil {
			msg := err.Error()
			l.lastErr.Store(&msg)
			l.c.bindFailures.Add(1)
			d := backoff.Policy{Min: l.cfg.ReconnectMin, Max: l.cfg.ReconnectMax}.Delay(fails)
			fails++
			l.log.Warn("smpp: bind failed", "bind", cmd.String(), "err", err, "retry_in", d)
			if backoff.Wait(l.ctx, d) != nil {
				return
			}
			continue
		}
		fails = 0
		l.lastErr.Store(nil)
		l.c.binds.Add(1)
		l.log.Info("smpp: bound", "bind", cmd.String(), "addr", l.cfg.Addr)
		l.setBound(cmd, s)
		s.serve()
		l.setBound(cmd, nil)
		if l.ctx.Err() != nil {
			return
		}
		l.c.linkDrops.Add(1)
		l.log.Warn("smpp: session ended, binding again", "bind", cmd.String(), "err", s.err())
		if backoff.Wait(l.ctx, l.cfg.ReconnectMin) != nil {
			return
		}
	}
}

var errBindRefused = errors.New("smpp: bind refused")

// refuseOutbind logs and counts an outbind from the SMSC: SMPP 3.4 §4.1.7
// lets an SMSC open a session to the ESME and ask it to bind as a
// receiver; this link binds itself and listens on no port (docs/smpp.md).
func (l *Link) refuseOutbind(p smppwire.PDU) {
	l.c.outbindRefused.Add(1)
	sysID := ""
	if o, err := smppwire.ParseOutbind(p.Body); err == nil {
		sysID = o.SystemID
	}
	l.log.Warn("smpp: outbind from the SMSC refused: SMSC-initiated sessions are not supported; ask the operator for ESME-initiated binds (transceiver, or transmitter and receiver)",
		"smsc_system_id", sysID, "seq", p.Sequence)
}

// prune removes correlations whose receipt never came and payload sets
// whose other segments never came, counting and logging them.
func (l *Link) prune() {
	now := l.cfg.Now()
	corrs, sets, err := l.state.st.prune(now.Add(-l.cfg.ReceiptMaxAge), now.Add(-l.cfg.PayloadSetMaxAge), now)
	if err != nil {
		l.log.Error("smpp: pruning the state file", "err", err)
		return
	}
	if corrs > 0 {
		l.c.correlationsExpired.Add(uint64(corrs))
		l.log.Warn("smpp: correlations past their age removed (their receipts never came)", "count", corrs, "max_age", l.cfg.ReceiptMaxAge)
	}
	for _, k := range sets {
		l.c.setsExpired.Add(1)
		l.log.Warn("smpp: incomplete payload set expired (its other segments never came)", "set", k, "max_age", l.cfg.PayloadSetMaxAge)
	}
}

// housekeep prunes every PruneInterval until Close.
func (l *Link) housekeep() {
	defer l.wg.Done()
	t := time.NewTicker(l.cfg.PruneInterval)
	defer t.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-t.C:
			l.prune()
		}
	}
}
