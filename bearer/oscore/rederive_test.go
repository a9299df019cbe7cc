package oscore_test

import (
	"bytes"
	"context"
	"net"
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

// b2Side is one endpoint of an Appendix B.2 test: its raw pipe (kept
// across reboots), its store (its flash), its context, OSCORE layer and
// Endpoint.
type b2Side struct {
	raw   *tap
	peer  net.Addr
	p     oscore.Params
	store *oscore.MemoryStore
	x     *oscore.Context
	conn  *oscore.Conn
	ep    *bearer.Endpoint
	h     bearer.Handler
}

// boot (re)starts the side from its store, as a device does after a reboot.
func (s *b2Side) boot(t *testing.T) {
	t.Helper()
	if s.ep != nil {
		s.ep.Close()
		_ = s.raw.SetReadDeadline(timeZero)
	}
	var err error
	if s.x, err = oscore.NewContext(s.p, s.store, oscore.WithRederivation()); err != nil {
		t.Fatal(err)
	}
	if s.conn, err = oscore.New(&noCloseTap{tap: s.raw}, oscore.WithPeer(s.peer, s.x)); err != nil {
		t.Fatal(err)
	}
	var opts []bearer.EndpointOption
	if s.h != nil {
		opts = append(opts, bearer.WithHandler(s.h))
	}
	if s.ep, err = bearer.NewEndpoint(s.conn, opts...); err != nil {
		t.Fatal(err)
	}
}

// b2World: "req" sends requests (an LwM2M client registering, or a server
// reading), "rsp" serves /3/0/0; both contexts have Appendix B.2.
type b2World struct {
	req, rsp *b2Side
	evil     *pipe.Conn
	runs     atomic.Int64
	ident    atomic.Value
}

func newB2World(t *testing.T) *b2World {
	t.Helper()
	hub, err := pipe.NewHub(pipe.WithParams(testParams()))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := hub.Conn("requester")
	b, _ := hub.Conn("responder")
	w := &b2World{}
	w.evil, _ = hub.Conn("attacker")
	dp, sp := pair()
	mux := bearer.NewServeMux()
	mux.HandleFunc("/3/0/0", func(rw bearer.ResponseWriter, r *bearer.Request) {
		w.runs.Add(1)
		w.ident.Store(r.Identity.String())
		_ = rw.WriteResponse(codes.Content, []byte("m2mbearer"))
	})
	w.req = &b2Side{raw: &tap{Conn: a, sent: make(chan []byte, 1024)}, peer: b.LocalAddr(), p: dp, store: oscore.NewMemoryStore()}
	w.rsp = &b2Side{raw: &tap{Conn: b, sent: make(chan []byte, 1024)}, peer: a.LocalAddr(), p: sp, store: oscore.NewMemoryStore(), h: mux}
	w.req.boot(t)
	w.rsp.boot(t)
	t.Cleanup(func() { w.req.ep.Close(); w.rsp.ep.Close(); w.evil.Close() })
	return w
}

func (w *b2World) get(t *testing.T) *bearer.Response {
	t.Helper()
	resp, err := w.req.ep.Get(ctxT(t), w.rsp.raw.LocalAddr(), "/3/0/0")
	if err != nil {
		t.Fatalf("GET: %v (requester %v, responder %v)", err, w.req.conn.Stats(), w.rsp.conn.Stats())
	}
	return resp
}

// TestAppendixB2LostState: whichever side loses its whole OSCORE state
// (sequence numbers, replay window, ID Context), the next exchange runs
// Appendix B.2 and goes through: the request is executed exactly once,
// with new keys (no nonce of the old ones is reused), and nothing is
// accepted as a replay. A side whose state is intact restarts with
// Appendix B.1 and no run.
func TestAppendixB2LostState(t *testing.T) {
	w := newB2World(t)
	type counts struct{ started, response1, request2, estReq, estRsp int64 }
	for _, tc := range []struct {
		name        string
		before      func(t *testing.T)
		want        counts // added by the step
		newIDCtx    bool
		echoAtRsp   bool
		requestRuns int64
	}{
		{"first contact: both without state", func(t *testing.T) {}, counts{1, 1, 1, 1, 1}, true, false, 1},
		{"established: no run", func(t *testing.T) {}, counts{}, false, false, 1},
		{"requester lost its state (device flash wiped)", func(t *testing.T) {
			w.req.store.Forget()
			w.req.boot(t)
		}, counts{1, 1, 1, 1, 1}, true, false, 1},
		{"responder lost its state (server initiates)", func(t *testing.T) {
			w.rsp.store.Forget()
			w.rsp.boot(t)
		}, counts{0, 1, 1, 1, 1}, true, false, 1},
		{"both lost their state (power cut)", func(t *testing.T) {
			w.req.store.Forget()
			w.rsp.store.Forget()
			w.req.boot(t)
			w.rsp.boot(t)
		}, counts{1, 1, 1, 1, 1}, true, false, 1},
		{"requester reboot with its state: Appendix B.1, no run", func(t *testing.T) {
			w.req.boot(t)
		}, counts{}, false, false, 1},
		{"responder reboot with its state: Echo (B.1.2), no run", func(t *testing.T) {
			w.rsp.boot(t)
		}, counts{}, false, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.before(t)
			oldID := w.req.x.CurrentIDContext()
			c0 := counts{w.req.conn.Counter(oscore.EventB2Started), w.rsp.conn.Counter(oscore.EventB2Response1),
				w.req.conn.Counter(oscore.EventB2Request2), w.req.conn.Counter(oscore.EventB2Established), w.rsp.conn.Counter(oscore.EventB2Established)}
			runs := w.runs.Load()
			resp := w.get(t)
			if resp.Code != codes.Content || string(resp.Payload) != "m2mbearer" {
				t.Fatalf("answer %v %q", resp.Code, resp.Payload)
			}
			got := counts{w.req.conn.Counter(oscore.EventB2Started) - c0.started, w.rsp.conn.Counter(oscore.EventB2Response1) - c0.response1,
				w.req.conn.Counter(oscore.EventB2Request2) - c0.request2, w.req.conn.Counter(oscore.EventB2Established) - c0.estReq,
				w.rsp.conn.Counter(oscore.EventB2Established) - c0.estRsp}
			if got != tc.want {
				t.Fatalf("B.2 events %+v, want %+v (requester %v, responder %v)", got, tc.want, w.req.conn.Stats(), w.rsp.conn.Stats())
			}
			if n := w.runs.Load() - runs; n != tc.requestRuns {
				t.Fatalf("handler ran %d times", n)
			}
			if id := w.ident.Load(); id != "oscore:01" {
				t.Fatalf("identity at the handler %v, want the provisioned oscore:01", id)
			}
			cur := w.req.x.CurrentIDContext()
			if !bytes.Equal(cur, w.rsp.x.CurrentIDContext()) {
				t.Fatalf("ID contexts differ: requester %x responder %x", cur, w.rsp.x.CurrentIDContext())
			}
			if tc.newIDCtx == bytes.Equal(cur, oldID) {
				t.Fatalf("ID context %x → %x (new wanted: %v)", oldID, cur, tc.newIDCtx)
			}
			if echo := w.rsp.conn.Counter(oscore.EventEchoChallenge) > 0; echo != tc.echoAtRsp {
				t.Fatalf("Echo challenge at the responder: %v, want %v", echo, tc.echoAtRsp)
			}
			for _, side := range []struct {
				name string
				s    *b2Side
			}{
				{"requester", w.req},
				{"responder", w.rsp},
			} {
				t.Run(side.name, func(t *testing.T) {
					if n := side.s.conn.Counter(oscore.EventReplay); n != 0 {
						t.Fatalf("replay refusals: %v", side.s.conn.Stats())
					}
				})
			}
			// And it goes on without another run.
			w.get(t)
			if w.rsp.conn.Counter(oscore.EventB2Response1) != c0.response1+tc.want.response1 {
				t.Fatal("a second run")
			}
		})
	}
	// Bounded store: one ID Context and the bounds of the keys in use.
	if b, ids := w.req.store.Len(); b > 1 || ids != 1 {
		t.Fatalf("requester store holds %d bounds and %d ID contexts", b, ids)
	}
}

