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

// Observer is the server side of an RFC 7641 observation: a remote client
// that registered interest in a resource. Resource code sends
// notifications with Notify until Done is closed. The zero Observer has
// ended: Done is closed and Notify fails with ErrObservationEnded.
type Observer struct {
	e     *Endpoint
	peer  net.Addr
	pkey  string
	token message.Token
	req   *Request

	mu       sync.Mutex // serialises Notify
	sinceCon int
	lastCon  time.Time
	lastMID  midKey

	done chan struct{}
	once sync.Once
	err  error
}

// Peer returns the observer's address.
func (o *Observer) Peer() net.Addr { return o.peer }

// Token returns the token of the observation.
func (o *Observer) Token() message.Token { return o.token }

// Path returns the observed resource's path.
func (o *Observer) Path() string {
	if o.req == nil { // a zero Observer
		return ""
	}
	return o.req.Path()
}

// Request returns the registration request.
func (o *Observer) Request() *Request { return o.req }

// Done is closed when the observation ends: the client deregistered or
// answered a notification with RST, a confirmable notification timed out,
// the server cancelled it, or the Endpoint closed.
func (o *Observer) Done() <-chan struct{} {
	if o.done == nil { // a zero Observer never ran
		return closedChan
	}
	return o.done
}

// Err returns why the observation ended (nil while it runs).
func (o *Observer) Err() error {
	select {
	case <-o.done:
		return o.err
	default:
		return nil
	}
}

// Cancel ends the observation on the server side without telling the
// client (send a final non-2.xx notification first to tell it).
func (o *Observer) Cancel() {
	if o.e == nil {
		return
	}
	o.e.obs.removeByToken(o.e, tokenKey{o.pkey, string(o.token)}, ErrObservationEnded)
}

func (o *Observer) end(err error) {
	o.once.Do(func() {
		o.err = err
		close(o.done)
	})
}

func (o *Observer) nextSeq() uint32 { return o.e.seq.Add(1) & 0xFFFFFF }

