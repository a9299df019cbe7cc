package udp_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/internal/coapproc"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// TestInteropClientObserveBlock2 observes a 3,000-byte dynamic resource of
// coap-server and changes it with PUT: each notification arrives as the first
// Block2 block and our Endpoint must fetch the rest before the callback sees
// the complete new body (RFC 7959 §3.4).
func TestInteropClientObserveBlock2(t *testing.T) {
	srvBin := coapproc.LookPath(t, "coap-server-notls")
	ep, _ := newEndpoint(t, "udp4", "127.0.0.1", nil)
	srv := coapproc.StartServer(t, srvBin, "127.0.0.1", "-d", "4")
	ctx := testCtx(t)

	v1 := bytes.Repeat([]byte("A"), 3000)
	v2 := bytes.Repeat([]byte("B"), 3000)
	if resp, err := ep.Put(ctx, srv.Addr, "/lamp", message.AppOctets, v1); err != nil || resp.Code != codes.Created {
		t.Fatalf("PUT v1: %v %v", resp, err)
	}
	bodies := make(chan []byte, 8)
	obs, err := ep.Observe(ctx, srv.Addr, "/lamp", func(r *bearer.Response) {
		select {
		case bodies <- r.Payload:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = obs.Cancel(ctx) }()
	next := func(want []byte) {
		t.Helper()
		select {
		case b := <-bodies:
			if !bytes.Equal(b, want) {
				t.Fatalf("callback got %d bytes starting %q, want %d of %q", len(b), b[:min(len(b), 4)], len(want), want[:1])
			}
		case <-ctx.Done():
			t.Fatal("no notification before the deadline")
		}
	}
	next(v1)
	if resp, err := ep.Put(ctx, srv.Addr, "/lamp", message.AppOctets, v2); err != nil || resp.Code != codes.Changed {
		t.Fatalf("PUT v2: %v %v", resp, err)
	}
	next(v2)
}

// TestInteropServerObserveBlock2 has coap-client observe a resource of ours
// whose notifications (2,500 bytes) do not fit one block: coap-client must
// fetch the remaining blocks of each from our Endpoint.
func TestInteropServerObserveBlock2(t *testing.T) {
	cliBin := coapproc.LookPath(t, "coap-client-notls")
	body := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, 2500) }
	observers := make(chan *bearer.Observer, 1)
	mux := bearer.NewServeMux()
	mux.HandleFunc("/big", func(w bearer.ResponseWriter, r *bearer.Request) {
		if o, err := w.Observe(); err == nil {
			select {
			case observers <- o:
			default:
			}
		}
		_ = w.WriteResponse(codes.Content, body(0))
	})
	_, addr := newEndpoint(t, "udp4", "127.0.0.1", mux)
	ctx := testCtx(t)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(stop); wg.Wait() })
	wg.Go(func() {
		var o *bearer.Observer
		select {
		case o = <-observers:
		case <-stop:
			return
		}
		for i := 1; i <= 2; i++ {
			select {
			case <-time.After(300 * time.Millisecond): // pacing between notifications
			case <-stop:
				return
			}
			nctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := o.Notify(nctx, codes.Content, body(i))
			cancel()
			if err != nil {
				t.Errorf("Notify %d: %v", i, err)
				return
			}
		}
	})
	file := filepath.Join(t.TempDir(), "out")
	_, log, err := coapproc.Run(ctx, interopTimeout, cliBin, "-B", clientWait, "-s", "2", "-o", file, coapURI(addr, "/big"))
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	want := append(append(body(0), body(1)...), body(2)...)
	if !bytes.Equal(got, want) {
		t.Fatalf("coap-client wrote %d bytes, want %d (three complete 2,500-byte bodies)\n%s", len(got), len(want), log)
	}
}
