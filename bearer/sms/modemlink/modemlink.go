package modemlink

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/pdu"
	"github.com/m2mbearer/m2mbearer/modem"
)

// ErrNotCreated is returned by a zero Link (not made by New).
var ErrNotCreated = errors.New("modemlink: zero Link, not made by New")

// ErrInvalidOption is wrapped by New's error for an option given a value
// out of its range (WithBuffer(0)) or a nil pool.
var ErrInvalidOption = errors.New("modemlink: invalid option")

// Link is an sms.Transport over a modem.Pool. Close stops its forwarding
// goroutine; the pool stays open (its owner closes it).
//
// The zero Link is not usable: use New. It behaves as a closed Link whose
// SendTPDU fails with ErrNotCreated.
type Link struct {
	pool *modem.Pool
	in   chan sms.Inbound
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
	quar modem.Quarantine
	log  *slog.Logger
}

// Option configures a Link. An option given a value out of its range
// makes New fail with an error wrapping ErrInvalidOption.
type Option func(*linkConfig) error

type linkConfig struct {
	buffer int
	quar   modem.Quarantine
	log    *slog.Logger
}

// WithBuffer bounds the inbound channel, at least 1 (default 64); a full
// channel holds the pool back, and the modems keep what they have not
// been able to hand over.
func WithBuffer(n int) Option {
	return func(c *linkConfig) error {
		if n < 1 {
			return fmt.Errorf("%w: WithBuffer(%d): at least 1", ErrInvalidOption, n)
		}
		c.buffer = n
		return nil
	}
}

// WithQuarantine makes the link put every TPDU the SMS bearer cannot
// decode (the bearer's own decoder, pdu.Decode) in q before it is
// acknowledged to the modem: otherwise the bearer acknowledges and drops
// it, and the message is gone. A TPDU that cannot be quarantined is given
// back to the modem (Reject), which keeps it.
func WithQuarantine(q modem.Quarantine) Option {
	return func(c *linkConfig) error { c.quar = q; return nil }
}

// WithLogger sets the logger (default: none, a discard logger).
func WithLogger(lg *slog.Logger) Option {
	return func(c *linkConfig) error { c.log = lg; return nil }
}

// New starts forwarding what the pool p receives (see WithBuffer).
func New(p *modem.Pool, opts ...Option) (*Link, error) {
	if p == nil {
		return nil, fmt.Errorf("modemlink: New: %w: nil pool", ErrInvalidOption)
	}
	c := linkConfig{buffer: 64}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, fmt.Errorf("modemlink: New: %w", err)
		}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	l := &Link{pool: p, in: make(chan sms.Inbound, c.buffer), stop: make(chan struct{}), quar: c.quar, log: c.log}
	l.wg.Add(1)
	go l.forward()
	return l, nil
}

func (l *Link) forward() {
	defer l.wg.Done()
	defer close(l.in)
	rx := l.pool.Received()
	for {
		select {
		case <-l.stop:
			return
		case r, ok := <-rx:
			if !ok {
				return
			}
			if l.quarantined(r) {
				continue
			}
			msg := sms.Inbound{SIM: r.Modem, TPDU: r.TPDU, Ack: r.Ack, Reject: r.Reject}
			select {
			case l.in <- msg:
			case <-l.stop:
				// Not handed on: leave it with the modem for the next sweep.
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				r.Reject(ctx)
				cancel()
				return
			}
		}
	}
}

// quarantined handles a TPDU the bearer cannot decode: it goes to the
// quarantine and is acknowledged to the modem (true), or, when it cannot
// be quarantined, is given back to the modem (true). It returns false for
// a TPDU the bearer can decode, and when no quarantine is configured.
func (l *Link) quarantined(r *modem.Received) bool {
	if l.quar == nil {
		return false
	}
	_, derr := pdu.Decode(r.TPDU)
	if derr == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	line := strings.ToUpper(hex.EncodeToString(r.TPDU))
	q := modem.Quarantined{Time: r.Time, Modem: r.Modem, Storage: r.Storage, Index: r.Index,
		Lines: []string{line}, Reason: "the SMS bearer cannot decode the TPDU: " + derr.Error()}
	if _, err := l.quar.Put(ctx, q); err != nil {
		l.log.Warn("modemlink: undecodable TPDU not quarantined; left with the modem", "sim", r.Modem, "err", err)
		_ = r.Reject(ctx)
		return true
	}
	if err := r.Ack(ctx); err != nil {
		l.log.Warn("modemlink: acknowledging a quarantined TPDU failed; it will come again", "sim", r.Modem, "err", err)
	}
	return true
}

// SendTPDU implements sms.Transport. The pool picks among all its SIMs when
// from is empty.
func (l *Link) SendTPDU(ctx context.Context, from, to string, tpdu []byte) (string, uint8, error) {
	if l.pool == nil {
		return "", 0, ErrNotCreated
	}
	rc, err := l.pool.SendTPDU(ctx, from, tpdu)
	if err != nil {
		return "", 0, fmt.Errorf("modemlink: send to %s: %w", to, err)
	}
	return rc.From, uint8(rc.MR), nil
}

// Inbound implements sms.Transport. The channel is closed once the Link
// has stopped (at once for a zero Link).
func (l *Link) Inbound() <-chan sms.Inbound {
	if l.in == nil {
		return closedInbound
	}
	return l.in
}

var closedInbound = func() chan sms.Inbound { c := make(chan sms.Inbound); close(c); return c }()

// Close stops forwarding. It does not close the pool.
func (l *Link) Close() error {
	if l.stop == nil { // a zero Link: nothing runs
		return nil
	}
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
	return nil
}

var _ sms.Transport = (*Link)(nil)
