package udp_test

// Interoperability with libcoap (Debian libcoap3-bin): our Endpoint as a
// client of coap-server-notls, and coap-client-notls as a client of our
// Endpoint. Each test starts and kills its own libcoap process on a free
// loopback port; a test is skipped only when the program is not installed.

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/internal/coapproc"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// interopTimeout bounds one interop test, generous for a loaded machine.
const interopTimeout = 45 * time.Second

// clientWait is coap-client's -B: how long it waits for an answer.
const clientWait = "15"

// newEndpoint opens a UDP bearer on host and an Endpoint on it with h (nil
// for a client-only endpoint); both close when the test ends.
func newEndpoint(t *testing.T, network, host string, h bearer.Handler, opts ...bearer.EndpointOption) (*bearer.Endpoint, *net.UDPAddr) {
	t.Helper()
	c, err := udp.Listen(network, net.JoinHostPort(host, "0"))
	if err != nil {
		if strings.Contains(host, ":") {
			t.Skipf("no IPv6 loopback: %v", err)
		}
		t.Fatal(err)
	}
	if h != nil {
		opts = append(opts, bearer.WithHandler(h))
	}
	ep, err := bearer.NewEndpoint(c, opts...)
	if err != nil {
		_ = c.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ep.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		_ = c.Close()
	})
	return ep, c.LocalAddr().(*net.UDPAddr)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), interopTimeout)
	t.Cleanup(cancel)
	return ctx
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func coapURI(addr *net.UDPAddr, path string) string {
	return "coap://" + addr.String() + path
}

// --- our Endpoint as the client of coap-server-notls -----------------------

func TestInteropClientGet(t *testing.T) {
	for _, tc := range []struct{ name, network, host string }{
		{"ipv4", "udp4", "127.0.0.1"},
		{"ipv6", "udp6", "::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srvBin := coapproc.LookPath(t, "coap-server-notls")
			ep, _ := newEndpoint(t, tc.network, tc.host, nil)
			srv := coapproc.StartServer(t, srvBin, tc.host)
			ctx := testCtx(t)

			resp, err := ep.Get(ctx, srv.Addr, "/")
			if err != nil {
				t.Fatal(err)
			}
			if resp.Code != codes.Content || !bytes.Contains(resp.Payload, []byte("libcoap")) {
				t.Fatalf("GET / = %v %q", resp.Code, resp.Payload)
			}
			resp, err = ep.Get(ctx, srv.Addr, "/.well-known/core")
			if err != nil {
				t.Fatal(err)
			}
			if cf, ok := resp.ContentFormat(); !ok || cf != message.AppLinkFormat || !bytes.Contains(resp.Payload, []byte("</time>")) {
				t.Fatalf("GET /.well-known/core = %v cf=%v %q", resp.Code, cf, resp.Payload)
			}
			resp, err = ep.Get(ctx, srv.Addr, "/no/such/thing")
			if err != nil {
				t.Fatal(err)
			}
			if resp.Code != codes.NotFound {
				t.Fatalf("GET unknown = %v", resp.Code)
			}
		})
	}
}

func TestInteropClientPut(t *testing.T) {
	srvBin := coapproc.LookPath(t, "coap-server-notls")
	ep, _ := newEndpoint(t, "udp4", "127.0.0.1", nil)
	srv := coapproc.StartServer(t, srvBin, "127.0.0.1")
	ctx := testCtx(t)

	// libcoap answers the first PUT to its empty /example_data with 2.01
	// Created and later ones with 2.04 Changed.
	for i, want := range []codes.Code{codes.Created, codes.Changed} {
		resp, err := ep.Put(ctx, srv.Addr, "/example_data", message.TextPlain, []byte("streetlight 17 on"))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Code != want {
			t.Fatalf("PUT #%d /example_data = %v %q, want %v", i+1, resp.Code, resp.Payload, want)
		}
	}
	resp, err := ep.Get(ctx, srv.Addr, "/example_data")
	if err != nil {
		t.Fatal(err)
	}
	if resp.Code != codes.Content || string(resp.Payload) != "streetlight 17 on" {
		t.Fatalf("GET /example_data = %v %q", resp.Code, resp.Payload)
	}
	// A NON request gets a NON response.
	req := bearer.NewRequest(codes.GET, srv.Addr, "/example_data")
	req.Type = message.NonConfirmable
	resp, err = ep.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Code != codes.Content || string(resp.Payload) != "streetlight 17 on" {
		t.Fatalf("NON GET = %v %v %q", resp.Type, resp.Code, resp.Payload)
	}
}

