package bearer_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/pipe"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

func TestPing(t *testing.T) {
	p := newPair(t, echoHandler(), []pipe.Option{pipe.WithParams(fastParams(50*time.Millisecond, 4))})
	if err := p.cli.Ping(ctxT(t, 10*time.Second), p.sconn.LocalAddr()); err != nil {
		t.Fatal(err)
	}
}

// rawPeer sends hand-made datagrams to an endpoint and reads its replies.
type rawPeer struct {
	t    testing.TB
	conn *pipe.Conn
	to   net.Addr
}

func (r *rawPeer) send(b []byte) {
	r.t.Helper()
	if _, err := r.conn.WriteTo(b, r.to); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawPeer) sendMsg(m message.Message) {
	r.t.Helper()
	buf := make([]byte, 2048)
	n, err := coder.DefaultCoder.Encode(m, buf)
	if err != nil {
		r.t.Fatal(err)
	}
	r.send(buf[:n])
}

// recv returns the next reply, or nil after wait.
func (r *rawPeer) recv(wait time.Duration) *message.Message {
	r.t.Helper()
	buf := make([]byte, 65536)
	_ = r.conn.SetReadDeadline(time.Now().Add(wait))
	n, _, err := r.conn.ReadFrom(buf)
	if err != nil {
		return nil
	}
	var m message.Message
	m.Options = make(message.Options, 0, 16)
	if _, err := coder.DefaultCoder.Decode(append([]byte(nil), buf[:n]...), &m); err != nil {
		r.t.Fatalf("endpoint sent an invalid datagram % x: %v", buf[:n], err)
	}
	return &m
}

