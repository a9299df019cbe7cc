package udp_test

// Interoperability of RFC 9177 Q-Block with libcoap. Debian bookworm's
// libcoap3-bin (4.3.1) is built without Q-Block: its coap-client -L 5
// ("try Q-Block") sends plain Block1/Block2, and its coap-server answers
// a Q-Block option with 4.02 Bad Option, which exercises our fallback to
// RFC 7959. A libcoap built with Q-Block (cmake -DENABLE_Q_BLOCK=ON, as
// upstream 4.3.5 does by default) is used when M2M_COAP_QBLOCK_DIR names
// the directory holding its coap-client and coap-server; the tests then
// check that Q-Block itself was used both ways.

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/internal/coapproc"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
)

// qblockBinary returns libcoap's program name: from M2M_COAP_QBLOCK_DIR
// (a Q-Block build) when set, else the Debian one on PATH; qblock says
// which.
func qblockBinary(t *testing.T, name string) (path string, qblock bool) {
	t.Helper()
	if dir := os.Getenv("M2M_COAP_QBLOCK_DIR"); dir != "" {
		p := filepath.Join(dir, name)
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("M2M_COAP_QBLOCK_DIR: %v", err)
		}
		return p, true
	}
	return coapproc.LookPath(t, name+"-notls"), false
}

// qblockUDPParams are UDP's with Q-Block enabled on the client side.
func qblockUDPParams() bearer.Params {
	p := bearer.UDPParams("udp")
	p.QBlock = bearer.QBlockParams{Enabled: true}
	return p
}

// TestInteropQBlockServer: libcoap's coap-client, asked to try Q-Block
// (-L 5), downloads 16 KiB from our Endpoint and uploads 16 KiB to it.
func TestInteropQBlockServer(t *testing.T) {
	cliBin, qb := qblockBinary(t, "coap-client")
	body := randomBytes(t, 16<<10)
	var rec recorder
	mux := bearer.NewServeMux()
	mux.HandleFunc("/big", func(w bearer.ResponseWriter, r *bearer.Request) {
		rec.add(r)
		if r.Code == codes.PUT {
			_ = w.WriteResponse(codes.Changed, nil)
			return
		}
		w.SetOption(bearer.ContentFormatOption(message.AppOctets))
		_ = w.WriteResponse(codes.Content, body)
	})
	mux.HandleFunc("/.well-known/core", func(w bearer.ResponseWriter, r *bearer.Request) {
		w.SetOption(bearer.ContentFormatOption(message.AppLinkFormat))
		_ = w.WriteResponse(codes.Content, []byte("</big>"))
	})
	met := new(bearer.Counters)
	_, addr := newEndpoint(t, "udp4", "127.0.0.1", mux, bearer.WithMetrics(met))
	ctx := testCtx(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "got")
	if _, log, err := coapproc.Run(ctx, interopTimeout, cliBin, "-L", "5", "-B", clientWait, "-o", out, coapURI(addr, "/big")); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	got, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("coap-client got %d bytes (%v), want the %d served", len(got), err, len(body))
	}
	up := filepath.Join(dir, "up")
	upload := randomBytes(t, 16<<10)
	if err := os.WriteFile(up, upload, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, log, err := coapproc.Run(ctx, interopTimeout, cliBin, "-L", "5", "-B", clientWait, "-m", "put", "-f", up, coapURI(addr, "/big")); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	reqs := rec.all()
	last := reqs[len(reqs)-1]
	if last.Code != codes.PUT || !bytes.Equal(last.Payload, upload) {
		t.Fatalf("handler saw %v with %d bytes, want PUT of %d", last.Code, len(last.Payload), len(upload))
	}
	used := met.Get(bearer.EventQBlockTransfer)
	t.Logf("coap-client (%s): Q-Block bodies %d, RFC 7959 transfers %d", cliBin, used, met.Get(bearer.EventBlockTransfer))
	if qb && used < 2 {
		t.Fatalf("a Q-Block coap-client did not use Q-Block both ways: %v", met.Snapshot())
	}
	if !qb && used == 0 {
		t.Skip("the installed coap-client has no Q-Block (libcoap built without RFC 9177): the RFC 7959 transfers above passed; set M2M_COAP_QBLOCK_DIR to a Q-Block build")
	}
}

// TestInteropQBlockClient: our Endpoint with Q-Block enabled uploads 16
// KiB to a dynamic resource of coap-server -L 5 and downloads it back:
// with Q-Block when the server supports it, else after its 4.02 to the
// probe with RFC 7959.
func TestInteropQBlockClient(t *testing.T) {
	srvBin, qb := qblockBinary(t, "coap-server")
	c, err := udp.Listen("udp4", "127.0.0.1:0", udp.WithParams(qblockUDPParams()))
	if err != nil {
		t.Fatal(err)
	}
	met := new(bearer.Counters)
	ep, err := bearer.NewEndpoint(c, bearer.WithMetrics(met))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ep.Close() })
	srv := coapproc.StartServer(t, srvBin, "127.0.0.1", "-L", "5", "-d", "4")
	ctx := testCtx(t)
	// The probe rides on the first CON request.
	resp, err := ep.Get(ctx, srv.Addr, "/")
	if err != nil || resp.Code != codes.Content {
		t.Fatalf("GET /: %v %v", resp, err)
	}
	supported, known := ep.QBlockSupport(srv.Addr)
	t.Logf("coap-server (%s): Q-Block support %v (known %v), fallbacks %d", srvBin, supported, known, met.Get(bearer.EventQBlockFallback))
	if !known || supported != qb {
		t.Fatalf("Q-Block support %v known %v, want %v", supported, known, qb)
	}
	body := randomBytes(t, 16<<10)
	resp, err = ep.Put(ctx, srv.Addr, "/big", message.AppOctets, body)
	if err != nil || (resp.Code != codes.Created && resp.Code != codes.Changed) {
		t.Fatalf("PUT /big: %v %v", resp, err)
	}
	resp, err = ep.Get(ctx, srv.Addr, "/big")
	if err != nil || resp.Code != codes.Content || !bytes.Equal(resp.Payload, body) {
		t.Fatalf("GET /big: %v, %d bytes (%v)", err, len(resp.Payload), resp.Code)
	}
	used := met.Get(bearer.EventQBlockTransfer)
	t.Logf("Q-Block bodies %d, RFC 7959 transfers %d", used, met.Get(bearer.EventBlockTransfer))
	if qb && used < 2 {
		t.Fatalf("Q-Block not used with a Q-Block coap-server: %v", met.Snapshot())
	}
	if !qb && used != 0 {
		t.Fatalf("Q-Block used with a server without it: %v", met.Snapshot())
	}
}
