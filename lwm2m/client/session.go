package client

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/m2mbearer/m2mbearer/bearer"
)

// Recovering a lost security context (DTLS session).
//
// A server that restarts, or drops a session on expiry, no longer knows
// the device's session: the device's records are dropped silently (RFC
// 6347 §4.1.2.7), so the device learns it only from a close_notify or a
// fatal alert when the server said one (its Endpoint ends), or from its
// Register or Update going unanswered. A client given a dial function
// (WithRedial) then opens a new session — abbreviated when the server
// still holds the session state, full otherwise (secure.Config.Sessions
// decides) — and registers again over it (LwM2M 1.1.1 Transport §6.4.3:
// a new security context means a new registration). Each new session is
// one attempt of the registration procedure (RetryPolicy): a handshake
// that fails, like a Register that does, waits the procedure's backoff,
// so a device whose server is gone costs at most what resources 17–20
// allow, never a handshake storm over SMS.

// sessionState is the client's security-context recovery.
type sessionState struct {
	lost atomic.Bool // renew the session before the next Register

	owned *bearer.Endpoint // guarded by Client.mu: the Endpoint the client opened last (closed on Close)

	renewed, failed atomic.Uint64
}

// WithRedial makes the client recover a lost security context: dial opens
// a new Endpoint to the server (a new DTLS session, with the client as its
// handler: bearer.WithHandler) and is called when the current Endpoint
// ended (the server's close_notify or fatal alert) or a Register or Update
// got no answer, before the next Register attempt of the registration
// procedure. The client closes the Endpoint it replaces (also the one
// given to Start) and the last one it opened on Close. With WithRedial,
// Start and StartRetry accept a nil Endpoint: the first attempt dials. In
// queue mode it applies to an SMS-only client (its QueueModeConfig.SMS
// Endpoint is replaced); a client with DialUDP gets a new UDP Endpoint,
// and session, at every wake-up anyway.
func WithRedial(dial func(ctx context.Context) (*bearer.Endpoint, error)) Option {
	return func(c *config) error {
		if dial == nil {
			return fmt.Errorf("%w: WithRedial(nil)", ErrInvalidOption)
		}
		c.redial = dial
		return nil
	}
}

// SessionStats returns how many times the client opened a new security
// context after losing one (renewed) and how many of those attempts
// failed.
func (c *Client) SessionStats() (renewed, failed uint64) {
	return c.sess.renewed.Load(), c.sess.failed.Load()
}

// ErrSessionLost is wrapped by the error of a registration attempt whose
// new security context could not be opened.
var ErrSessionLost = errors.New("lwm2m client: security context lost")

// noAnswer reports whether err says the server did not answer at all (as
// opposed to answering with an error code): the request timed out, or the
// Endpoint ended under it.
func noAnswer(err error) bool {
	var te *bearer.TimeoutError
	return errors.As(err, &te) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, bearer.ErrClosed)
}

// canRenew reports whether the client renews its security context: with
// WithRedial, unless it is a queue-mode client with UDP (DialUDP opens a
// new UDP Endpoint, and so a new session, at every wake-up).
func (c *Client) canRenew() bool {
	if c.cfg.redial == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sleep == nil || c.sleep.cfg.DialUDP == nil
}

// sessionLost marks the security context as lost after err, when the
// client can renew it and err says nobody answered. It reports whether it
// did.
func (c *Client) sessionLost(err error) bool {
	if err == nil || !noAnswer(err) || !c.canRenew() {
		return false
	}
	if !c.sess.lost.Swap(true) {
		c.log.Warn("lwm2m client: no answer on the secured session, a new one before the next Register", "ep", c.name, "err", err)
	}
	return true
}

// endpointDone returns a channel closed when the client's Endpoint ends,
// nil (never) when the client cannot renew it.
func (c *Client) endpointDone() <-chan struct{} {
	if !c.canRenew() {
		return nil
	}
	c.mu.Lock()
	ep := c.ep
	c.mu.Unlock()
	if ep == nil {
		return nil
	}
	return ep.Done()
}

// ensureSession opens a new security context when the current one is
// lost (or there is none yet) and the client can dial one.
func (c *Client) ensureSession(ctx context.Context) error {
	if !c.canRenew() {
		return nil
	}
	c.mu.Lock()
	ep := c.ep
	c.mu.Unlock()
	if ep != nil && !c.sess.lost.Load() {
		select {
		case <-ep.Done():
		default:
			return nil
		}
	}
	// The old session goes first: over SMS the new one reads the same
	// bearer (sms.Bearer.Lend), and nothing more can come on the old one.
	if ep != nil {
		_ = ep.Close()
	}
	nep, err := c.cfg.redial(ctx)
	if err == nil && nep == nil {
		err = errors.New("dial returned no Endpoint")
	}
	if err != nil {
		c.sess.failed.Add(1)
		return fmt.Errorf("%w: new session: %w", ErrSessionLost, err)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		_ = nep.Close()
		return errors.New("lwm2m client: closed")
	}
	old := c.ep
	c.ep = nep
	if sl := c.sleep; sl != nil && sl.cfg.SMS == old {
		sl.cfg.SMS = nep // an SMS-only queue-mode client's Endpoint
	}
	c.sess.owned = nep
	c.mu.Unlock()
	c.sess.lost.Store(false)
	if ep != nil {
		c.sess.renewed.Add(1)
	}
	c.log.Info("lwm2m client: new security context", "ep", c.name, "renewal", ep != nil)
	return nil
}

// closeSession closes the Endpoint the client opened last.
func (c *Client) closeSession() {
	c.mu.Lock()
	ep := c.sess.owned
	c.sess.owned = nil
	c.mu.Unlock()
	if ep != nil {
		_ = ep.Close()
	}
}