func newRaw(t *testing.T, h bearer.Handler, params bearer.Params, opts ...bearer.EndpointOption) (*rawPeer, *bearer.Counters) {
	a, b, err := pipe.New(pipe.WithParams(params))
	if err != nil {
		t.Fatal(err)
	}
	met := new(bearer.Counters)
	e, err := bearer.NewEndpoint(a, append([]bearer.EndpointOption{bearer.WithHandler(h), bearer.WithMetrics(met)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(); _ = b.Close() })
	return &rawPeer{t: t, conn: b, to: a.LocalAddr()}, met
}

func TestMessageLayerRules(t *testing.T) {
	var runs atomic.Int64
	h := bearer.HandlerFunc(func(w bearer.ResponseWriter, r *bearer.Request) {
		runs.Add(1)
		_ = w.WriteResponse(codes.Content, []byte("ok"))
	})
	params := fastParams(time.Second, 4)
	get := func(typ message.Type, mid int32, opts ...message.Option) message.Message {
		return message.Message{Type: typ, Code: codes.GET, MessageID: mid, Token: []byte{1, 2}, Options: opts}
	}
	type want struct {
		typ  message.Type
		code codes.Code
		mid  int32 // -1: any
	}
	tests := []struct {
		name  string
		send  [][]byte
		msgs  []message.Message
		want  []want // replies in order; none expected after
		runs  int64
		event bearer.Event
	}{
		{name: "CON GET piggybacked", msgs: []message.Message{get(message.Confirmable, 100)}, want: []want{{message.Acknowledgement, codes.Content, 100}}, runs: 1},
		{name: "NON GET gets NON", msgs: []message.Message{get(message.NonConfirmable, 101)}, want: []want{{message.NonConfirmable, codes.Content, -1}}, runs: 1},
		{name: "duplicate CON gets cached reply", msgs: []message.Message{get(message.Confirmable, 102), get(message.Confirmable, 102)},
			want: []want{{message.Acknowledgement, codes.Content, 102}, {message.Acknowledgement, codes.Content, 102}}, runs: 1, event: bearer.EventDuplicate},
		{name: "reused MID with another token is new", msgs: []message.Message{get(message.Confirmable, 120), {Type: message.Confirmable, Code: codes.GET, MessageID: 120, Token: []byte{3}}},
			want: []want{{message.Acknowledgement, codes.Content, 120}, {message.Acknowledgement, codes.Content, 120}}, runs: 2},
		{name: "duplicate NON ignored", msgs: []message.Message{get(message.NonConfirmable, 103), get(message.NonConfirmable, 103)},
			want: []want{{message.NonConfirmable, codes.Content, -1}}, runs: 1, event: bearer.EventDuplicate},
		{name: "ping gets RST", msgs: []message.Message{{Type: message.Confirmable, Code: codes.Empty, MessageID: 104}}, want: []want{{message.Reset, codes.Empty, 104}}},
		{name: "unknown critical option 4.02", msgs: []message.Message{get(message.Confirmable, 105, message.Option{ID: 2049, Value: []byte{1}})},
			want: []want{{message.Acknowledgement, codes.BadOption, 105}}, event: bearer.EventBadOption},
		{name: "unknown elective option ignored", msgs: []message.Message{get(message.Confirmable, 106, message.Option{ID: 2048, Value: []byte{1}})},
			want: []want{{message.Acknowledgement, codes.Content, 106}}, runs: 1},
		{name: "Proxy-Uri 5.05", msgs: []message.Message{get(message.Confirmable, 107, bearer.StringOption(message.ProxyURI, "coap://x/"))},
			want: []want{{message.Acknowledgement, codes.ProxyingNotSupported, 107}}},
		{name: "truncated CON header dropped", send: [][]byte{{0x40, 0x01, 0x00}}, event: bearer.EventDropMalformed},
		{name: "bad version dropped", send: [][]byte{{0x80, 0x01, 0x00, 0x01}}, event: bearer.EventDropMalformed},
		{name: "token length 9 CON gets RST", send: [][]byte{{0x49, 0x01, 0x01, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 9}}, want: []want{{message.Reset, codes.Empty, 0x108}}, event: bearer.EventDropMalformed},
		{name: "token length 9 NON dropped", send: [][]byte{{0x59, 0x01, 0x01, 0x09, 1, 2, 3, 4, 5, 6, 7, 8, 9}}, event: bearer.EventDropMalformed},
		{name: "payload marker without payload CON gets RST", send: [][]byte{{0x40, 0x01, 0x01, 0x0a, 0xff}}, want: []want{{message.Reset, codes.Empty, 0x10a}}, event: bearer.EventDropMalformed},
		{name: "bad option delta 15 CON gets RST", send: [][]byte{{0x40, 0x01, 0x01, 0x0b, 0xf1, 0x00}}, want: []want{{message.Reset, codes.Empty, 0x10b}}, event: bearer.EventDropMalformed},
		{name: "option length past end NON dropped", send: [][]byte{{0x50, 0x01, 0x01, 0x0c, 0xb5, 'a'}}, event: bearer.EventDropMalformed},
		{name: "reserved class 7 CON gets RST", send: [][]byte{{0x40, 0xe0, 0x01, 0x0d}}, want: []want{{message.Reset, codes.Empty, 0x10d}}, event: bearer.EventDropUnexpected},
		{name: "unknown ACK ignored", send: [][]byte{{0x60, 0x00, 0x01, 0x0e}}, event: bearer.EventDropUnknownACK},
		{name: "request in ACK ignored", send: [][]byte{{0x60, 0x01, 0x01, 0x0f}}, event: bearer.EventDropUnexpected},
		{name: "unexpected CON response gets RST", msgs: []message.Message{{Type: message.Confirmable, Code: codes.Content, MessageID: 110, Token: []byte{9}}},
			want: []want{{message.Reset, codes.Empty, 110}}, event: bearer.EventDropUnexpected},
		{name: "empty NON dropped", send: [][]byte{{0x50, 0x00, 0x01, 0x11}}, event: bearer.EventDropMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runs.Store(0)
			raw, met := newRaw(t, h, params)
			// Message i is sent after reply i-1 arrived (a duplicate sent while
			// the handler runs is ignored; one sent later gets the cached reply).
			for i := 0; i < len(tc.send)+len(tc.msgs) || i < len(tc.want); i++ {
				switch {
				case i < len(tc.send):
					raw.send(tc.send[i])
				case i < len(tc.send)+len(tc.msgs):
					raw.sendMsg(tc.msgs[i-len(tc.send)])
				}
				if i >= len(tc.want) {
					continue
				}
				w := tc.want[i]
				m := raw.recv(5 * time.Second)
				if m == nil {
					t.Fatalf("reply %d: none", i)
				}
				if m.Type != w.typ || m.Code != w.code || (w.mid >= 0 && m.MessageID != w.mid) {
					t.Fatalf("reply %d: %v %v mid %d, want %v %v mid %d", i, m.Type, m.Code, m.MessageID, w.typ, w.code, w.mid)
				}
			}
			if m := raw.recv(30 * time.Millisecond); m != nil {
				t.Fatalf("unexpected extra reply %v", m)
			}
			if runs.Load() != tc.runs {
				t.Fatalf("handler ran %d times, want %d", runs.Load(), tc.runs)
			}
			// The read loop counts the event when it handles the message,
			// which may be after the silence above (nothing answers an
			// ignored message): wait for it.
			for deadline := time.Now().Add(5 * time.Second); tc.event != 0 && met.Get(tc.event) == 0; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("event %v not counted: %v", tc.event, met.Snapshot())
				}
			}
		})
	}
}

