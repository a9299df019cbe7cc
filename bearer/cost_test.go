package bearer_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/pipe"
)

func encodeMsg(t *testing.T, m message.Message) []byte {
	t.Helper()
	b := make([]byte, 2048)
	n, err := coder.DefaultCoder.Encode(m, b)
	if err != nil {
		t.Fatal(err)
	}
	return b[:n]
}

func decodeMsg(t *testing.T, b []byte) message.Message {
	t.Helper()
	m := message.Message{Options: make(message.Options, 0, 16)}
	if _, err := coder.DefaultCoder.Decode(b, &m); err != nil {
		t.Fatalf("decode % x: %v", b, err)
	}
	return m
}

// expectNothing fails if c receives a datagram within d.
func expectNothing(t *testing.T, c *pipe.Conn, d time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 2048)
	if n, _, err := c.ReadFrom(buf); err == nil {
		t.Fatalf("unexpected datagram % x", buf[:n])
	}
}

// TestNoResponse: RFC 7967. A NON request with No-Response 2 gets no 2.xx
// answer but still its 4.xx; a CON one gets an empty ACK instead of the
// suppressed response; value 0 suppresses nothing.
func TestNoResponse(t *testing.T) {
	hub, err := pipe.NewHub(pipe.WithParams(fastParams(5*time.Second, 0)))
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := hub.Conn("srv")
	mux := bearer.NewServeMux()
	mux.HandleFunc("/ok", func(w bearer.ResponseWriter, r *bearer.Request) { _ = w.WriteResponse(codes.Changed, nil) })
	mux.HandleFunc("/bad", func(w bearer.ResponseWriter, r *bearer.Request) { _ = w.WriteResponse(codes.BadRequest, nil) })
	m := &countMetrics{}
	srv, err := bearer.NewEndpoint(sc, bearer.WithHandler(mux), bearer.WithMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli, _ := hub.Conn("cli")
	defer cli.Close()
	for i, tc := range []struct {
		name      string
		typ       message.Type
		path      string
		nr        []byte // nil: no option
		want      codes.Code
		wantEmpty bool // an empty ACK
		none      bool
	}{
		{"NON 2.xx suppressed", message.NonConfirmable, "ok", []byte{2}, 0, false, true},
		{"NON 4.xx still sent", message.NonConfirmable, "bad", []byte{2}, codes.BadRequest, false, false},
		{"NON 4.xx suppressed", message.NonConfirmable, "bad", []byte{8}, 0, false, true},
		{"NON empty option suppresses nothing", message.NonConfirmable, "ok", []byte{}, codes.Changed, false, false},
		{"NON without option", message.NonConfirmable, "ok", nil, codes.Changed, false, false},
		{"CON 2.xx suppressed: empty ACK", message.Confirmable, "ok", []byte{2}, 0, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := message.Options{{ID: message.URIPath, Value: []byte(tc.path)}}
			if tc.nr != nil {
				opts = opts.Add(message.Option{ID: message.NoResponse, Value: tc.nr})
			}
			mid := int32(100 + i)
			req := message.Message{Type: tc.typ, Code: codes.POST, MessageID: mid, Token: []byte{byte(i), 7}, Options: opts}
			if _, err := cli.WriteTo(encodeMsg(t, req), pipe.Addr("srv")); err != nil {
				t.Fatal(err)
			}
			if tc.none {
				expectNothing(t, cli, 200*time.Millisecond)
				return
			}
			got := decodeMsg(t, readRaw(t, cli, 2*time.Second))
			if tc.wantEmpty {
				if got.Type != message.Acknowledgement || got.Code != codes.Empty || got.MessageID != mid {
					t.Fatalf("got %v %v MID %d, want an empty ACK of %d", got.Type, got.Code, got.MessageID, mid)
				}
				return
			}
			if got.Code != tc.want {
				t.Fatalf("got %v, want %v", got.Code, tc.want)
			}
		})
	}
	if n := m.count(bearer.EventNoResponse); n != 3 {
		t.Fatalf("no_response counted %d, want 3", n)
	}
}

