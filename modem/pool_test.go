package modem

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/internal/backoff"
)

// memberStub is a Member whose sends take a fixed time; it is a stand-in
// for the pool logic tests only (the driver is tested on the AT fakes).
type memberStub struct {
	msisdn   string
	ready    atomic.Bool
	sendTime time.Duration
	fail     error
	mu       sync.Mutex
	sent     atomic.Int32
	rx       chan *Received
	ev       chan Event
	closed   atomic.Bool
}

func newStub(msisdn string, sendTime time.Duration) *memberStub {
	s := &memberStub{msisdn: msisdn, sendTime: sendTime, rx: make(chan *Received, 4), ev: make(chan Event, 4)}
	s.ready.Store(true)
	return s
}

func (s *memberStub) MSISDN() string             { return s.msisdn }
func (s *memberStub) Ready() bool                { return s.ready.Load() }
func (s *memberStub) Received() <-chan *Received { return s.rx }
func (s *memberStub) Events() <-chan Event       { return s.ev }
func (s *memberStub) Close() error               { s.closed.Store(true); return nil }
func (s *memberStub) SendPDU(ctx context.Context, tpdu []byte) (int, error) {
	// A modem runs one +CMGS at a time.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return 0, s.fail
	}
	if s.sendTime > 0 {
		if err := backoff.Wait(ctx, s.sendTime); err != nil {
			return 0, err
		}
	}
	return int(s.sent.Add(1)-1) % 256, nil
}