// newClientPipe is an Endpoint (the client) on one end of a pipe and the
// bare other end (a peer the test answers for by hand).
func newClientPipe(t *testing.T) (*bearer.Endpoint, *pipe.Conn) {
	t.Helper()
	a, b, err := pipe.New(pipe.WithParams(fastParams(time.Second, 4)))
	if err != nil {
		t.Fatal(err)
	}
	cli, err := bearer.NewEndpoint(b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close(); a.Close() })
	return cli, a
}

func TestResetFailsExchange(t *testing.T) {
	cli, a := newClientPipe(t)
	go func() {
		buf := make([]byte, 1500)
		n, from, err := a.ReadFrom(buf)
		if err != nil || n < 4 {
			return
		}
		_, _ = a.WriteTo([]byte{0x70, 0, buf[2], buf[3]}, from)
	}()
	_, err := cli.Get(ctxT(t, 10*time.Second), a.LocalAddr(), "/x")
	if !errors.Is(err, bearer.ErrReset) {
		t.Fatalf("err = %v, want ErrReset", err)
	}
}

func TestResponseWithUnknownCriticalOptionRejected(t *testing.T) {
	for _, separate := range []bool{false, true} {
		t.Run(fmt.Sprintf("separate=%v", separate), func(t *testing.T) {
			a, b, err := pipe.New(pipe.WithParams(fastParams(time.Second, 4)))
			if err != nil {
				t.Fatal(err)
			}
			cli, err := bearer.NewEndpoint(b)
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			raw := &rawPeer{t: t, conn: a, to: b.LocalAddr()}
			errc := make(chan error, 1)
			go func() {
				_, err := cli.Get(context.Background(), a.LocalAddr(), "/x")
				errc <- err
			}()
			req := raw.recv(5 * time.Second)
			if req == nil {
				t.Fatal("no request")
			}
			bad := message.Options{{ID: 2049, Value: []byte{1}}}
			if separate {
				raw.send([]byte{0x60, 0, byte(req.MessageID >> 8), byte(req.MessageID)})
				raw.sendMsg(message.Message{Type: message.Confirmable, Code: codes.Content, MessageID: 77, Token: req.Token, Options: bad})
				if m := raw.recv(5 * time.Second); m == nil || m.Type != message.Reset || m.MessageID != 77 {
					t.Fatalf("bad CON response not rejected with RST: %v", m)
				}
			} else {
				raw.sendMsg(message.Message{Type: message.Acknowledgement, Code: codes.Content, MessageID: req.MessageID, Token: req.Token, Options: bad})
			}
			if err := <-errc; !errors.Is(err, bearer.ErrBadResponse) {
				t.Fatalf("err %v, want ErrBadResponse", err)
			}
		})
	}
}

