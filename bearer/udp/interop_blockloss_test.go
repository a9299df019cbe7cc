package udp_test

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/internal/coapproc"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// dropNth is a Bearer that loses the datagrams it is asked to send whose
// 1-based sequence numbers are in drop.
type dropNth struct {
	bearer.Bearer
	mu   sync.Mutex
	n    int
	drop map[int]bool
}

func (d *dropNth) WriteTo(b []byte, addr net.Addr) (int, error) {
	d.mu.Lock()
	d.n++
	lose := d.drop[d.n]
	d.mu.Unlock()
	if lose {
		return len(b), nil
	}
	return d.Bearer.WriteTo(b, addr)
}

// TestInteropServerBlockLoss loses one of our responses in the middle of a
// Block1 upload and one in the middle of a Block2 download by coap-client:
// libcoap retransmits that block request with the same message ID, and our
// Endpoint must answer it from its duplicate cache without appending the
// block twice or losing its place (RFC 7252 §4.5, RFC 7959).
func TestInteropServerBlockLoss(t *testing.T) {
	cliBin := coapproc.LookPath(t, "coap-client-notls")
	up := randomBytes(t, 8<<10)
	down := randomBytes(t, 8<<10)
	got := make(chan []byte, 2)
	mux := bearer.NewServeMux()
	mux.HandleFunc("/fw", func(w bearer.ResponseWriter, r *bearer.Request) {
		if r.Code == codes.PUT {
			got <- append([]byte(nil), r.Payload...)
			_ = w.WriteResponse(codes.Changed, nil)
			return
		}
		w.SetOption(bearer.ContentFormatOption(message.AppOctets))
		_ = w.WriteResponse(codes.Content, down)
	})
	c, err := udp.Listen("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// 8 KiB in 1,024-byte blocks is 8 exchanges per transfer: lose our 4th
	// datagram (2.31 Continue for block 3 of the upload) and our 13th (the
	// 5th block of the download).
	lossy := &dropNth{Bearer: c, drop: map[int]bool{4: true, 13: true}}
	var m bearer.Counters
	ep, err := bearer.NewEndpoint(lossy, bearer.WithHandler(mux), bearer.WithMetrics(&m))
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	addr := c.LocalAddr().(*net.UDPAddr)
	dir := t.TempDir()
	ctx := testCtx(t)

	in := filepath.Join(dir, "up")
	if err := os.WriteFile(in, up, 0o600); err != nil {
		t.Fatal(err)
	}
	_, log, err := coapproc.Run(ctx, interopTimeout, cliBin, "-B", clientWait, "-m", "put", "-b", "1024", "-f", in, coapURI(addr, "/fw"))
	if err != nil {
		t.Fatalf("upload: %v\n%s", err, log)
	}
	select {
	case b := <-got:
		if !bytes.Equal(b, up) {
			t.Fatalf("handler saw %d bytes, want the exact %d uploaded", len(b), len(up))
		}
	default:
		t.Fatalf("handler not called\n%s", log)
	}
	out := filepath.Join(dir, "down")
	_, log, err = coapproc.Run(ctx, interopTimeout, cliBin, "-B", clientWait, "-b", "1024", "-o", out, coapURI(addr, "/fw"))
	if err != nil {
		t.Fatalf("download: %v\n%s", err, log)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, down) {
		t.Fatalf("coap-client got %d bytes, want the exact %d", len(b), len(down))
	}
	if d := m.Get(bearer.EventDuplicate); d != 2 {
		t.Fatalf("%d duplicates answered, want 2 (one per lost response); events %v", d, m.Snapshot())
	}
	if len(got) != 0 {
		t.Fatal("handler ran twice for the upload")
	}
}

// dropNthRead is a Bearer that loses the received datagrams whose 1-based
// sequence numbers are in drop.
type dropNthRead struct {
	bearer.Bearer
	n    int // only the Endpoint's read loop reads
	drop map[int]bool
}

func (d *dropNthRead) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := d.Bearer.ReadFrom(b)
		if err != nil {
			return n, addr, err
		}
		d.n++
		if !d.drop[d.n] {
			return n, addr, nil
		}
	}
}

// TestInteropClientBlockLoss loses one of our Block1 requests and one of
// coap-server's Block2 responses: our Endpoint retransmits (short
// ACK_TIMEOUT) and both transfers complete exactly.
func TestInteropClientBlockLoss(t *testing.T) {
	srvBin := coapproc.LookPath(t, "coap-server-notls")
	srv := coapproc.StartServer(t, srvBin, "127.0.0.1", "-d", "4")
	c, err := udp.Listen("udp4", "127.0.0.1:0", udp.WithParams(fastParams()))
	if err != nil {
		t.Fatal(err)
	}
	// Writes: lose our 3rd datagram (a Block1 request). Reads: lose the
	// 12th datagram we receive (a Block2 response of the download).
	lossy := &dropNthRead{Bearer: &dropNth{Bearer: c, drop: map[int]bool{3: true}}, drop: map[int]bool{12: true}}
	var m bearer.Counters
	ep, err := bearer.NewEndpoint(lossy, bearer.WithMetrics(&m))
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	ctx := testCtx(t)

	body := randomBytes(t, 8<<10)
	resp, err := ep.Put(ctx, srv.Addr, "/blob", message.AppOctets, body)
	if err != nil || resp.Code != codes.Created {
		t.Fatalf("PUT: %v %v", resp, err)
	}
	resp, err = ep.Get(ctx, srv.Addr, "/blob")
	if err != nil {
		t.Fatal(err)
	}
	if resp.Code != codes.Content || !bytes.Equal(resp.Payload, body) {
		t.Fatalf("GET: %v, %d bytes, equal=%v", resp.Code, len(resp.Payload), bytes.Equal(resp.Payload, body))
	}
	if r := m.Get(bearer.EventRetransmission); r != 2 {
		t.Fatalf("%d retransmissions, want 2; events %v", r, m.Snapshot())
	}
}