// TestAppendixB2BadInput: tampered, replayed and forged B.2 messages are
// refused (never executed) and counted; a replayed request #1 gets only
// another response #1; a replayed request #2 meets the replay window.
func TestAppendixB2BadInput(t *testing.T) {
	w := newB2World(t)
	w.get(t)
	var req1, req2 []byte
	for len(w.req.raw.sent) > 0 {
		b := <-w.req.raw.sent
		m := decode(t, b)
		if m.Code != codes.POST {
			continue
		}
		o := oscoreOpt(t, m)
		switch {
		case len(o.KIDContext) == 9 && req1 == nil:
			req1 = b
		case len(o.KIDContext) == 17 && req2 == nil:
			req2 = b
		}
	}
	if req1 == nil || req2 == nil {
		t.Fatal("request #1 or #2 not seen on the wire")
	}
	forgeKC := func(b []byte, f func(kc []byte)) []byte {
		return editOption(t, b, func(v []byte) []byte {
			o, _ := oscore.ParseOption(v)
			kc := append([]byte(nil), o.KIDContext...)
			f(kc)
			o.KIDContext = kc
			out, _ := o.Marshal()
			return out
		})
	}
	for _, tc := range []struct {
		name  string
		msg   []byte
		code  codes.Code
		event oscore.Event
	}{
		{"request #1 replayed: another response #1, not executed", editOption(t, req1, func(v []byte) []byte { return v }), codes.Changed, oscore.EventB2Response1},
		{"request #2 replayed after the run", editOption(t, req2, func(v []byte) []byte { return v }), codes.Unauthorized, oscore.EventReplay},
		{"request #1 with tampered ciphertext", func() []byte {
			b := editOption(t, req1, func(v []byte) []byte { return v })
			b[len(b)-1] ^= 1
			return b
		}(), codes.BadRequest, oscore.EventDecryptFailed},
		{"request #2 with a tampered R3", forgeKC(req2, func(kc []byte) { kc[16] ^= 1 }), codes.BadRequest, oscore.EventDecryptFailed},
		{"request #2 with a tampered R2", forgeKC(req2, func(kc []byte) { kc[1] ^= 1 }), codes.BadRequest, oscore.EventDecryptFailed},
		{"request #1 with a kid context that is not a bstr", forgeKC(req1, func(kc []byte) { kc[0] = 0x68 }), codes.BadRequest, oscore.EventDecryptFailed},
		{"request #1 for an unknown kid", setKID(t, req1, 0x42), codes.Unauthorized, oscore.EventNoContext},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runs, before := w.runs.Load(), w.rsp.conn.Counter(tc.event)
			resp := injectTo(t, w.evil, w.rsp.raw.LocalAddr(), tc.msg)
			if resp.Code != tc.code {
				t.Fatalf("answer %v, want %v", resp.Code, tc.code)
			}
			if w.rsp.conn.Counter(tc.event) != before+1 {
				t.Fatalf("%v not counted: %v", tc.event, w.rsp.conn.Stats())
			}
			if w.runs.Load() != runs {
				t.Fatal("the handler ran")
			}
		})
	}
	// (Tampered response #1 from the right address: TestAppendixB2TamperedResponse1.)
	t.Run("forged response #1 from another address: dropped, the request completes", func(t *testing.T) {
		before := w.req.conn.Counter(oscore.EventUnexpected)
		for len(w.req.raw.sent) > 0 {
			<-w.req.raw.sent
		}
		type result struct {
			resp *bearer.Response
			err  error
		}
		done := make(chan result, 1)
		go func() {
			resp, err := w.req.ep.Get(ctxT(t), w.rsp.raw.LocalAddr(), "/3/0/0")
			done <- result{resp, err}
		}()
		// The attacker answers first with a response #1 it cannot protect.
		var m *message.Message
		for m == nil {
			b := <-w.req.raw.sent
			if x := decode(t, b); x.Code == codes.POST {
				m = x
			}
		}
		forged := &message.Message{Code: codes.Changed, Type: message.Acknowledgement, MessageID: m.MessageID, Token: m.Token,
			Options: message.Options{{ID: oscore.OptionNumber, Value: append([]byte{0x10, 0x09, 0x48}, bytes.Repeat([]byte{0xaa}, 8)...)}},
			Payload: bytes.Repeat([]byte{0x55}, 12)}
		_, _ = w.evil.WriteTo(encode(t, forged), w.req.raw.LocalAddr())
		if r := <-done; r.err != nil || r.resp.Code != codes.Content {
			t.Fatalf("answer %v %v", r.resp, r.err)
		}
		waitFor(t, func() bool { return w.req.conn.Counter(oscore.EventUnexpected) > before })
	})
}