// TestFire: a fire-and-forget NON request returns at once; the peer's
// answer to it is dropped and counted, not reset (a Reset would cost one
// more SMS); an answer to an unknown token is still reset.
func TestFire(t *testing.T) {
	hub, err := pipe.NewHub(pipe.WithParams(fastParams(5*time.Second, 0)))
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := hub.Conn("srv")
	m := &countMetrics{}
	srv, err := bearer.NewEndpoint(sc, bearer.WithMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dev, _ := hub.Conn("dev")
	defer dev.Close()
	req := bearer.NewRequest(codes.POST, pipe.Addr("dev"), "/1/0/8")
	req.Type = message.NonConfirmable
	req.Token = message.Token("trig")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := srv.Fire(ctx, req, time.Minute); err != nil {
		t.Fatal(err)
	}
	got := decodeMsg(t, readRaw(t, dev, 2*time.Second))
	if got.Type != message.NonConfirmable || got.Code != codes.POST || string(got.Token) != "trig" {
		t.Fatalf("fired %v %v %q", got.Type, got.Code, got.Token)
	}
	for _, tc := range []struct {
		name  string
		typ   message.Type
		token string
		reset bool
		ack   bool
	}{
		{"NON answer absorbed", message.NonConfirmable, "trig", false, false},
		{"CON answer acknowledged, not reset", message.Confirmable, "trig", false, true},
		{"unknown token reset", message.NonConfirmable, "other", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ans := message.Message{Type: tc.typ, Code: codes.Changed, MessageID: 900, Token: []byte(tc.token)}
			if _, err := dev.WriteTo(encodeMsg(t, ans), pipe.Addr("srv")); err != nil {
				t.Fatal(err)
			}
			if !tc.reset && !tc.ack {
				expectNothing(t, dev, 200*time.Millisecond)
				return
			}
			r := decodeMsg(t, readRaw(t, dev, 2*time.Second))
			if tc.reset && r.Type != message.Reset || tc.ack && r.Type != message.Acknowledgement {
				t.Fatalf("got %v", r.Type)
			}
		})
	}
	if n := m.count(bearer.EventFiredAnswer); n != 2 {
		t.Fatalf("fired_answer %d, want 2", n)
	}
	bad := bearer.NewRequest(codes.Content, pipe.Addr("dev"), "/x")
	if err := srv.Fire(ctx, bad, 0); err == nil {
		t.Fatal("Fire of a response code accepted")
	}
}

func TestClassify(t *testing.T) {
	msg := func(typ message.Type, code codes.Code, path string, opts ...message.Option) []byte {
		o := message.Options{}
		if path != "" {
			var err error
			buf := make([]byte, 64)
			o, _, err = o.SetPath(buf, path)
			if err != nil {
				t.Fatal(err)
			}
		}
		o = append(o, opts...)
		return encodeMsg(t, message.Message{Type: typ, Code: code, MessageID: 1, Token: []byte{1}, Options: o})
	}
	block := message.Option{ID: message.Block2, Value: []byte{0x16}}
	for _, tc := range []struct {
		name string
		data []byte
		want bearer.Purpose
	}{
		{"trigger", msg(message.NonConfirmable, codes.POST, "/1/0/8"), bearer.PurposeTrigger},
		{"trigger instance 12", msg(message.NonConfirmable, codes.POST, "/1/12/8"), bearer.PurposeTrigger},
		{"CON execute is a request", msg(message.Confirmable, codes.POST, "/1/0/8"), bearer.PurposeRequest},
		{"other execute", msg(message.NonConfirmable, codes.POST, "/3/0/4"), bearer.PurposeRequest},
		{"read", msg(message.Confirmable, codes.GET, "/3/0/0"), bearer.PurposeRequest},
		{"response", msg(message.Acknowledgement, codes.Content, ""), bearer.PurposeResponse},
		{"block response", msg(message.Acknowledgement, codes.Content, "", block), bearer.PurposeBlock},
		{"block request", msg(message.Confirmable, codes.GET, "/5/0/0", block), bearer.PurposeBlock},
		{"empty ACK", []byte{0x60, 0, 0, 1}, bearer.PurposeEmpty},
		{"DTLS handshake", append([]byte{22, 254, 253}, make([]byte, 20)...), bearer.PurposeHandshake},
		{"DTLS alert", append([]byte{21, 254, 253}, make([]byte, 20)...), bearer.PurposeHandshake},
		{"DTLS data", append([]byte{23, 254, 253}, make([]byte, 20)...), bearer.PurposeSecured},
		{"DTLS CID data", append([]byte{25, 254, 253}, make([]byte, 20)...), bearer.PurposeSecured},
		{"garbage", []byte{0xff}, bearer.PurposeRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := bearer.Classify(tc.data); got != tc.want {
				t.Fatalf("%v, want %v", got, tc.want)
			}
		})
	}
	if bearer.Purpose(99).String() != "unknown" || bearer.PurposeTrigger.String() != "trigger" {
		t.Fatal("names")
	}
}