// Notify sends a notification with code, payload and options. It is
// non-confirmable, except every Limits.ObserveConEvery-th one, one after
// Limits.ObserveConInterval without a confirmable one, and non-2.xx ones
// (which end the observation); a confirmable notification is
// retransmitted and Notify waits for its ACK: an RST or a timeout ends the
// observation (RFC 7641 §4.5). Large payloads go out as the first Block2
// block; the client fetches the rest. Notify calls on one Observer are
// serialised.
func (o *Observer) Notify(ctx context.Context, code codes.Code, payload []byte, opts ...message.Option) error {
	if o.e == nil {
		return fmt.Errorf("%w: not an observation of an Endpoint", ErrObservationEnded)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	select {
	case <-o.done:
		return fmt.Errorf("%w: %v", ErrObservationEnded, o.err)
	default:
	}
	e := o.e
	var mo message.Options
	for _, op := range opts {
		mo = mo.Add(op)
	}
	final := code>>5 != 2
	if !final {
		mo = mo.Set(UintOption(message.Observe, o.nextSeq()))
	}
	// A notification starts a new Block2 transfer: the request as seen
	// without a Block2 option.
	mo, payload = e.blockResponse(o.pkey, &Request{Code: o.req.Code, Options: cloneOptions(o.req.Options).Remove(message.Block2)}, mo, payload)
	m := message.Message{Code: code, Token: o.token, Options: mo, Payload: payload}
	con := final || o.sinceCon+1 >= e.lim.ObserveConEvery || time.Since(o.lastCon) >= e.lim.ObserveConInterval
	e.m.Count(EventNotificationSent, 1)
	if !con {
		o.sinceCon++
		m.Type, m.MessageID = message.NonConfirmable, int32(e.newMID())
		data, err := encode(&m)
		if err != nil {
			return err
		}
		e.obs.setMID(o, midKey{o.pkey, uint16(m.MessageID)})
		return e.writeRaw(data, o.peer)
	}
	_, err := e.roundTrip(ctx, o.peer, &m, rtOpts{con: true, ackOnly: true})
	o.sinceCon, o.lastCon = 0, time.Now()
	switch {
	case err == nil && final:
		e.obs.removeByToken(e, tokenKey{o.pkey, string(o.token)}, ErrObservationEnded)
	case errors.Is(err, ErrReset), errors.Is(err, ErrTimeout):
		e.obs.removeByToken(e, tokenKey{o.pkey, string(o.token)}, err)
	}
	return err
}

// observerSet holds the server-side observations, bounded.
type observerSet struct {
	mu      sync.Mutex
	byToken map[tokenKey]*Observer
	byMID   map[midKey]*Observer // last NON notification of each observer
}

func (s *observerSet) init() {
	s.byToken = make(map[tokenKey]*Observer)
	s.byMID = make(map[midKey]*Observer)
}

func (s *observerSet) add(e *Endpoint, req *Request) (*Observer, error) {
	pkey := AddrKey(req.Peer)
	tk := tokenKey{pkey, string(req.Token)}
	s.mu.Lock()
	old, replacing := s.byToken[tk]
	if !replacing && len(s.byToken) >= e.lim.MaxObservations {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: %d observations", ErrLimit, e.lim.MaxObservations)
	}
	o := &Observer{
		e: e, peer: req.Peer, pkey: pkey, token: req.Token, req: req,
		lastCon: time.Now(), done: make(chan struct{}),
	}
	s.byToken[tk] = o
	n := len(s.byToken)
	if replacing {
		delete(s.byMID, old.lastMID)
	}
	s.mu.Unlock()
	if replacing {
		// RFC 7641 §4.1: a registration with the same token replaces it.
		old.end(ErrObservationEnded)
	} else {
		e.m.Count(EventObserveRegistered, 1)
	}
	e.m.Set(GaugeObservations, n)
	return o, nil
}

func (s *observerSet) setMID(o *Observer, mk midKey) {
	s.mu.Lock()
	if cur, ok := s.byToken[tokenKey{o.pkey, string(o.token)}]; ok && cur == o {
		delete(s.byMID, o.lastMID)
		o.lastMID = mk
		s.byMID[mk] = o
	}
	s.mu.Unlock()
}

// removeByToken ends the observation (peer, token) if any.
func (s *observerSet) removeByToken(e *Endpoint, tk tokenKey, err error) {
	s.mu.Lock()
	o, ok := s.byToken[tk]
	if ok {
		delete(s.byToken, tk)
		delete(s.byMID, o.lastMID)
	}
	n := len(s.byToken)
	s.mu.Unlock()
	if ok {
		if err == nil {
			err = ErrObservationEnded
		}
		o.end(err)
		e.m.Count(EventObserveRemoved, 1)
		e.m.Set(GaugeObservations, n)
	}
}

// resetByMID handles an RST to a NON notification.
func (s *observerSet) resetByMID(e *Endpoint, mk midKey) bool {
	s.mu.Lock()
	o, ok := s.byMID[mk]
	s.mu.Unlock()
	if ok {
		s.removeByToken(e, tokenKey{o.pkey, string(o.token)}, ErrReset)
	}
	return ok
}

func (s *observerSet) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byToken)
}

func (s *observerSet) closeAll(e *Endpoint) {
	s.mu.Lock()
	all := s.byToken
	s.byToken = make(map[tokenKey]*Observer)
	s.byMID = make(map[midKey]*Observer)
	s.mu.Unlock()
	for _, o := range all {
		o.end(ErrClosed)
	}
	e.m.Set(GaugeObservations, 0)
}

// Observations returns the number of server-side observations.
func (e *Endpoint) Observations() int { return e.obs.count() }