// TestAppendixB2NotEnabled: a response #1 to a context without Appendix
// B.2 is refused (bad option) and the request fails instead of switching
// keys; B.2 and a plain context cannot share a Recipient ID in a Conn.
func TestAppendixB2NotEnabled(t *testing.T) {
	dp, sp := pair()
	b2, _ := oscore.NewContext(sp, oscore.NewMemoryStore(), oscore.WithRederivation())
	plain, _ := oscore.NewContext(sp, oscore.NewMemoryStore())
	hub, err := pipe.NewHub(pipe.WithParams(testParams()))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := hub.Conn("a")
	if _, err := oscore.New(a, oscore.WithContext(b2), oscore.WithContext(plain)); err == nil {
		t.Fatal("two contexts with one Recipient ID and Appendix B.2 accepted")
	}
	if _, err := oscore.NewContext(dp, struct{ oscore.SeqStore }{oscore.NewMemoryStore()}, oscore.WithRederivation()); err == nil {
		t.Fatal("WithRederivation accepted a store without IDContextStore")
	}
	// A device without B.2 against a responder with B.2 and no state.
	b, _ := hub.Conn("b")
	dev, _ := oscore.NewContext(dp, oscore.NewMemoryStore(), oscore.WithTrustedReplayWindow())
	dconn, _ := oscore.New(b, oscore.WithPeer(a.LocalAddr(), dev))
	sconn, _ := oscore.New(a, oscore.WithPeer(b.LocalAddr(), b2))
	dep, _ := bearer.NewEndpoint(dconn)
	sep, _ := bearer.NewEndpoint(sconn, bearer.WithHandler(bearer.HandlerFunc(func(rw bearer.ResponseWriter, r *bearer.Request) {
		t.Error("executed")
	})))
	t.Cleanup(func() { dep.Close(); sep.Close() })
	ctx, cancel := context.WithTimeout(ctxT(t), time.Second)
	defer cancel()
	if resp, err := dep.Get(ctx, a.LocalAddr(), "/x"); err == nil {
		t.Fatalf("answered %v", resp)
	}
	if dconn.Counter(oscore.EventBadOption) < 1 || sconn.Counter(oscore.EventB2Response1) < 1 {
		t.Fatalf("device %v, responder %v", dconn.Stats(), sconn.Stats())
	}
}

