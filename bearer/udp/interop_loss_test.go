package udp_test

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/internal/coapproc"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// fastParams are RFC 7252 parameters with a short ACK_TIMEOUT so that
// retransmission tests finish quickly; the schedule is the same.
func fastParams() bearer.Params {
	p := bearer.UDPParams("udp")
	p.AckTimeout = 200 * time.Millisecond
	p.ProcessingDelay = p.AckTimeout
	return p
}

// TestInteropClientRetransmit loses datagrams on our side of the path to
// coap-server: our CON request (our Endpoint must retransmit it with the
// bearer's ACK_TIMEOUT) or the server's piggybacked response (we retransmit
// the same message ID and libcoap must answer it again from its cache).
func TestInteropClientRetransmit(t *testing.T) {
	srvBin := coapproc.LookPath(t, "coap-server-notls")
	srv := coapproc.StartServer(t, srvBin, "127.0.0.1")
	for _, tc := range []struct {
		name                  string
		dropWrites, dropReads int32
		wantRetransmits       int64
	}{
		{"request lost twice", 2, 0, 2},
		{"response lost", 0, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := udp.Listen("udp4", "127.0.0.1:0", udp.WithParams(fastParams()))
			if err != nil {
				t.Fatal(err)
			}
			lossy := &lossyBearer{Bearer: c}
			lossy.writes.Store(tc.dropWrites)
			lossy.reads.Store(tc.dropReads)
			var m bearer.Counters
			ep, err := bearer.NewEndpoint(lossy, bearer.WithMetrics(&m))
			if err != nil {
				t.Fatal(err)
			}
			defer ep.Close()
			ctx := testCtx(t)
			resp, err := ep.Get(ctx, srv.Addr, "/")
			if err != nil {
				t.Fatal(err)
			}
			if resp.Code != codes.Content || !bytes.Contains(resp.Payload, []byte("libcoap")) {
				t.Fatalf("GET / = %v %q", resp.Code, resp.Payload)
			}
			if r := m.Get(bearer.EventRetransmission); r != tc.wantRetransmits {
				t.Fatalf("%d retransmissions, want %d", r, tc.wantRetransmits)
			}
		})
	}
}

// lossyBearer is a Bearer that loses the first datagrams it is asked to
// send (writes) and the first ones it receives (reads), as a lossy
// network would.
type lossyBearer struct {
	bearer.Bearer
	writes, reads atomic.Int32
}

func (d *lossyBearer) WriteTo(b []byte, addr net.Addr) (int, error) {
	if d.writes.Add(-1) >= 0 {
		return len(b), nil
	}
	return d.Bearer.WriteTo(b, addr)
}

func (d *lossyBearer) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := d.Bearer.ReadFrom(b)
		if err != nil || d.reads.Add(-1) < 0 {
			return n, addr, err
		}
	}
}

