package oscore_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/oscore"
	"github.com/m2mbearer/m2mbearer/bearer/pipe"
)

var (
	secret = []byte{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10}
	salt   = []byte{0x9e, 0x7c, 0xa9, 0x22, 0x23, 0x78, 0x63, 0x40}
)

// pair returns the two sides' parameters: the device (LwM2M client, "01")
// and the server ("").
func pair() (dev, srv oscore.Params) {
	dev = oscore.Params{MasterSecret: secret, MasterSalt: salt, SenderID: []byte{0x01}, RecipientID: []byte{}}
	srv = oscore.Params{MasterSecret: secret, MasterSalt: salt, SenderID: []byte{}, RecipientID: []byte{0x01}}
	return dev, srv
}

type world struct {
	t                  *testing.T
	a, b               *pipe.Conn // raw pipes: a = server side, b = device side
	evil               *pipe.Conn // a third node that injects datagrams
	srvRaw             bearer.Bearer
	srvConn, devConn   *oscore.Conn
	srvEP, devEP       *bearer.Endpoint
	srvCtx, devCtx     *oscore.Context
	srvStore, devStore *oscore.MemoryStore
	runs               atomic.Int64 // handler executions on the device
	lastIdentity       atomic.Value
	obs                atomic.Pointer[bearer.Observer]
	perPayload         sync.Map // payload → *atomic.Int64 handler runs
}

// newWorld runs a CoAP server ("device") and client ("server") over OSCORE
// on a pipe with params p; fresh keeps the replay windows trusted (no
// Echo round trip for the first request).
func newWorld(t *testing.T, p bearer.Params, fresh bool, faults pipe.Faults) *world {
	t.Helper()
	w := &world{t: t, srvStore: oscore.NewMemoryStore(), devStore: oscore.NewMemoryStore()}
	hub, err := pipe.NewHub(pipe.WithParams(p), pipe.WithFaults(faults), pipe.WithSeed(7))
	if err != nil {
		t.Fatal(err)
	}
	w.a, _ = hub.Conn("server")
	w.b, _ = hub.Conn("device")
	w.evil, _ = hub.Conn("attacker")
	t.Cleanup(func() { w.evil.Close() })
	w.srvRaw = &noClose{Conn: w.a}
	w.start(fresh)
	return w
}

func (w *world) start(fresh bool) { w.startWith(fresh, w.srvRaw) }