// TestInteropClientBlockwise uploads 64 KiB to a dynamic resource of
// coap-server (-d) with Block1 and downloads it back with Block2.
func TestInteropClientBlockwise(t *testing.T) {
	srvBin := coapproc.LookPath(t, "coap-server-notls")
	ep, _ := newEndpoint(t, "udp4", "127.0.0.1", nil)
	srv := coapproc.StartServer(t, srvBin, "127.0.0.1", "-d", "4")
	ctx := testCtx(t)

	body := randomBytes(t, 64<<10)
	resp, err := ep.Put(ctx, srv.Addr, "/big", message.AppOctets, body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Code != codes.Created && resp.Code != codes.Changed {
		t.Fatalf("PUT /big = %v %q", resp.Code, resp.Payload)
	}
	resp, err = ep.Get(ctx, srv.Addr, "/big")
	if err != nil {
		t.Fatal(err)
	}
	if resp.Code != codes.Content || !bytes.Equal(resp.Payload, body) {
		t.Fatalf("GET /big = %v, %d bytes, equal=%v", resp.Code, len(resp.Payload), bytes.Equal(resp.Payload, body))
	}
	resp, err = ep.Delete(ctx, srv.Addr, "/big")
	if err != nil {
		t.Fatal(err)
	}
	if resp.Code != codes.Deleted {
		t.Fatalf("DELETE /big = %v", resp.Code)
	}
}

// --- coap-client-notls as the client of our Endpoint -----------------------

// recorder keeps what a handler saw.
type recorder struct {
	mu   sync.Mutex
	reqs []*bearer.Request
}

func (r *recorder) add(req *bearer.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, req)
}

func (r *recorder) all() []*bearer.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*bearer.Request(nil), r.reqs...)
}

func TestInteropServerGetPut(t *testing.T) {
	cliBin := coapproc.LookPath(t, "coap-client-notls")
	var rec recorder
	mux := bearer.NewServeMux()
	mux.HandleFunc("/hello", func(w bearer.ResponseWriter, r *bearer.Request) {
		rec.add(r)
		w.SetOption(bearer.ContentFormatOption(message.TextPlain))
		_ = w.WriteResponse(codes.Content, []byte("hello from m2mbearer"))
	})
	mux.HandleFunc("/store", func(w bearer.ResponseWriter, r *bearer.Request) {
		rec.add(r)
		if r.Code != codes.PUT {
			_ = w.WriteResponse(codes.MethodNotAllowed, nil)
			return
		}
		_ = w.WriteResponse(codes.Changed, nil)
	})
	for _, tc := range []struct{ name, network, host string }{
		{"ipv4", "udp4", "127.0.0.1"},
		{"ipv6", "udp6", "::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, addr := newEndpoint(t, tc.network, tc.host, mux)
			ctx := testCtx(t)

			out, log, err := coapproc.Run(ctx, interopTimeout, cliBin, "-B", clientWait, coapURI(addr, "/hello"))
			if err != nil {
				t.Fatalf("%v\n%s", err, log)
			}
			if strings.TrimSpace(string(out)) != "hello from m2mbearer" {
				t.Fatalf("GET /hello printed %q\n%s", out, log)
			}
			_, log, err = coapproc.Run(ctx, interopTimeout, cliBin, "-B", clientWait, "-m", "put", "-t", "text/plain",
				"-e", "dim=40%25", coapURI(addr, "/store?x=1"))
			if err != nil {
				t.Fatalf("%v\n%s", err, log)
			}
			reqs := rec.all()
			last := reqs[len(reqs)-1]
			if last.Code != codes.PUT || string(last.Payload) != "dim=40%" || last.Path() != "/store" {
				t.Fatalf("handler saw %v %s %q", last.Code, last.Path(), last.Payload)
			}
			if q := last.Queries(); len(q) != 1 || q[0] != "x=1" {
				t.Fatalf("queries %q", q)
			}
			if cf, ok := optionCF(last.Options); !ok || cf != message.TextPlain {
				t.Fatalf("content format %v %v", cf, ok)
			}
			if last.Peer == nil || !last.Identity.IsZero() {
				t.Fatalf("peer %v identity %v", last.Peer, last.Identity)
			}
			// Unknown path: coap-client reports 4.04 on stderr.
			_, log, _ = coapproc.Run(ctx, interopTimeout, cliBin, "-B", clientWait, coapURI(addr, "/missing"))
			if !strings.Contains(log, "4.04") {
				t.Fatalf("GET /missing: %s", log)
			}
		})
	}
}