// TestDuplicateWhileHandlerRunsGetsEmptyACK: a retransmission that arrives
// while the handler still runs is acknowledged at once (RFC 7252 §4.5) and
// the response follows as a separate CON.
func TestDuplicateWhileHandlerRunsGetsEmptyACK(t *testing.T) {
	release := make(chan struct{})
	var runs atomic.Int64
	h := bearer.HandlerFunc(func(w bearer.ResponseWriter, r *bearer.Request) {
		runs.Add(1)
		<-release
		_ = w.WriteResponse(codes.Content, []byte("done"))
	})
	raw, _ := newRaw(t, h, fastParams(40*time.Millisecond, 4), bearer.WithLimits(bearer.Limits{SeparateAfter: time.Minute}))
	req := message.Message{Type: message.Confirmable, Code: codes.GET, MessageID: 42, Token: []byte{4, 2}}
	raw.sendMsg(req)
	raw.sendMsg(req) // a network duplicate: dropped
	if m := raw.recv(30 * time.Millisecond); m != nil {
		t.Fatalf("reply before the handler finished: %v", m)
	}
	time.Sleep(20 * time.Millisecond) // ACK_TIMEOUT/2 of fastParams(40ms)
	raw.sendMsg(req)                  // the client's retransmission
	m := raw.recv(5 * time.Second)
	if m == nil || m.Type != message.Acknowledgement || m.Code != codes.Empty || m.MessageID != 42 {
		t.Fatalf("duplicate not acknowledged with an empty ACK: %v", m)
	}
	close(release)
	m = raw.recv(5 * time.Second)
	if m == nil || m.Type != message.Confirmable || m.Code != codes.Content || string(m.Payload) != "done" {
		t.Fatalf("separate response %v", m)
	}
	raw.send([]byte{0x60, 0, byte(m.MessageID >> 8), byte(m.MessageID)})
	if runs.Load() != 1 {
		t.Fatalf("handler ran %d times", runs.Load())
	}
}

// TestEmptyACKThenNothing: a peer acknowledges a request with an empty ACK
// and never sends the separate response (Wakaama's client does so for
// FETCH and iPATCH). When the caller's deadline ends the wait, the error
// says the request was acknowledged and the separate response did not
// come, and is still a deadline; a cancelled context stays a cancel.
func TestEmptyACKThenNothing(t *testing.T) {
	tests := []struct {
		name     string
		cancel   bool // cancel instead of a deadline
		wantOp   string
		wantCanc bool
	}{
		{"deadline", false, "separate response", false},
		{"cancel", true, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cli, a := newClientPipe(t)
			acked := make(chan struct{})
			go func() {
				buf := make([]byte, 1500)
				n, from, err := a.ReadFrom(buf)
				if err != nil || n < 4 {
					return
				}
				_, _ = a.WriteTo([]byte{0x60, 0, buf[2], buf[3]}, from) // empty ACK, same MID
				close(acked)
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			if tc.cancel {
				go func() {
					select {
					case <-acked:
						cancel()
					case <-time.After(10 * time.Second):
					}
				}()
			}
			req := bearer.NewRequest(codes.FETCH, a.LocalAddr(), "/")
			_, err := cli.Do(ctx, req)
			var te *bearer.TimeoutError
			switch {
			case tc.wantCanc:
				if !errors.Is(err, context.Canceled) || errors.As(err, &te) {
					t.Fatalf("err = %v, want context.Canceled", err)
				}
			default:
				if !errors.As(err, &te) || te.Op != tc.wantOp || !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("err = %#v, want a TimeoutError for the %s that is a deadline", err, tc.wantOp)
				}
			}
		})
	}
}
