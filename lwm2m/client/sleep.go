package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
)

// QueueModeConfig configures a sleeping client (LwM2M Queue Mode, Core
// 1.1 §6.5; binding "UQS"/"SQ" in 1.0): after its awake window without
// traffic the client closes its UDP socket, listens only for SMS, accepts
// a Registration Update Trigger (Execute /1/x/8, raw CoAP or WAP Push)
// only from its server's number, then opens a new UDP socket, sends an
// Update, serves the queued requests and sleeps again. When UDP cannot be
// opened at wake-up (no IP bearer), the Update goes over SMS and the server
// reaches the client there. A client with no UDP (DialUDP nil) registers,
// updates and answers over SMS alone.
type QueueModeConfig struct {
	// Awake is the awake window after the last exchange (default 93 s,
	// MAX_TRANSMIT_WAIT of CoAP over UDP).
	Awake time.Duration
	// DialUDP opens a fresh UDP Endpoint with the client as its handler
	// (bearer.WithHandler(c)); nil for an SMS-only device.
	DialUDP func() (*bearer.Endpoint, error)
	// UDPServer is the server's UDP address.
	UDPServer net.Addr
	// SMS is the client's SMS Endpoint (its handler is the client). It
	// stays open while the client sleeps. Required.
	SMS *bearer.Endpoint
	// SMSServer is the server's SMS address (an sms.Addr): the only
	// number a trigger is accepted from; SMS-only devices register to it.
	SMSServer net.Addr
	// OnState, if set, is called with true when the client wakes and
	// false when it falls asleep (tests, metrics).
	OnState func(awake bool)
	// RegisterOnWake makes the client send a Register instead of an
	// Update when it wakes from sleep, as Anjay does when its socket
	// changed (a new registration, same endpoint name).
	RegisterOnWake bool
}

// errTriggerSource: a trigger from a number other than the server's.
var errTriggerSource = errors.New("lwm2m client: trigger not from the server's number")

// sleeper is the queue-mode state of a Client.
type sleeper struct {
	cfg     QueueModeConfig
	udp     *bearer.Endpoint // nil while asleep
	refused uint64           // triggers refused (wrong source)
	wakes   uint64           // wake-ups by trigger
}

// StartQueueMode registers with the server (over UDP when cfg.DialUDP is
// set, else over SMS) and runs the sleep loop until Close: awake for
// cfg.Awake after the last exchange, then asleep until a trigger from
// the server's number or the lifetime Update is due.
func (c *Client) StartQueueMode(ctx context.Context, cfg QueueModeConfig) error {
	if c.stop == nil {
		return ErrNotCreated
	}
	if cfg.SMS == nil || cfg.SMSServer == nil {
		return errors.New("lwm2m client: queue mode needs an SMS endpoint and the server's number")
	}
	if cfg.DialUDP != nil && cfg.UDPServer == nil {
		return errors.New("lwm2m client: queue mode with UDP needs the server's UDP address")
	}
	if cfg.Awake <= 0 {
		cfg.Awake = bearer.UDPParams("udp").MaxTransmitWait()
	}
	sl := &sleeper{cfg: cfg}
	c.mu.Lock()
	if c.started || c.closed {
		c.mu.Unlock()
		return errors.New("lwm2m client: already started or closed")
	}
	c.sleep = sl
	c.mu.Unlock()
	if err := c.wakeTransport(); err != nil {
		return err
	}
	if err := c.Register(ctx); err != nil {
		c.closeUDP()
		return err
	}
	c.touch()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("lwm2m client: closed")
	}
	c.started = true
	c.loopDone = make(chan struct{})
	go c.sleepLoop()
	return nil
}

// Awake reports whether a queue-mode client is awake (its UDP socket open,
// or for SMS-only within its window); a client not in queue mode is always
// awake.
func (c *Client) Awake() bool {
	c.mu.Lock()
	sl := c.sleep
	c.mu.Unlock()
	if sl == nil {
		return true
	}
	return c.awakeNow.Load()
}

// QueueModeStats returns the triggers accepted and refused (wrong number).
func (c *Client) QueueModeStats() (wakes, refused uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sleep == nil {
		return 0, 0
	}
	return c.sleep.wakes, c.sleep.refused
}

// touch records traffic: the awake window restarts.
func (c *Client) touch() { c.lastSeen.Store(time.Now().UnixNano()) }

// acceptTrigger applies the trigger source rule: over SMS, only from the
// server's number.
func (c *Client) acceptTrigger(r *bearer.Request) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	sl := c.sleep
	if sl == nil || r.Peer == nil || r.Peer.Network() != sl.cfg.SMSServer.Network() {
		return nil
	}
	if r.Peer.String() != sl.cfg.SMSServer.String() {
		sl.refused++
		return fmt.Errorf("%w: %s", errTriggerSource, r.Peer)
	}
	sl.wakes++
	return nil
}