func optionCF(opts message.Options) (message.MediaType, bool) {
	cf, err := opts.ContentFormat()
	return cf, err == nil
}

// TestInteropServerBlock1 has coap-client upload files with Block1 at
// several block sizes and checks the handler saw the exact bytes.
func TestInteropServerBlock1(t *testing.T) {
	cliBin := coapproc.LookPath(t, "coap-client-notls")
	got := make(chan []byte, 1)
	mux := bearer.NewServeMux()
	mux.HandleFunc("/fw/package", func(w bearer.ResponseWriter, r *bearer.Request) {
		select {
		case got <- append([]byte(nil), r.Payload...):
		default:
		}
		_ = w.WriteResponse(codes.Changed, nil)
	})
	_, addr := newEndpoint(t, "udp4", "127.0.0.1", mux)
	dir := t.TempDir()
	for _, tc := range []struct {
		size  int
		block string
	}{
		{20000, "1024"},
		{5000, "64"},
		{64 << 10, "512"},
	} {
		t.Run(fmt.Sprintf("%d bytes/block %s", tc.size, tc.block), func(t *testing.T) {
			body := randomBytes(t, tc.size)
			file := filepath.Join(dir, "upload.bin")
			if err := os.WriteFile(file, body, 0o600); err != nil {
				t.Fatal(err)
			}
			ctx := testCtx(t)
			_, log, err := coapproc.Run(ctx, interopTimeout, cliBin, "-B", clientWait, "-m", "put", "-b", tc.block,
				"-f", file, coapURI(addr, "/fw/package"))
			if err != nil {
				t.Fatalf("%d bytes, block %s: %v\n%s", tc.size, tc.block, err, log)
			}
			select {
			case b := <-got:
				if !bytes.Equal(b, body) {
					t.Fatalf("%d bytes, block %s: handler saw %d bytes, equal=false", tc.size, tc.block, len(b))
				}
			default:
				t.Fatalf("%d bytes, block %s: handler not called\n%s", tc.size, tc.block, log)
			}
		})
	}
}

// TestInteropServerBlock2 has coap-client download 64 KiB from our Endpoint,
// which sends it with Block2.
func TestInteropServerBlock2(t *testing.T) {
	cliBin := coapproc.LookPath(t, "coap-client-notls")
	body := randomBytes(t, 64<<10)
	mux := bearer.NewServeMux()
	mux.HandleFunc("/big", func(w bearer.ResponseWriter, _ *bearer.Request) {
		w.SetOption(bearer.ContentFormatOption(message.AppOctets))
		_ = w.WriteResponse(codes.Content, body)
	})
	_, addr := newEndpoint(t, "udp4", "127.0.0.1", mux)
	out := filepath.Join(t.TempDir(), "big.out")
	ctx := testCtx(t)
	_, log, err := coapproc.Run(ctx, interopTimeout, cliBin, "-B", clientWait, "-o", out, coapURI(addr, "/big"))
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, body) {
		t.Fatalf("coap-client got %d bytes, equal=false\n%s", len(b), log)
	}
}
