package bearer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/pipe"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// observedResource accepts observations and hands the Observers to the test.
func observedResource(first []byte, observers chan<- *bearer.Observer) bearer.Handler {
	return bearer.HandlerFunc(func(w bearer.ResponseWriter, r *bearer.Request) {
		if o, err := w.Observe(); err == nil {
			defer func() { observers <- o }()
		}
		_ = w.WriteResponse(codes.Content, first)
	})
}

type collector struct {
	mu  sync.Mutex
	got []string
	ch  chan struct{}
}

func newCollector() *collector { return &collector{ch: make(chan struct{}, 1000)} }

func (c *collector) fn(r *bearer.Response) {
	c.mu.Lock()
	c.got = append(c.got, string(r.Payload))
	c.mu.Unlock()
	c.ch <- struct{}{}
}

func (c *collector) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		c.mu.Lock()
		if len(c.got) >= n {
			out := append([]string(nil), c.got...)
			c.mu.Unlock()
			return out
		}
		c.mu.Unlock()
		select {
		case <-c.ch:
		case <-deadline:
			t.Fatalf("got %d notifications, want %d", len(c.got), n)
		}
	}
}

func TestObserveNotifyAndCancel(t *testing.T) {
	observers := make(chan *bearer.Observer, 1)
	p := newPair(t, observedResource([]byte("v0"), observers), []pipe.Option{pipe.WithParams(fastParams(50*time.Millisecond, 4))},
		bearer.WithLimits(bearer.Limits{ObserveConEvery: 3}))
	ctx := ctxT(t, 30*time.Second)
	c := newCollector()
	obs, err := p.cli.Observe(ctx, p.sconn.LocalAddr(), "/3/0/9", c.fn)
	if err != nil {
		t.Fatal(err)
	}
	o := <-observers
	if o.Path() != "/3/0/9" || p.srv.Observations() != 1 {
		t.Fatalf("observer path %q, count %d", o.Path(), p.srv.Observations())
	}
	for i := 1; i <= 6; i++ {
		if err := o.Notify(ctx, codes.Content, fmt.Appendf(nil, "v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	got := c.wait(t, 7)
	if fmt.Sprint(got) != "[v0 v1 v2 v3 v4 v5 v6]" {
		t.Fatalf("notifications %v", got)
	}
	if err := obs.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-o.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("server observer not removed after GET Observe=1")
	}
	if err := o.Notify(ctx, codes.Content, []byte("late")); !errors.Is(err, bearer.ErrObservationEnded) {
		t.Fatalf("Notify after cancel: %v", err)
	}
	if p.srv.Observations() != 0 {
		t.Fatalf("%d observations left", p.srv.Observations())
	}
}

func TestObserveLargeNotificationSMS(t *testing.T) {
	observers := make(chan *bearer.Observer, 1)
	big := randomBody(700, 5)
	p := newPair(t, observedResource([]byte("small"), observers), []pipe.Option{pipe.WithParams(smsParams())})
	ctx := ctxT(t, 30*time.Second)
	c := newCollector()
	obs, err := p.cli.Observe(ctx, p.sconn.LocalAddr(), "/3303/0/5700", c.fn)
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Cancel(ctx)
	o := <-observers
	if err := o.Notify(ctx, codes.Content, big); err != nil {
		t.Fatal(err)
	}
	got := c.wait(t, 2)
	if got[0] != "small" || !bytes.Equal([]byte(got[1]), big) {
		t.Fatalf("got %q and %d bytes", got[0], len(got[1]))
	}
	if max := p.sconn.Stats().Largest; max > 140 {
		t.Fatalf("server sent a %d-byte datagram over SMS", max)
	}
}

func TestObserveLimitAndNotObserved(t *testing.T) {
	observers := make(chan *bearer.Observer, 2)
	p := newPair(t, observedResource([]byte("x"), observers), []pipe.Option{pipe.WithParams(fastParams(50*time.Millisecond, 4))},
		bearer.WithLimits(bearer.Limits{MaxObservations: 1}))
	ctx := ctxT(t, 30*time.Second)
	if _, err := p.cli.Observe(ctx, p.sconn.LocalAddr(), "/a", nil); err != nil {
		t.Fatal(err)
	}
	c := newCollector()
	_, err := p.cli.Observe(ctx, p.sconn.LocalAddr(), "/b", c.fn)
	if !errors.Is(err, bearer.ErrNotObserved) {
		t.Fatalf("second observation: %v, want ErrNotObserved", err)
	}
	if got := c.wait(t, 1); got[0] != "x" {
		t.Fatalf("plain response not delivered: %v", got)
	}
}

// TestObserveServerRules drives the server with a raw client.
func TestObserveServerRules(t *testing.T) {
	observers := make(chan *bearer.Observer, 4)
	params := fastParams(20*time.Millisecond, 2)
	raw, met := newRaw(t, observedResource([]byte("v0"), observers), params, bearer.WithLimits(bearer.Limits{ObserveConEvery: 3}))
	ctx := ctxT(t, 30*time.Second)
	register := func(mid int32, tok byte) *bearer.Observer {
		raw.sendMsg(message.Message{Type: message.Confirmable, Code: codes.GET, MessageID: mid, Token: []byte{tok},
			Options: message.Options{bearer.UintOption(message.Observe, 0), {ID: message.URIPath, Value: []byte("t")}}})
		m := raw.recv(5 * time.Second)
		if m == nil || m.Type != message.Acknowledgement || m.Code != codes.Content {
			t.Fatalf("registration reply %v", m)
		}
		if _, err := m.Options.Observe(); err != nil {
			t.Fatal("registration reply without Observe")
		}
		return <-observers
	}
	t.Run("CON every third, sequence increases", func(t *testing.T) {
		o := register(1, 1)
		var last uint32
		for i := 1; i <= 6; i++ {
			errc := make(chan error, 1)
			go func() { errc <- o.Notify(ctx, codes.Content, []byte{byte(i)}) }()
			m := raw.recv(5 * time.Second)
			if m == nil {
				t.Fatalf("notification %d missing", i)
			}
			seq, err := m.Options.Observe()
			if err != nil || (i > 1 && seq <= last) {
				t.Fatalf("notification %d: seq %d after %d (%v)", i, seq, last, err)
			}
			last = seq
			wantCON := i%3 == 0
			if (m.Type == message.Confirmable) != wantCON {
				t.Fatalf("notification %d type %v", i, m.Type)
			}
			if wantCON {
				raw.send([]byte{0x60, 0, byte(m.MessageID >> 8), byte(m.MessageID)})
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		}
		o.Cancel()
	})
	t.Run("RST to NON notification removes", func(t *testing.T) {
		o := register(2, 2)
		if err := o.Notify(ctx, codes.Content, []byte("n")); err != nil {
			t.Fatal(err)
		}
		m := raw.recv(5 * time.Second)
		if m == nil || m.Type != message.NonConfirmable {
			t.Fatalf("notification %v", m)
		}
		raw.send([]byte{0x70, 0, byte(m.MessageID >> 8), byte(m.MessageID)})
		select {
		case <-o.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("observer not removed by RST")
		}
		if !errors.Is(o.Err(), bearer.ErrReset) {
			t.Fatalf("Err %v", o.Err())
		}
	})
	t.Run("unanswered CON notification removes", func(t *testing.T) {
		o := register(3, 3)
		var err error
		for i := 0; i < 3 && err == nil; i++ {
			err = o.Notify(ctx, codes.Content, []byte("n"))
		}
		if !errors.Is(err, bearer.ErrTimeout) {
			t.Fatalf("third (CON) notification: %v, want timeout", err)
		}
		select {
		case <-o.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("observer not removed after CON timeout")
		}
		for raw.recv(10*time.Millisecond) != nil { // drain retransmissions
		}
	})
	t.Run("GET Observe=1 deregisters", func(t *testing.T) {
		o := register(4, 4)
		raw.sendMsg(message.Message{Type: message.Confirmable, Code: codes.GET, MessageID: 5, Token: []byte{4},
			Options: message.Options{bearer.UintOption(message.Observe, 1), {ID: message.URIPath, Value: []byte("t")}}})
		if m := raw.recv(5 * time.Second); m == nil || m.Code != codes.Content {
			t.Fatalf("deregistration reply %v", m)
		} else if _, err := m.Options.Observe(); err == nil {
			t.Fatal("deregistration reply carries Observe")
		}
		select {
		case <-o.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("observer not removed")
		}
	})
	if met.Get(bearer.EventObserveRemoved) < 3 {
		t.Fatalf("removals not counted: %v", met.Snapshot())
	}
}

// TestObserveClientOrdering drives the client with a raw server.
func TestObserveClientOrdering(t *testing.T) {
	a, b, err := pipe.New(pipe.WithParams(fastParams(200*time.Millisecond, 4)))
	if err != nil {
		t.Fatal(err)
	}
	met := new(bearer.Counters)
	cli, err := bearer.NewEndpoint(b, bearer.WithMetrics(met))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	raw := &rawPeer{t: t, conn: a, to: b.LocalAddr()}
	c := newCollector()
	type res struct {
		o   *bearer.Observation
		err error
	}
	rc := make(chan res, 1)
	go func() {
		o, err := cli.Observe(context.Background(), a.LocalAddr(), "/x", c.fn)
		rc <- res{o, err}
	}()
	req := raw.recv(5 * time.Second)
	if req == nil || req.Code != codes.GET {
		t.Fatalf("registration %v", req)
	}
	if v, err := req.Options.Observe(); err != nil || v != 0 {
		t.Fatalf("registration Observe %v %v", v, err)
	}
	tok := req.Token
	notif := func(typ message.Type, mid int32, seq uint32, payload string, token []byte) {
		raw.sendMsg(message.Message{Type: typ, Code: codes.Content, MessageID: mid, Token: token,
			Options: message.Options{bearer.UintOption(message.Observe, seq)}, Payload: []byte(payload)})
	}
	notif(message.Acknowledgement, req.MessageID, 100, "s100", tok)
	r := <-rc
	if r.err != nil {
		t.Fatal(r.err)
	}
	notif(message.NonConfirmable, 1000, 102, "s102", tok)
	notif(message.NonConfirmable, 1001, 101, "s101", tok) // older: dropped
	notif(message.Confirmable, 1002, 103, "s103", tok)    // must be ACKed
	if m := raw.recv(5 * time.Second); m == nil || m.Type != message.Acknowledgement || m.MessageID != 1002 {
		t.Fatalf("CON notification not ACKed: %v", m)
	}
	notif(message.Confirmable, 1002, 103, "s103", tok) // duplicate: ACKed again, not delivered
	if m := raw.recv(5 * time.Second); m == nil || m.Type != message.Acknowledgement || m.MessageID != 1002 {
		t.Fatalf("duplicate CON notification not ACKed: %v", m)
	}
	notif(message.NonConfirmable, 1003, 0x800000+104, "wrapped-far", tok) // more than 2^23 ahead: older, dropped
	notif(message.NonConfirmable, 1004, 104, "s104", tok)
	notif(message.NonConfirmable, 1005, 5, "unknown", []byte{0xde, 0xad})
	if m := raw.recv(5 * time.Second); m == nil || m.Type != message.Reset || m.MessageID != 1005 {
		t.Fatalf("notification with unknown token not RST: %v", m)
	}
	c.wait(t, 4)
	time.Sleep(20 * time.Millisecond)
	c.mu.Lock()
	got := append([]string(nil), c.got...)
	c.mu.Unlock()
	if fmt.Sprint(got) != "[s100 s102 s103 s104]" {
		t.Fatalf("delivered %v", got)
	}
	if met.Get(bearer.EventNotificationDropped) != 2 {
		t.Fatalf("dropped %d, want 2", met.Get(bearer.EventNotificationDropped))
	}
	// Cancel sends GET Observe=1 with the same token.
	done := make(chan error, 1)
	go func() { done <- r.o.Cancel(ctxT(t, 10*time.Second)) }()
	m := raw.recv(5 * time.Second)
	if m == nil || !bytes.Equal(m.Token, tok) {
		t.Fatalf("deregistration %v", m)
	}
	if v, err := m.Options.Observe(); err != nil || v != 1 {
		t.Fatalf("deregistration Observe %v %v", v, err)
	}
	raw.sendMsg(message.Message{Type: message.Acknowledgement, Code: codes.Content, MessageID: m.MessageID, Token: tok})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	<-r.o.Done()
}

func TestFreshnessRule(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		v1, v2 uint32
		dt     time.Duration
		want   bool
	}{
		{1, 2, 0, true}, {2, 1, 0, false}, {5, 5, 0, false},
		{0xFFFFFF, 0, 0, true}, // wrapped
		{0, 0x800001, 0, false}, {0x800001, 0, 0, true},
		{2, 1, 129 * time.Second, true}, {2, 1, 127 * time.Second, false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%#x/%#x/%v", tc.v1, tc.v2, tc.dt), func(t *testing.T) {
			if got := bearer.Fresh(tc.v1, tc.v2, t0, t0.Add(tc.dt)); got != tc.want {
				t.Errorf("fresh(%#x, %#x, +%v) = %v, want %v", tc.v1, tc.v2, tc.dt, got, tc.want)
			}
		})
	}
}