// TestInteropServerDuplicate loses our first response: coap-client
// retransmits its request with the same message ID, and our Endpoint must
// answer it from its duplicate cache without running the handler again
// (RFC 7252 §4.5).
func TestInteropServerDuplicate(t *testing.T) {
	cliBin := coapproc.LookPath(t, "coap-client-notls")
	c, err := udp.Listen("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lossy := &lossyBearer{Bearer: c}
	lossy.writes.Store(1)
	var calls atomic.Int32
	var m bearer.Counters
	ep, err := bearer.NewEndpoint(lossy, bearer.WithMetrics(&m), bearer.WithHandler(bearer.HandlerFunc(
		func(w bearer.ResponseWriter, r *bearer.Request) {
			n := calls.Add(1)
			_ = w.WriteResponse(codes.Changed, []byte{byte('0' + n)})
		})))
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	ctx := testCtx(t)
	out, log, err := coapproc.Run(ctx, interopTimeout, cliBin, "-B", clientWait, "-m", "post", "-e", "toggle",
		coapURI(c.LocalAddr().(*net.UDPAddr), "/lamp"))
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	if calls.Load() != 1 || strings.TrimSuffix(string(out), "\n") != "1" {
		t.Fatalf("handler ran %d times, coap-client printed %q\n%s", calls.Load(), out, log)
	}
	if d := m.Get(bearer.EventDuplicate); d < 1 {
		t.Fatalf("duplicate not counted (%d)", d)
	}
}

// TestInteropServerNONAndEarlyBlock2 covers a NON request from coap-client
// (-N) and a download where coap-client asks for 64-byte blocks from the
// first request (early Block2 negotiation, RFC 7959 §2.4).
func TestInteropServerNONAndEarlyBlock2(t *testing.T) {
	cliBin := coapproc.LookPath(t, "coap-client-notls")
	var mu sync.Mutex
	var types []message.Type
	body := bytes.Repeat([]byte("0123456789abcdef"), 100) // 1,600 bytes
	mux := bearer.NewServeMux()
	mux.HandleFunc("/body", func(w bearer.ResponseWriter, r *bearer.Request) {
		mu.Lock()
		types = append(types, r.Type)
		mu.Unlock()
		_ = w.WriteResponse(codes.Content, body)
	})
	_, addr := newEndpoint(t, "udp4", "127.0.0.1", mux)
	ctx := testCtx(t)

	file := filepath.Join(t.TempDir(), "body")
	pdus, log, err := coapproc.Run(ctx, interopTimeout, cliBin, "-B", clientWait, "-v", "7", "-b", "64", "-o", file, coapURI(addr, "/body"))
	// 1,600 bytes in 25 blocks of 64: the server honoured the early size.
	if !bytes.Contains(pdus, []byte("c:2.05")) || !bytes.Contains(pdus, []byte("Block2:0/M/64")) ||
		!bytes.Contains(pdus, []byte("Block2:24/_/64 ]")) {
		t.Fatalf("not 64-byte blocks:\n%s", pdus)
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	out, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, body) {
		t.Fatalf("-b 64 download: %d bytes, want %d\n%s", len(out), len(body), log)
	}
	// With -v 7 coap-client logs every PDU on stdout (the body goes to
	// the -o file): the answers to a NON request must be NON (RFC 7252
	// §5.2.3), never ACK.
	pdus, log, err = coapproc.Run(ctx, interopTimeout, cliBin, "-B", clientWait, "-N", "-v", "7", "-o", file, coapURI(addr, "/body"))
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	if out, err = os.ReadFile(file); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, body) {
		t.Fatalf("NON download: %d bytes, want %d\n%s", len(out), len(body), log)
	}
	if !bytes.Contains(pdus, []byte("t:NON c:2.05")) || bytes.Contains(pdus, []byte("t:ACK c:2.05")) {
		t.Fatalf("responses to NON requests are not NON:\n%s", pdus)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(types) == 0 || types[len(types)-1] != message.NonConfirmable {
		t.Fatalf("handler saw types %v, want the last NON", types)
	}
}

// TestInteropClientObserveNON observes coap-server's /time with -N (NON
// notifications, every fifth one CON) and deregisters.
func TestInteropClientObserveNON(t *testing.T) {
	srvBin := coapproc.LookPath(t, "coap-server-notls")
	ep, _ := newEndpoint(t, "udp4", "127.0.0.1", nil)
	srv := coapproc.StartServer(t, srvBin, "127.0.0.1", "-N")
	ctx := testCtx(t)
	got := make(chan message.Type, 16)
	obs, err := ep.Observe(ctx, srv.Addr, "/time", func(r *bearer.Response) {
		select {
		case got <- r.Type:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	seenNON := false
	for i := 0; i < 3; i++ {
		select {
		case typ := <-got:
			if typ == message.NonConfirmable {
				seenNON = true
			}
		case <-ctx.Done():
			t.Fatalf("only %d notifications", i)
		}
	}
	if !seenNON {
		t.Fatal("no NON notification with coap-server -N")
	}
	if err := obs.Cancel(ctx); err != nil && !errors.Is(err, bearer.ErrObservationEnded) {
		t.Fatalf("Cancel: %v", err)
	}
}