func TestPoolNamedSIMAndErrors(t *testing.T) {
	p, err := NewPool(WithPoolLogger(quietLog()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	a, b := newStub("+1001", 0), newStub("+1002", 0)
	for _, s := range []*memberStub{a, b} {
		if err := p.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Add(newStub("+1001", 0)); err == nil {
		t.Fatal("duplicate MSISDN accepted")
	}
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		r, err := p.SendTPDU(ctx, "+1002", []byte{1})
		if err != nil || r.From != "+1002" || r.MR != i {
			t.Fatalf("send %d: %+v %v", i, r, err)
		}
	}
	if a.sent.Load() != 0 {
		t.Fatal("named send left from another SIM")
	}
	if _, err := p.SendTPDU(ctx, "+9999", []byte{1}); !errors.Is(err, ErrUnknownSIM) || Retryable(err) {
		t.Fatalf("unknown SIM: %v", err)
	}
	b.ready.Store(false)
	if _, err := p.SendTPDU(ctx, "+1002", []byte{1}); !errors.Is(err, ErrNoModem) || !Retryable(err) {
		t.Fatalf("not ready: %v", err)
	}
	if r, err := p.SendTPDU(ctx, "", []byte{1}); err != nil || r.From != "+1001" {
		t.Fatalf("any: %+v %v", r, err)
	}
	st := p.Status()
	if len(st) != 2 || st[1].Ready || st[1].Sent != 5 {
		t.Fatalf("status %+v", st)
	}
	if err := p.Remove("+1001"); err != nil || !a.closed.Load() {
		t.Fatalf("Remove: %v", err)
	}
	if err := p.Remove("+1001"); !errors.Is(err, ErrUnknownSIM) {
		t.Fatalf("second Remove: %v", err)
	}
}

func TestPoolFailover(t *testing.T) {
	p, err := NewPool(WithPoolLogger(quietLog()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	a, b, c := newStub("+1", 0), newStub("+2", 0), newStub("+3", 0)
	a.fail = &CMSError{Code: 331, Text: "331"} // no network service: retryable
	c.fail = &CMSError{Code: 1, Text: "1"}     // unassigned number: permanent
	for _, s := range []*memberStub{a, b, c} {
		_ = p.Add(s)
	}
	ctx := context.Background()
	for i := 0; i < 6; i++ {
		r, err := p.Send(ctx, []string{"+1", "+2"}, []byte{1})
		if err != nil || r.From != "+2" {
			t.Fatalf("failover: %+v %v", r, err)
		}
	}
	// Only +1 allowed: its error comes back, no other SIM is used.
	_, err = p.Send(ctx, []string{"+1"}, []byte{1})
	var cms *CMSError
	if !errors.As(err, &cms) || cms.Code != 331 {
		t.Fatalf("single allowed: %v", err)
	}
	// A permanent error is not retried elsewhere: a failed send tried one SIM.
	for i := 0; i < 8; i++ {
		r, err := p.Send(ctx, []string{"+3", "+2"}, []byte{1})
		if err != nil && (!errors.As(err, &cms) || cms.Code != 1 || r.Attempts != 1) {
			t.Fatalf("permanent error: %+v %v", r, err)
		}
		if err == nil && (r.From != "+2" || r.Attempts != 1) {
			t.Fatalf("success after a permanent error: %+v", r)
		}
	}
}

func TestPoolBalancesAndRateLimits(t *testing.T) {
	p, err := NewPool(WithPoolLogger(quietLog()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	stubs := []*memberStub{newStub("+1", 5*time.Millisecond), newStub("+2", 5*time.Millisecond), newStub("+3", 5*time.Millisecond)}
	for _, s := range stubs {
		_ = p.Add(s)
	}
	var wg sync.WaitGroup
	for i := 0; i < 60; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := p.SendTPDU(context.Background(), "", []byte{1}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, s := range stubs {
		if n := s.sent.Load(); n < 10 || n > 30 {
			t.Errorf("%s sent %d of 60: not balanced", s.msisdn, n)
		}
	}

	q, err := NewPool(WithPoolLogger(quietLog()))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	_ = q.Add(newStub("+9", 0), WithRate(50, 2)) // 20 ms a token, burst 2
	start := time.Now()
	for i := 0; i < 7; i++ {
		if _, err := q.SendTPDU(context.Background(), "+9", []byte{1}); err != nil {
			t.Fatal(err)
		}
	}
	// 2 from the burst, 5 more at 20 ms each: at least 100 ms.
	if el := time.Since(start); el < 95*time.Millisecond {
		t.Fatalf("7 sends at 50/s burst 2 took %v", el)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	q2, err := NewPool(WithPoolLogger(quietLog()))
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	_ = q2.Add(newStub("+8", 0), WithRate(0.1, 1))
	_, _ = q2.SendTPDU(context.Background(), "+8", []byte{1})
	if _, err := q2.SendTPDU(ctx, "+8", []byte{1}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("rate wait ignores ctx: %v", err)
	}
}

func TestPoolQueueLimit(t *testing.T) {
	p, err := NewPool(WithPoolLogger(quietLog()), WithMaxQueue(1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s := newStub("+1", 300*time.Millisecond)
	_ = p.Add(s)
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		close(started)
		_, err := p.SendTPDU(context.Background(), "+1", []byte{1})
		done <- err
	}()
	<-started
	waitFor(t, 5*time.Second, "first send in flight", func() bool { return p.Status()[0].InFlight == 1 })
	if _, err := p.SendTPDU(context.Background(), "+1", []byte{1}); !errors.Is(err, ErrNoModem) {
		t.Fatalf("over queue limit: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestPoolMergesReceived(t *testing.T) {
	p, err := NewPool(WithPoolLogger(quietLog()))
	if err != nil {
		t.Fatal(err)
	}
	a, b := newStub("+1", 0), newStub("+2", 0)
	_ = p.Add(a)
	_ = p.Add(b)
	a.rx <- &Received{Modem: "+1", Index: -1}
	b.rx <- &Received{Modem: "+2", Index: -1}
	b.ev <- Event{Modem: "+2", Type: EventConnected}
	got := map[string]bool{}
	for i := 0; i < 2; i++ {
		select {
		case r := <-p.Received():
			got[r.Modem] = true
		case <-time.After(5 * time.Second):
			t.Fatal("no message")
		}
	}
	if !got["+1"] || !got["+2"] {
		t.Fatalf("got %v", got)
	}
	select {
	case e := <-p.Events():
		if e.Type != EventConnected {
			t.Fatal(e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	if err := p.Close(); err != nil || !a.closed.Load() || !b.closed.Load() {
		t.Fatalf("Close: %v", err)
	}
	if _, err := p.SendTPDU(context.Background(), "", []byte{1}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if err := p.Add(newStub("+3", 0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Add after Close: %v", err)
	}
}

func TestPoolOverDriver(t *testing.T) {
	p, err := NewPool(WithPoolLogger(quietLog()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	fakes := []*fakeModem{newFake(), newFake()}
	for i, f := range fakes {
		m := openFake(t, f, testProfile(), Config{MSISDN: fmt.Sprintf("+4900%d", i)})
		if err := p.Add(m); err != nil {
			t.Fatal(err)
		}
	}
	r, err := p.SendTPDU(context.Background(), "+49001", []byte{0x01, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00})
	if err != nil || r.From != "+49001" || r.MR != 0 {
		t.Fatalf("%+v %v", r, err)
	}
	fakes[0].storeMsg(testSMSC+testDeliver, testDeliverLen, true)
	select {
	case rx := <-p.Received():
		if rx.Modem != "+49000" {
			t.Fatalf("from %s", rx.Modem)
		}
		if err := rx.Ack(context.Background()); err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing received")
	}
	waitFor(t, 5*time.Second, "deleted", func() bool { return len(fakes[0].stored()) == 0 })
}