// TestSteerBlock1: a block-wise request follows its Steer block by block:
// the block on the wire is re-sent to the new address, the following
// blocks go there, and an Abort ends it with an *AbortError that says
// how many times the block on the wire went out.
func TestSteerBlock1(t *testing.T) {
	hub, err := pipe.NewHub(pipe.WithParams(fastParams(5*time.Second, 4)))
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := hub.Conn("srv")
	srv, err := bearer.NewEndpoint(sc, bearer.WithBlockSize(16))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	old, _ := hub.Conn("dev-old")
	cur, _ := hub.Conn("dev-new")
	defer old.Close()
	defer cur.Close()
	body := bytes.Repeat([]byte("0123456789abcdef"), 2) // two 16-byte blocks
	st := bearer.NewSteer()
	req := bearer.NewRequest(codes.PUT, pipe.Addr("dev-old"), "/5/0/0")
	req.Payload = body
	req.SetSteer(st)
	done := make(chan error, 1)
	go func() {
		_, err := srv.Do(context.Background(), req)
		done <- err
	}()
	first := readRaw(t, old, 2*time.Second) // block 0 to the sleeping port
	st.Resend(pipe.Addr("dev-new"))
	again := readRaw(t, cur, 2*time.Second)
	if !bytes.Equal(first, again) {
		t.Fatalf("block 0 re-sent differently")
	}
	b0 := decodeMsg(t, again)
	cont := message.Message{Type: message.Acknowledgement, Code: codes.Continue, MessageID: b0.MessageID, Token: b0.Token,
		Options: message.Options{{ID: message.Block1, Value: []byte{0x08}}}} // num 0, M, szx 0
	if _, err := cur.WriteTo(encodeMsg(t, cont), pipe.Addr("srv")); err != nil {
		t.Fatal(err)
	}
	b1 := decodeMsg(t, readRaw(t, cur, 2*time.Second)) // block 1 follows the device
	if v, err := b1.Options.GetUint32(message.Block1); err != nil || v>>4 != 1 {
		t.Fatalf("second datagram is not block 1: %v %v", v, err)
	}
	errAsleep := errors.New("asleep")
	st.Abort(errAsleep)
	select {
	case err := <-done:
		var ab *bearer.AbortError
		if !errors.Is(err, errAsleep) || !errors.As(err, &ab) || ab.Transmissions != 1 || ab.Acked || ab.Blocks != 1 {
			t.Fatalf("Do: %v (%+v)", err, ab)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Abort did not end the block-wise Do")
	}
}

// countMetrics counts events (bearer.Metrics).
type countMetrics struct {
	mu sync.Mutex
	n  map[bearer.Event]int
}

func (m *countMetrics) Count(ev bearer.Event, n int) {
	m.mu.Lock()
	if m.n == nil {
		m.n = map[bearer.Event]int{}
	}
	m.n[ev] += n
	m.mu.Unlock()
}

func (m *countMetrics) Set(bearer.Gauge, int) {}

func (m *countMetrics) count(ev bearer.Event) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n[ev]
}
