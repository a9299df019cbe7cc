package bearer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// maxFired bounds the tokens of fire-and-forget requests kept for their
// answers (the oldest go first).
const maxFired = 65536

// firedSet remembers the tokens of NON requests sent with Endpoint.Fire
// until their keep time, so that an answer to one is matched and dropped
// instead of being rejected with a Reset (which costs one more message on
// SMS). Bounded by maxFired; expired entries are swept on insertion.
type firedSet struct {
	mu    sync.Mutex
	until map[tokenKey]time.Time
	order []tokenKey // insertion order, for the sweep and the bound
}

func (f *firedSet) add(k tokenKey, until, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.until == nil {
		f.until = make(map[tokenKey]time.Time)
	}
	for len(f.order) > 0 {
		old := f.order[0]
		t, ok := f.until[old]
		if ok && t.After(now) && len(f.order) < maxFired {
			break
		}
		delete(f.until, old)
		f.order = f.order[1:]
	}
	f.until[k] = until
	f.order = append(f.order, k)
}

// answered reports whether k is the token of a fired request still kept.
func (f *firedSet) answered(k tokenKey, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.until[k]
	return ok && t.After(now)
}

// Fire sends req as a NON request and returns once the bearer took it
// (for SMS: once it is in the durable outbox); it does not wait for an
// answer. Any answer that comes within keep (0: the bearer's
// NON_LIFETIME) is matched by its token and dropped, counted as
// EventFiredAnswer, rather than rejected with a Reset: on a bearer where
// every message costs money, a wake-up trigger whose answer is not needed
// must cost one message, not three. Give req the No-Response option (RFC
// 7967) to ask the peer not to answer at all.
func (e *Endpoint) Fire(ctx context.Context, req *Request, keep time.Duration) error {
	if e.closing.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if req == nil || req.Peer == nil {
		return errors.New("bearer: Fire: request without peer")
	}
	if req.Code == codes.Empty || req.Code>>5 != 0 {
		return fmt.Errorf("bearer: Fire: %v is not a request method", req.Code)
	}
	if len(req.Token) > message.MaxTokenSize {
		return message.ErrInvalidTokenLen
	}
	token := req.Token
	if len(token) == 0 {
		token = e.newToken()
	}
	mid := e.newMID()
	if req.midSet {
		mid = req.mid
	}
	m := message.Message{Code: req.Code, Token: token, Options: req.Options, Payload: req.Payload,
		Type: message.NonConfirmable, MessageID: int32(mid)}
	data, err := encode(&m)
	if err != nil {
		return fmt.Errorf("bearer: encode request: %w", err)
	}
	if len(data) > e.p.MaxDatagram {
		return fmt.Errorf("%w: request of %d bytes > %d", ErrTooLarge, len(data), e.p.MaxDatagram)
	}
	if keep <= 0 {
		keep = e.p.NonLifetime()
	}
	now := time.Now()
	e.fired.add(tokenKey{AddrKey(req.Peer), string(token)}, now.Add(keep), now)
	if dw, ok := e.b.(DeadlineWriter); ok && !req.Expires.IsZero() {
		if _, err := dw.WriteToBefore(data, req.Peer, req.Expires); err != nil {
			e.m.Count(EventWriteError, 1)
			return fmt.Errorf("bearer: write to %v: %w", req.Peer, err)
		}
		e.m.Count(EventSent, 1)
		return nil
	}
	return e.writeRaw(data, req.Peer)
}

// DeadlineWriter is a Bearer that can be told when a datagram stops being
// worth sending (*sms.Bearer: its outbox gives up at the deadline and
// sends the earliest deadline first).
type DeadlineWriter interface {
	WriteToBefore(p []byte, addr net.Addr, deadline time.Time) (int, error)
}
