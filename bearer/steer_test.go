package bearer_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/pipe"
)

// readRaw reads one datagram from c within d.
func readRaw(t *testing.T, c *pipe.Conn, d time.Duration) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 2048)
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatalf("read at %s: %v", c.LocalAddr(), err)
	}
	return buf[:n]
}

// TestSteer: a request sent to a sleeping device's old port is re-sent at
// once, with the same message ID and token, to the port the device woke
// up on, and its answer from there completes Do; Abort ends Do at once.
func TestSteer(t *testing.T) {
	slow := fastParams(5*time.Second, 4) // no retransmission within the test
	hub, err := pipe.NewHub(pipe.WithParams(slow))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := hub.Conn("srv")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := bearer.NewEndpoint(sc)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	old, _ := hub.Conn("dev-old")
	cur, _ := hub.Conn("dev-new")
	defer old.Close()
	defer cur.Close()

	t.Run("resend to the new address", func(t *testing.T) {
		st := bearer.NewSteer()
		req := bearer.NewRequest(codes.GET, pipe.Addr("dev-old"), "/3/0")
		req.Token = message.Token("tok1")
		req.SetMessageID(4242)
		req.SetSteer(st)
		type result struct {
			resp *bearer.Response
			err  error
		}
		done := make(chan result, 1)
		go func() {
			r, err := srv.Do(ctxT(t, 10*time.Second), req)
			done <- result{r, err}
		}()
		first := readRaw(t, old, 5*time.Second) // the device sleeps: no answer
		st.Resend(pipe.Addr("dev-new"))
		again := readRaw(t, cur, 2*time.Second)
		if !bytes.Equal(first, again) {
			t.Fatalf("re-send differs from the first transmission:\n%x\n%x", first, again)
		}
		mid, tkl := int32(again[2])<<8|int32(again[3]), int(again[0]&0x0f)
		if mid != 4242 || string(again[4:4+tkl]) != "tok1" {
			t.Fatalf("re-send has MID %d token %q", mid, again[4:4+tkl])
		}
		ack := message.Message{Type: message.Acknowledgement, MessageID: mid, Token: again[4 : 4+tkl], Code: codes.Content, Payload: []byte("awake")}
		b := make([]byte, 64)
		n, err := coder.DefaultCoder.Encode(ack, b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cur.WriteTo(b[:n], pipe.Addr("srv")); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-done:
			if r.err != nil || string(r.resp.Payload) != "awake" || r.resp.Peer.String() != "dev-new" {
				t.Fatalf("Do: %+v %v", r.resp, r.err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("Do did not return after the answer from the new address")
		}
	})

	t.Run("abort", func(t *testing.T) {
		st := bearer.NewSteer()
		req := bearer.NewRequest(codes.GET, pipe.Addr("dev-old"), "/3/0")
		req.SetSteer(st)
		errAsleep := errors.New("asleep")
		done := make(chan error, 1)
		go func() {
			_, err := srv.Do(context.Background(), req)
			done <- err
		}()
		readRaw(t, old, 5*time.Second)
		st.Abort(errAsleep)
		select {
		case err := <-done:
			if !errors.Is(err, errAsleep) {
				t.Fatalf("Do: %v, want the abort error", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("Abort did not end Do")
		}
	})
}