// Observation is the client side of an RFC 7641 observation, made by
// Endpoint.Observe. Notifications are delivered in order to the callback,
// on one goroutine per observation. The zero Observation has ended: Done
// is closed and Cancel fails with ErrObservationEnded.
type Observation struct {
	e     *Endpoint
	peer  net.Addr
	pkey  string
	token message.Token
	req   *Request
	fn    func(*Response)

	mu       sync.Mutex // guards the freshness state
	haveSeq  bool
	lastSeq  uint32
	lastTime time.Time

	queue   chan *Response
	started bool // guarded by e.exMu: the delivery goroutine runs
	stop    chan struct{}
	once    sync.Once
	done    chan struct{} // closed when the delivery goroutine exits
	err     error
}

// Observe registers an observation of path on peer (GET with Observe=0)
// and calls fn with the first response and every fresh notification, in
// order (RFC 7641 §3.4: a notification older than the last one delivered
// is dropped unless 128 s have passed). It returns ErrNotObserved (and no
// Observation) if the server answered without Observe; the response is
// then still passed to fn. Block2 notifications are completed before fn
// sees them. The observation ends with Cancel, when the server sends a
// non-2.xx notification, or when the Endpoint closes.
func (e *Endpoint) Observe(ctx context.Context, peer net.Addr, path string, fn func(*Response), opts ...message.Option) (*Observation, error) {
	req := NewRequest(codes.GET, peer, path)
	for _, o := range opts {
		req.AddOption(o)
	}
	return e.ObserveRequest(ctx, req, fn)
}

// ObserveRequest is Observe for a prepared request: a GET, or a FETCH with
// a body (RFC 8132 §2.4, as LwM2M Observe-Composite uses), whose options
// and payload are sent with the registration and again, with Observe=1,
// when Cancel deregisters. The Observe option and the token are set here.
func (e *Endpoint) ObserveRequest(ctx context.Context, req *Request, fn func(*Response)) (*Observation, error) {
	if e.b == nil || e.closing.Load() {
		return nil, ErrClosed
	}
	if req == nil || req.Peer == nil {
		return nil, errors.New("bearer: observe request without a peer")
	}
	if req.Code != codes.GET && req.Code != codes.FETCH {
		return nil, fmt.Errorf("bearer: %v cannot be observed (GET or FETCH only)", req.Code)
	}
	peer := req.Peer
	req.SetOption(UintOption(message.Observe, 0))
	req.Token = e.newToken()
	o := &Observation{
		e: e, peer: peer, pkey: AddrKey(peer), token: req.Token, req: req, fn: fn,
		queue: make(chan *Response, e.lim.ObserveQueue), stop: make(chan struct{}), done: make(chan struct{}),
	}
	e.exMu.Lock()
	n := 0
	for _, ex := range e.byToken {
		if ex.obs != nil {
			n++
		}
	}
	e.exMu.Unlock()
	if n >= e.lim.MaxClientObservations {
		return nil, fmt.Errorf("%w: %d client observations", ErrLimit, e.lim.MaxClientObservations)
	}
	m := message.Message{Code: req.Code, Token: req.Token, Options: req.Options, Payload: req.Payload}
	resp, err := e.roundTrip(ctx, peer, &m, rtOpts{con: true, obs: o})
	if err != nil {
		return nil, err
	}
	seq, observed := resp.Observe()
	if !observed || resp.Code>>5 != 2 {
		e.dropToken(o)
		full, ferr := e.completeBlock2(ctx, req, resp, e.newToken())
		if ferr == nil && fn != nil {
			fn(full)
		}
		return nil, ErrNotObserved
	}
	_ = seq
	// The read loop queued the first response before any notification.
	e.exMu.Lock()
	if e.closed.Load() {
		e.exMu.Unlock()
		return nil, ErrClosed
	}
	o.started = true
	e.bg.Add(1)
	e.exMu.Unlock()
	go o.run()
	return o, nil
}

func (e *Endpoint) dropToken(o *Observation) {
	tk := tokenKey{o.pkey, string(o.token)}
	e.exMu.Lock()
	if ex, ok := e.byToken[tk]; ok && ex.obs == o {
		delete(e.byToken, tk)
	}
	e.exMu.Unlock()
}