var timeZero time.Time

// noCloseTap is noClose over a tap: a side restarts on the same raw pipe.
type noCloseTap struct {
	*tap
	closed atomic.Bool
}

func (n *noCloseTap) Close() error {
	n.closed.Store(true)
	return n.tap.SetReadDeadline(time.Now())
}

func (n *noCloseTap) ReadFrom(p []byte) (int, net.Addr, error) {
	k, a, err := n.tap.ReadFrom(p)
	if n.closed.Load() {
		return 0, nil, net.ErrClosed
	}
	return k, a, err
}

// injectTo sends a raw datagram from the attacker node to dst and returns
// the answer.
func injectTo(t *testing.T, evil *pipe.Conn, dst net.Addr, b []byte) *message.Message {
	t.Helper()
	if _, err := evil.WriteTo(b, dst); err != nil {
		t.Fatal(err)
	}
	_ = evil.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	n, _, err := evil.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	return decode(t, buf[:n])
}

func decode(t *testing.T, b []byte) *message.Message {
	t.Helper()
	m := &message.Message{Options: make(message.Options, 0, 8)}
	if _, err := coder.DefaultCoder.Decode(b, m); err != nil {
		t.Fatal(err)
	}
	return m
}

func encode(t *testing.T, m *message.Message) []byte {
	t.Helper()
	n, _ := coder.DefaultCoder.Size(*m)
	b := make([]byte, n)
	if _, err := coder.DefaultCoder.Encode(*m, b); err != nil {
		t.Fatal(err)
	}
	return b
}

func oscoreOpt(t *testing.T, m *message.Message) oscore.OptionValue {
	t.Helper()
	for _, o := range m.Options {
		if o.ID == oscore.OptionNumber {
			v, err := oscore.ParseOption(o.Value)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatal("no OSCORE option")
	return oscore.OptionValue{}
}
