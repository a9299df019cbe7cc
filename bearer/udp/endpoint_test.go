package udp_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// TestDialedEndpointDeadPeer runs an Endpoint on a dialed Conn whose peer is
// not listening: the kernel's port-unreachable reports must not stop the
// Endpoint's read loop; the request times out after the bearer's
// MAX_TRANSMIT_WAIT and the Endpoint keeps working once the peer is there.
func TestDialedEndpointDeadPeer(t *testing.T) {
	// Reserve a port, then free it so nothing listens there.
	probe, err := udp.Listen("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.LocalAddr().String()
	_ = probe.Close()

	p := fastParams()
	p.MaxRetransmit = 1 // MAX_TRANSMIT_WAIT = 200 ms × 3 × 1.5 = 900 ms
	ctx := testCtx(t)
	c, err := udp.Dial(ctx, "udp4", addr, udp.WithParams(p))
	if err != nil {
		t.Fatal(err)
	}
	ep, err := bearer.NewEndpoint(c)
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()

	start := time.Now()
	_, err = ep.Get(ctx, c.RemoteAddr(), "/rd")
	if !errors.Is(err, bearer.ErrTimeout) {
		t.Fatalf("Get to a dead peer: %v, want ErrTimeout", err)
	}
	t.Logf("timed out after %v; refused reports absorbed: %d", time.Since(start).Round(time.Millisecond), c.Stats().Refused)
	select {
	case <-ep.Done():
		t.Fatal("Endpoint read loop stopped")
	default:
	}

	// The peer comes up on that port: the same Endpoint now gets answers.
	srvConn, err := udp.Listen("udp4", addr)
	if err != nil {
		t.Skipf("port %s taken in between: %v", addr, err)
	}
	mux := bearer.NewServeMux()
	mux.HandleFunc("/rd", func(w bearer.ResponseWriter, _ *bearer.Request) {
		w.SetOption(bearer.ContentFormatOption(message.TextPlain))
		_ = w.WriteResponse(codes.Content, []byte("up"))
	})
	srv, err := bearer.NewEndpoint(srvConn, bearer.WithHandler(mux))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	resp, err := ep.Get(rctx, c.RemoteAddr(), "/rd")
	if err != nil || resp.Code != codes.Content || string(resp.Payload) != "up" {
		t.Fatalf("Get after the peer came up: %v %v", resp, err)
	}
}