func (w *world) startWith(fresh bool, srvRaw bearer.Bearer) {
	t := w.t
	dp, sp := pair()
	var opts []oscore.ContextOption
	if fresh {
		opts = append(opts, oscore.WithTrustedReplayWindow())
	}
	var err error
	if w.devCtx, err = oscore.NewContext(dp, w.devStore, opts...); err != nil {
		t.Fatal(err)
	}
	if w.srvCtx, err = oscore.NewContext(sp, w.srvStore, opts...); err != nil {
		t.Fatal(err)
	}
	if w.devConn, err = oscore.New(&noClose{Conn: w.b}, oscore.WithPeer(w.a.LocalAddr(), w.devCtx)); err != nil {
		t.Fatal(err)
	}
	if w.srvConn, err = oscore.New(srvRaw, oscore.WithPeer(w.b.LocalAddr(), w.srvCtx)); err != nil {
		t.Fatal(err)
	}
	mux := bearer.NewServeMux()
	mux.HandleFunc("/3/0/0", func(rw bearer.ResponseWriter, r *bearer.Request) {
		w.runs.Add(1)
		w.lastIdentity.Store(r.Identity.String())
		_ = rw.WriteResponse(codes.Content, []byte("m2mbearer"))
	})
	mux.HandleFunc("/5/0/0", func(rw bearer.ResponseWriter, r *bearer.Request) {
		w.runs.Add(1)
		if len(r.Payload) != 500 {
			_ = rw.WriteResponse(codes.BadRequest, nil)
			return
		}
		_ = rw.WriteResponse(codes.Changed, nil)
	})
	mux.HandleFunc("/big", func(rw bearer.ResponseWriter, r *bearer.Request) {
		_ = rw.WriteResponse(codes.Content, bytes.Repeat([]byte("fw"), 4096))
	})
	mux.HandleFunc("/x", func(rw bearer.ResponseWriter, r *bearer.Request) {
		v, _ := w.perPayload.LoadOrStore(string(r.Payload), new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
		_ = rw.WriteResponse(codes.Changed, r.Payload)
	})
	mux.HandleFunc("/3303/0/5700", func(rw bearer.ResponseWriter, r *bearer.Request) {
		if o, err := rw.Observe(); err == nil {
			w.obs.Store(o)
		}
		_ = rw.WriteResponse(codes.Content, []byte("20.5"))
	})
	if w.devEP, err = bearer.NewEndpoint(w.devConn, bearer.WithHandler(mux)); err != nil {
		t.Fatal(err)
	}
	if w.srvEP, err = bearer.NewEndpoint(w.srvConn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.srvEP.Close(); w.devEP.Close() })
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testParams() bearer.Params {
	p := bearer.UDPParams("udp")
	p.AckTimeout = 50 * time.Millisecond
	p.MaxLatency = time.Second
	p.ProcessingDelay = 50 * time.Millisecond
	return p
}

func TestConnRoundTrips(t *testing.T) {
	w := newWorld(t, testParams(), true, pipe.Faults{})
	ctx := ctxT(t)
	dev := w.b.LocalAddr()
	t.Run("GET", func(t *testing.T) {
		resp, err := w.srvEP.Get(ctx, dev, "/3/0/0")
		if err != nil || string(resp.Payload) != "m2mbearer" || resp.Code != codes.Content {
			t.Fatalf("GET: %v %v", resp, err)
		}
		if got := w.lastIdentity.Load(); got != "oscore:" {
			t.Fatalf("identity at the handler %q, want the server's empty Sender ID", got)
		}
	})
	t.Run("PUT 500 bytes", func(t *testing.T) {
		resp, err := w.srvEP.Put(ctx, dev, "/5/0/0", message.AppOctets, bytes.Repeat([]byte{7}, 500))
		if err != nil || resp.Code != codes.Changed {
			t.Fatalf("PUT: %v %v", resp, err)
		}
	})
	t.Run("Block2 8 KiB", func(t *testing.T) {
		resp, err := w.srvEP.Get(ctx, dev, "/big")
		if err != nil || len(resp.Payload) != 8192 {
			t.Fatalf("Block2: %v", err)
		}
	})
	t.Run("unknown path is an OSCORE-protected 4.04", func(t *testing.T) {
		resp, err := w.srvEP.Get(ctx, dev, "/nope")
		if err != nil || resp.Code != codes.NotFound {
			t.Fatalf("%v %v", resp, err)
		}
	})
	if n := w.devConn.Counter(oscore.EventVerified); n < 4 {
		t.Fatalf("device verified %d requests", n)
	}
}

func TestConnObserve(t *testing.T) {
	w := newWorld(t, testParams(), true, pipe.Faults{})
	ctx := ctxT(t)
	got := make(chan string, 8)
	o, err := w.srvEP.Observe(ctx, w.b.LocalAddr(), "/3303/0/5700", func(r *bearer.Response) { got <- string(r.Payload) })
	if err != nil {
		t.Fatal(err)
	}
	if v := <-got; v != "20.5" {
		t.Fatalf("first %q", v)
	}
	for _, v := range []string{"21.0", "21.5", "22.0"} {
		if err := w.obs.Load().Notify(ctx, codes.Content, []byte(v)); err != nil {
			t.Fatal(err)
		}
		select {
		case g := <-got:
			if g != v {
				t.Fatalf("notification %q, want %q", g, v)
			}
		case <-ctx.Done():
			t.Fatal("no notification")
		}
	}
	_ = o.Cancel(ctx)
}

var _ = errors.New

// tap records what the server side writes on its raw pipe, so a test can
// replay or tamper with it by writing on the raw pipe itself.
type tap struct {
	*pipe.Conn
	sent chan []byte
}

func (tp *tap) WriteTo(p []byte, addr net.Addr) (int, error) {
	select {
	case tp.sent <- append([]byte(nil), p...):
	default:
	}
	return tp.Conn.WriteTo(p, addr)
}

// newTapWorld is newWorld with the server's raw writes recorded.
func newTapWorld(t *testing.T, fresh bool) (*world, *tap) {
	t.Helper()
	w := &world{t: t, srvStore: oscore.NewMemoryStore(), devStore: oscore.NewMemoryStore()}
	hub, err := pipe.NewHub(pipe.WithParams(testParams()))
	if err != nil {
		t.Fatal(err)
	}
	w.a, _ = hub.Conn("server")
	w.b, _ = hub.Conn("device")
	w.evil, _ = hub.Conn("attacker")
	t.Cleanup(func() { w.evil.Close() })
	tp := &tap{Conn: w.a, sent: make(chan []byte, 256)}
	w.srvRaw = tp
	w.startWith(fresh, tp)
	return w, tp
}

func lastRequest(t *testing.T, tp *tap) []byte {
	t.Helper()
	var last []byte
	for {
		select {
		case b := <-tp.sent:
			if b[1] != 0 && b[1]>>5 == 0 { // a request
				last = b
			}
		default:
			if last == nil {
				t.Fatal("no request recorded")
			}
			return last
		}
	}
}

// TestBadInput sends the device tampered, replayed and out-of-window
// requests: each is refused with the RFC 8613 code, counted, and its
// handler never runs.
func TestBadInput(t *testing.T) {
	w, tp := newTapWorld(t, true)
	ctx := ctxT(t)
	dev := w.b.LocalAddr()
	if _, err := w.srvEP.Get(ctx, dev, "/3/0/0"); err != nil {
		t.Fatal(err)
	}
	req := lastRequest(t, tp)
	runs := w.runs.Load()
	// Later requests push the window forward.
	for i := 0; i < 40; i++ {
		if _, err := w.srvEP.Get(ctx, dev, "/3/0/0"); err != nil {
			t.Fatal(err)
		}
	}
	runs = w.runs.Load()
	for _, tc := range []struct {
		name  string
		mod   func(b []byte) []byte
		code  codes.Code
		event oscore.Event
	}{
		{"replayed (new message ID, old Partial IV, out of window)", func(b []byte) []byte { b[2] ^= 0x55; return b }, codes.Unauthorized, oscore.EventReplay},
		{"tampered ciphertext", func(b []byte) []byte { b = setPIV(t, b, 0x7f); b[len(b)-1] ^= 1; return b }, codes.BadRequest, oscore.EventDecryptFailed},
		{"tampered Partial IV", func(b []byte) []byte { return setPIV(t, b, 0x7e) }, codes.BadRequest, oscore.EventDecryptFailed},
		{"truncated ciphertext", func(b []byte) []byte { b = setPIV(t, b, 0x7d); return b[:len(b)-6] }, codes.BadRequest, oscore.EventDecryptFailed},
		{"ciphertext shorter than a tag", func(b []byte) []byte { b = setPIV(t, b, 0x7c); return b[:len(b)-11] }, codes.BadRequest, oscore.EventDecodeError},
		{"malformed OSCORE option (reserved flag bit)", func(b []byte) []byte { return setOptionFlags(t, b, 0xe0) }, codes.BadOption, oscore.EventBadOption},
		{"unknown kid", func(b []byte) []byte { return setKID(t, b, 0x42) }, codes.Unauthorized, oscore.EventNoContext},
		{"unprotected request", func(b []byte) []byte {
			return []byte{0x40, 0x01, 0x12, 0x34, 0xb1, '3', 0x01, '0', 0x01, '0'}
		}, codes.Unauthorized, oscore.EventPlainRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := w.devConn.Counter(tc.event)
			resp := inject(t, w, tc.mod(append([]byte(nil), req...)))
			if resp.Code != tc.code {
				t.Fatalf("answer %v, want %v", resp.Code, tc.code)
			}
			if w.devConn.Counter(tc.event) != before+1 {
				t.Fatalf("%v not counted: %v", tc.event, w.devConn.Stats())
			}
			if w.runs.Load() != runs {
				t.Fatal("the handler ran")
			}
		})
	}
	t.Run("replayed within the window, from another address", func(t *testing.T) {
		if _, err := w.srvEP.Get(ctx, dev, "/3/0/0"); err != nil {
			t.Fatal(err)
		}
		runs, replays := w.runs.Load(), w.devConn.Counter(oscore.EventReplay)
		if resp := inject(t, w, lastRequest(t, tp)); resp.Code != codes.Unauthorized {
			t.Fatalf("answer %v", resp.Code)
		}
		if w.runs.Load() != runs || w.devConn.Counter(oscore.EventReplay) != replays+1 {
			t.Fatalf("runs %d→%d, counters %v", runs, w.runs.Load(), w.devConn.Stats())
		}
	})
	t.Run("retransmission of the same datagram is a duplicate, not a replay", func(t *testing.T) {
		if _, err := w.srvEP.Get(ctx, dev, "/3/0/0"); err != nil {
			t.Fatal(err)
		}
		runs := w.runs.Load()
		dup := w.devConn.Counter(oscore.EventDuplicate)
		if _, err := w.a.WriteTo(lastRequest(t, tp), dev); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return w.devConn.Counter(oscore.EventDuplicate) > dup })
		if w.runs.Load() != runs {
			t.Fatal("the handler ran twice")
		}
		if w.devConn.Counter(oscore.EventDuplicate) == 0 {
			t.Fatal("duplicate not counted")
		}
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10 s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// inject sends a raw datagram from the attacker node to the device and
// returns the answer it gets.
func inject(t *testing.T, w *world, b []byte) *message.Message {
	t.Helper()
	if _, err := w.evil.WriteTo(b, w.b.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	_ = w.evil.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	n, _, err := w.evil.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	m := &message.Message{Options: make(message.Options, 0, 8)}
	if _, err := coder.DefaultCoder.Decode(buf[:n], m); err != nil {
		t.Fatal(err)
	}
	return m
}

// editOption rewrites the OSCORE option of a datagram.
func editOption(t *testing.T, b []byte, f func(v []byte) []byte) []byte {
	t.Helper()
	m := &message.Message{Options: make(message.Options, 0, 8)}
	if _, err := coder.DefaultCoder.Decode(b, m); err != nil {
		t.Fatal(err)
	}
	for i, o := range m.Options {
		if o.ID == oscore.OptionNumber {
			m.Options[i].Value = f(append([]byte(nil), o.Value...))
		}
	}
	m.MessageID ^= 0x0f0f
	n, _ := coder.DefaultCoder.Size(*m)
	out := make([]byte, n)
	if _, err := coder.DefaultCoder.Encode(*m, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func setOptionFlags(t *testing.T, b []byte, bits byte) []byte {
	return editOption(t, b, func(v []byte) []byte { v[0] |= bits; return v })
}

func setKID(t *testing.T, b []byte, kid byte) []byte {
	return editOption(t, b, func(v []byte) []byte {
		o, err := oscore.ParseOption(v)
		if err != nil {
			t.Fatal(err)
		}
		o.KID = []byte{kid}
		out, _ := o.Marshal()
		return out
	})
}

func setPIV(t *testing.T, b []byte, piv byte) []byte {
	return editOption(t, b, func(v []byte) []byte {
		o, err := oscore.ParseOption(v)
		if err != nil {
			t.Fatal(err)
		}
		o.PIV = []byte{piv}
		out, _ := o.Marshal()
		return out
	})
}

// noClose lets a test restart the OSCORE layer and Endpoint of one side
// (a reboot) on the same raw pipe.
type noClose struct {
	*pipe.Conn
	closed atomic.Bool
}

func (n *noClose) Close() error {
	n.closed.Store(true)
	return n.Conn.SetReadDeadline(time.Now())
}

func (n *noClose) ReadFrom(p []byte) (int, net.Addr, error) {
	k, a, err := n.Conn.ReadFrom(p)
	if n.closed.Load() {
		return 0, nil, net.ErrClosed
	}
	return k, a, err
}

// reboot restarts the device (its Endpoint, OSCORE layer and context,
// from its sequence store) with an uninitialised replay window.
func (w *world) rebootDevice(t *testing.T) {
	t.Helper()
	w.devEP.Close()
	_ = w.b.SetReadDeadline(time.Time{})
	dp, _ := pair()
	var err error
	if w.devCtx, err = oscore.NewContext(dp, w.devStore); err != nil {
		t.Fatal(err)
	}
	raw := &noClose{Conn: w.b}
	if w.devConn, err = oscore.New(raw, oscore.WithPeer(w.a.LocalAddr(), w.devCtx)); err != nil {
		t.Fatal(err)
	}
	mux := bearer.NewServeMux()
	mux.HandleFunc("/3/0/0", func(rw bearer.ResponseWriter, r *bearer.Request) {
		w.runs.Add(1)
		_ = rw.WriteResponse(codes.Content, []byte("m2mbearer"))
	})
	if w.devEP, err = bearer.NewEndpoint(w.devConn, bearer.WithHandler(mux)); err != nil {
		t.Fatal(err)
	}
}

// rebootServer restarts the requesting side from its sequence store.
func (w *world) rebootServer(t *testing.T, store *oscore.MemoryStore) {
	t.Helper()
	w.srvEP.Close()
	_ = w.a.SetReadDeadline(time.Time{})
	_, sp := pair()
	var err error
	if w.srvCtx, err = oscore.NewContext(sp, store); err != nil {
		t.Fatal(err)
	}
	raw := &noClose{Conn: w.a}
	if w.srvConn, err = oscore.New(raw, oscore.WithPeer(w.b.LocalAddr(), w.srvCtx)); err != nil {
		t.Fatal(err)
	}
	if w.srvEP, err = bearer.NewEndpoint(w.srvConn); err != nil {
		t.Fatal(err)
	}
}

// TestRestartAppendixB: a side that restarts keeps its security without
// operator action (RFC 8613 Appendix B.1): the requester resumes its
// sequence numbers above everything it may have used (B.1.1), the
// responder re-learns its replay window with one Echo round trip that the
// requester's OSCORE layer does transparently (B.1.2). A requester whose
// sequence store was wiped is refused, counted and never executed.
func TestRestartAppendixB(t *testing.T) {
	w := newWorld(t, testParams(), true, pipe.Faults{})
	ctx := ctxT(t)
	dev := w.b.LocalAddr()
	get := func() *bearer.Response {
		t.Helper()
		resp, err := w.srvEP.Get(ctx, dev, "/3/0/0")
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for i := 0; i < 5; i++ {
		get()
	}
	t.Run("device reboot: Echo round trip, transparent to the requester", func(t *testing.T) {
		w.rebootDevice(t)
		if w.devCtx.ReplayWindowInitialised() {
			t.Fatal("a restarted context must not trust its replay window")
		}
		runs := w.runs.Load()
		if resp := get(); resp.Code != codes.Content || string(resp.Payload) != "m2mbearer" {
			t.Fatalf("after reboot: %v %q", resp.Code, resp.Payload)
		}
		if w.runs.Load() != runs+1 {
			t.Fatalf("handler ran %d times", w.runs.Load()-runs)
		}
		if w.devConn.Counter(oscore.EventEchoChallenge) != 1 || w.srvConn.Counter(oscore.EventEchoRetry) != 1 {
			t.Fatalf("echo: device %v server %v", w.devConn.Stats(), w.srvConn.Stats())
		}
		if !w.devCtx.ReplayWindowInitialised() {
			t.Fatal("window not initialised by the Echo")
		}
		get() // no second challenge
		if w.devConn.Counter(oscore.EventEchoChallenge) != 1 {
			t.Fatal("second challenge")
		}
	})
	t.Run("requester reboot: sequence numbers resume above the stored bound", func(t *testing.T) {
		before := w.srvCtx.Seq()
		w.rebootServer(t, w.srvStore)
		if after := w.srvCtx.Seq(); after < before {
			t.Fatalf("sequence number went back from %d to %d: nonce reuse", before, after)
		}
		if resp := get(); resp.Code != codes.Content {
			t.Fatalf("after requester reboot: %v", resp.Code)
		}
	})
	t.Run("requester whose store was wiped: refused, never executed", func(t *testing.T) {
		runs := w.runs.Load()
		replays := w.devConn.Counter(oscore.EventReplay)
		w.rebootServer(t, oscore.NewMemoryStore()) // sequence number back to 0
		resp := get()
		if resp.Code != codes.Unauthorized {
			t.Fatalf("reused sequence numbers answered %v", resp.Code)
		}
		if w.runs.Load() != runs || w.devConn.Counter(oscore.EventReplay) != replays+1 {
			t.Fatalf("runs %d→%d, replay count %v", runs, w.runs.Load(), w.devConn.Stats())
		}
	})
}

// TestSeqStoreSteps: the sequence number is written once every K
// numbers, and before any number of the new step is used (Appendix B.1.1).
func TestSeqStoreSteps(t *testing.T) {
	st := oscore.NewMemoryStore()
	dp, _ := pair()
	x, err := oscore.NewContext(dp, st, oscore.WithSeqStep(10))
	if err != nil {
		t.Fatal(err)
	}
	m := &message.Message{Code: codes.GET, Type: message.Confirmable, Token: []byte{1}}
	for i := 0; i < 25; i++ {
		if _, _, err := x.ProtectRequest(m, false); err != nil {
			t.Fatal(err)
		}
	}
	if st.Writes != 3 {
		t.Fatalf("%d store writes for 25 messages with K=10, want 3", st.Writes)
	}
	y, err := oscore.NewContext(dp, st, oscore.WithSeqStep(10))
	if err != nil {
		t.Fatal(err)
	}
	if y.Seq() != 30 {
		t.Fatalf("restart resumes at %d, want 30 (the stored bound)", y.Seq())
	}
	if _, err := oscore.NewContext(dp, nil); !errors.Is(err, oscore.ErrInvalidOption) {
		t.Fatalf("a context without a store: %v", err)
	}
}

// TestConnUnderLoss runs CON requests over OSCORE on a pipe that loses,
// duplicates and reorders datagrams: each handler runs at most once, and
// exactly once for every request that got its answer (retransmissions and
// network duplicates reach the message layer's duplicate detection, never
// the handler twice, and are never refused as replays); a request gives up
// only with a timeout.
func TestConnUnderLoss(t *testing.T) {
	w := newWorld(t, testParams(), true, pipe.Faults{Loss: 0.2, Duplicate: 0.2, Reorder: 0.1})
	ctx := ctxT(t)
	const n = 100
	ok := 0
	for i := 0; i < n; i++ {
		id := strconv.Itoa(i)
		resp, err := w.srvEP.Post(ctx, w.b.LocalAddr(), "/x", message.TextPlain, []byte(id))
		runs := int64(0)
		if v, found := w.perPayload.Load(id); found {
			runs = v.(*atomic.Int64).Load()
		}
		switch {
		case err == nil && (resp.Code != codes.Changed || string(resp.Payload) != id):
			t.Fatalf("request %d: answer %v %q", i, resp.Code, resp.Payload)
		case err == nil && runs != 1:
			t.Fatalf("request %d answered, handler ran %d times", i, runs)
		case err != nil && !errors.Is(err, bearer.ErrTimeout):
			t.Fatalf("request %d: %v", i, err)
		case runs > 1:
			t.Fatalf("request %d: handler ran %d times", i, runs)
		}
		if err == nil {
			ok++
		}
	}
	if ok < n*9/10 {
		t.Fatalf("%d of %d requests answered", ok, n)
	}
	if w.devConn.Counter(oscore.EventReplay) != 0 || w.devConn.Counter(oscore.EventDuplicate) == 0 {
		t.Fatalf("device counters %v", w.devConn.Stats())
	}
	t.Logf("%d/%d answered; device %v", ok, n, w.devConn.Stats())
}