func (e *Endpoint) closeClientObservations() {
	e.exMu.Lock()
	var all []*Observation
	for _, ex := range e.byToken {
		if ex.obs != nil && ex.obs.started {
			all = append(all, ex.obs)
		}
	}
	e.exMu.Unlock()
	for _, o := range all {
		o.finish(ErrClosed)
	}
}

// fresh applies the RFC 7641 §3.4 ordering rule.
func fresh(v1, v2 uint32, t1, t2 time.Time) bool {
	const half = 1 << 23
	return (v1 < v2 && v2-v1 < half) || (v1 > v2 && v1-v2 > half) || t2.After(t1.Add(128*time.Second))
}

// notify is called by the read loop with a notification on our token.
func (o *Observation) notify(e *Endpoint, r *Response) {
	select {
	case <-o.stop:
		return
	default:
	}
	now := time.Now()
	if seq, ok := r.Observe(); ok {
		o.mu.Lock()
		if o.haveSeq && !fresh(o.lastSeq, seq, o.lastTime, now) {
			o.mu.Unlock()
			e.m.Count(EventNotificationDropped, 1)
			return
		}
		o.haveSeq, o.lastSeq, o.lastTime = true, seq, now
		o.mu.Unlock()
	}
	select {
	case o.queue <- r:
	default:
		e.m.Count(EventNotificationDropped, 1)
	}
}

func (o *Observation) run() {
	defer o.e.bg.Done()
	defer close(o.done)
	for {
		select {
		case <-o.stop:
			return
		case r := <-o.queue:
			if _, ok := optionUint(r.Options, message.Block2); ok {
				ctx, cancel := context.WithTimeout(o.e.ctx, o.e.lim.ResponseTimeout)
				full, err := o.e.completeBlock2(ctx, o.req, r, o.e.newToken())
				cancel()
				if err != nil {
					o.e.log.Debug("bearer: notification Block2 fetch failed", "peer", o.peer, "err", err)
					continue
				}
				r = full
			}
			if o.fn != nil {
				o.fn(r)
			}
			if r.Code>>5 != 2 {
				o.e.dropToken(o)
				o.finishAsync(ErrObservationEnded)
				return
			}
			if _, ok := r.Observe(); !ok {
				o.e.dropToken(o)
				o.finishAsync(ErrObservationEnded)
				return
			}
		}
	}
}

func (o *Observation) finishAsync(err error) {
	o.once.Do(func() {
		o.err = err
		close(o.stop)
	})
}

func (o *Observation) finish(err error) {
	o.finishAsync(err)
	<-o.done
}

// Token returns the observation's token.
func (o *Observation) Token() message.Token { return o.token }

// Done is closed when the observation has ended and its callback will not
// be called again.
func (o *Observation) Done() <-chan struct{} {
	if o.done == nil { // a zero Observation never ran
		return closedChan
	}
	return o.done
}

// Err returns why the observation ended, nil while it runs.
func (o *Observation) Err() error {
	select {
	case <-o.done:
		return o.err
	default:
		return nil
	}
}

// Cancel deregisters the observation with a GET (or the FETCH, with its
// body) carrying Observe=1 and the registration's token (RFC 7641 §3.6), stops notifications and waits for
// the callback goroutine. The server's answer is not required: errors
// from the deregistration request are returned but the observation is
// ended anyway.
func (o *Observation) Cancel(ctx context.Context) error {
	if o.e == nil {
		return fmt.Errorf("%w: not an observation of an Endpoint", ErrObservationEnded)
	}
	o.e.dropToken(o)
	o.finishAsync(ErrObservationEnded)
	var err error
	if !o.e.closing.Load() {
		opts := cloneOptions(o.req.Options).Set(UintOption(message.Observe, 1))
		m := message.Message{Code: o.req.Code, Token: o.token, Options: opts, Payload: o.req.Payload}
		_, err = o.e.roundTrip(ctx, o.peer, &m, rtOpts{con: true})
	}
	select {
	case <-o.done:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	return err
}