// wakeTransport opens UDP (if any) and points the client at it, or at SMS.
func (c *Client) wakeTransport() error {
	c.mu.Lock()
	sl := c.sleep
	c.mu.Unlock()
	if sl.cfg.DialUDP == nil {
		c.mu.Lock()
		c.ep, c.server = sl.cfg.SMS, sl.cfg.SMSServer
		c.mu.Unlock()
		c.setAwake(true)
		return nil
	}
	ep, err := sl.cfg.DialUDP()
	if err != nil {
		if c.Location() == "" {
			return fmt.Errorf("lwm2m client: open UDP: %w", err)
		}
		// No IP now: update and answer over SMS until UDP works again.
		c.log.Warn("lwm2m client: no UDP, waking over SMS", "ep", c.name, "err", err)
		c.mu.Lock()
		c.ep, c.server = sl.cfg.SMS, sl.cfg.SMSServer
		c.mu.Unlock()
		c.setAwake(true)
		return nil
	}
	c.mu.Lock()
	sl.udp = ep
	c.ep, c.server = ep, sl.cfg.UDPServer
	c.mu.Unlock()
	c.setAwake(true)
	return nil
}

func (c *Client) setAwake(a bool) {
	if c.awakeNow.Swap(a) != a {
		c.mu.Lock()
		f := c.sleep.cfg.OnState
		c.mu.Unlock()
		if f != nil {
			f(a)
		}
	}
}

// closeUDP closes the UDP socket (falling asleep).
func (c *Client) closeUDP() {
	c.mu.Lock()
	ep := c.sleep.udp
	c.sleep.udp = nil
	c.mu.Unlock()
	if ep != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = ep.Shutdown(ctx)
		cancel()
		_ = ep.Close()
	}
	c.setAwake(false)
}

// sleepLoop alternates awake and asleep: asleep when the window passed
// without traffic, awake on a trigger or when the lifetime Update is due.
func (c *Client) sleepLoop() {
	defer close(c.loopDone)
	defer c.closeUDP()
	c.mu.Lock()
	awake := c.sleep.cfg.Awake
	c.mu.Unlock()
	lt := time.Duration(c.lifetime()) * time.Second
	period := max(lt*9/10, 500*time.Millisecond)
	nextUpdate := time.Now().Add(period)
	t := time.NewTimer(awake)
	defer t.Stop()
	fails := 0 // Update failures in a row
	for {
		update, stop := c.sleepUntilDue(t, awake, nextUpdate)
		if stop {
			return
		}
		if !update {
			continue
		}
		woke := false
		if !c.awakeNow.Load() {
			if err := c.wakeTransport(); err != nil {
				c.log.Warn("lwm2m client: wake", "ep", c.name, "err", err)
				continue
			}
			woke = true
		}
		err := c.updateNow(awake, woke)
		if err == nil {
			fails = 0
			nextUpdate = time.Now().Add(period)
			continue
		}
		fails++
		c.log.Warn("lwm2m client: update failed", "ep", c.name, "failures", fails, "err", err)
		wait, giveUp := c.updateRetry(fails, period)
		giveUp = giveUp || c.sessionLost(err) // session.go: a new session and a new registration
		if !giveUp {
			nextUpdate = time.Now().Add(wait)
			continue
		}
		if err := c.registerAgain(); err != nil {
			c.log.Error("lwm2m client: registration failed, the client stops", "ep", c.name, "err", err)
			return
		}
		fails = 0
		c.touch()
		nextUpdate = time.Now().Add(period)
	}
}

// sleepUntilDue falls asleep (closes the UDP socket) when the awake window
// passed without traffic, then waits on t for a trigger, the next Update
// or the end of the awake window. update reports an Update due now; stop
// that the client stops.
func (c *Client) sleepUntilDue(t *time.Timer, awake time.Duration, nextUpdate time.Time) (update, stop bool) {
	now := time.Now()
	wait := time.Until(nextUpdate)
	if c.awakeNow.Load() {
		idle := now.Sub(time.Unix(0, c.lastSeen.Load()))
		if idle >= awake {
			c.closeUDP()
			c.log.Info("lwm2m client asleep", "ep", c.name)
		} else {
			wait = min(wait, awake-idle)
		}
	}
	t.Reset(max(wait, time.Millisecond))
	select {
	case <-c.stop:
		return false, true
	case <-c.updateC:
		update = true
	case <-t.C:
		update = !time.Now().Before(nextUpdate)
	}
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	return update, false
}

// updateNow sends the Update of a sleep cycle, with the transport awake:
// a Register instead when the client woke for it and RegisterOnWake is
// set, and a Register when the server answers 4.04 (it forgot us).
func (c *Client) updateNow(awake time.Duration, woke bool) error {
	c.touch()
	ctx, cancel := context.WithTimeout(context.Background(), max(awake, 5*time.Second))
	c.cancelOnStop(ctx, cancel)
	var err error
	c.mu.Lock()
	register := woke && c.sleep.cfg.RegisterOnWake
	c.mu.Unlock()
	if register {
		err = c.Register(ctx)
	} else {
		err = c.Update(ctx, false)
	}
	var re *RegistrationError
	if errors.As(err, &re) && re.Code == codes.NotFound { // the server forgot us
		err = c.Register(ctx)
	}
	cancel()
	c.touch()
	return err
}

// registerAgain runs the registration procedure with its backoff
// (RetryPolicy) after the Updates gave up; when it gives up, so does the
// client.
func (c *Client) registerAgain() error {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancelOnStop(ctx, cancel)
	err := c.RegisterWithRetry(ctx)
	cancel()
	return err
}

// cancelOnStop calls cancel when the client stops before ctx is done; the
// goroutine it starts ends with ctx.
func (c *Client) cancelOnStop(ctx context.Context, cancel context.CancelFunc) {
	go func() {
		select {
		case <-c.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
}
