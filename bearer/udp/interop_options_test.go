package udp_test

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/internal/coapproc"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// TestInteropServerUnknownOptions sends requests with options our Endpoint
// does not know: a critical one (odd number) must be rejected with 4.02 Bad
// Option and the handler not run; an elective one (even) is ignored
// (RFC 7252 §5.4.1).
func TestInteropServerUnknownOptions(t *testing.T) {
	cliBin := coapproc.LookPath(t, "coap-client-notls")
	var calls atomic.Int32
	done := make(chan struct{}, 4)
	mux := bearer.NewServeMux()
	mux.HandleFunc("/x", func(w bearer.ResponseWriter, _ *bearer.Request) {
		calls.Add(1)
		_ = w.WriteResponse(codes.Content, []byte("ok"))
		done <- struct{}{}
	})
	_, addr := newEndpoint(t, "udp4", "127.0.0.1", mux)
	ctx := testCtx(t)

	out, log, err := coapproc.Run(ctx, interopTimeout, cliBin, "-B", clientWait, "-O", "2000,elective", coapURI(addr, "/x"))
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	if strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("elective unknown option: printed %q\n%s", out, log)
	}
	<-done
	out, log, _ = coapproc.Run(ctx, interopTimeout, cliBin, "-B", clientWait, "-O", "65001,critical", coapURI(addr, "/x"))
	if !strings.Contains(log+string(out), "4.02") {
		t.Fatalf("critical unknown option: stdout %q, stderr:\n%s", out, log)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1 (not for the critical option)", n)
	}
}
