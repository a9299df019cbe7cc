package udp_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/internal/coapproc"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// TestInteropClientObserve observes coap-server's /time resource (it
// notifies once a second) and deregisters with Cancel.
func TestInteropClientObserve(t *testing.T) {
	srvBin := coapproc.LookPath(t, "coap-server-notls")
	ep, _ := newEndpoint(t, "udp4", "127.0.0.1", nil)
	srv := coapproc.StartServer(t, srvBin, "127.0.0.1")
	ctx := testCtx(t)

	type note struct {
		seq     uint32
		hasSeq  bool
		code    codes.Code
		payload string
	}
	notes := make(chan note, 16)
	obs, err := ep.Observe(ctx, srv.Addr, "/time", func(r *bearer.Response) {
		seq, ok := r.Observe()
		select {
		case notes <- note{seq, ok, r.Code, string(r.Payload)}:
		default: // the test stopped reading; do not block the Endpoint
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	// The registration response and at least two notifications, with
	// increasing sequence numbers and a time of day as payload.
	var got []note
	for len(got) < 3 {
		select {
		case n := <-notes:
			if n.code != codes.Content || !n.hasSeq || n.payload == "" {
				t.Fatalf("notification %+v", n)
			}
			if len(got) > 0 && n.seq <= got[len(got)-1].seq {
				t.Fatalf("sequence not increasing: %+v after %+v", n, got[len(got)-1])
			}
			got = append(got, n)
		case <-ctx.Done():
			t.Fatalf("only %d notifications before the deadline: %+v", len(got), got)
		}
	}
	t.Logf("notifications: %+v", got)
	if err := obs.Cancel(ctx); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	select {
	case <-obs.Done():
	default:
		t.Fatal("Done not closed after Cancel")
	}
	if !errors.Is(obs.Err(), bearer.ErrObservationEnded) {
		t.Fatalf("Err after Cancel = %v", obs.Err())
	}
}

// TestInteropServerObserve has coap-client observe a resource of our
// Endpoint for a few seconds (-s) while the resource notifies every 100 ms.
func TestInteropServerObserve(t *testing.T) {
	cliBin := coapproc.LookPath(t, "coap-client-notls")
	observers := make(chan *bearer.Observer, 4)
	mux := bearer.NewServeMux()
	mux.HandleFunc("/3303/0/5700", func(w bearer.ResponseWriter, r *bearer.Request) {
		o, err := w.Observe()
		w.SetOption(bearer.ContentFormatOption(message.TextPlain))
		if err != nil {
			_ = w.WriteResponse(codes.Content, []byte("t=0"))
			return
		}
		_ = w.WriteResponse(codes.Content, []byte("t=0"))
		select {
		case observers <- o:
		default:
			o.Cancel()
		}
	})
	_, addr := newEndpoint(t, "udp4", "127.0.0.1", mux)
	ctx := testCtx(t)

	// The notifier: owned by the test, stopped by stop (or the observer's end).
	stop := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(stop); wg.Wait() })
	var (
		mu   sync.Mutex
		sent int
		obsv *bearer.Observer
	)
	wg.Go(func() {
		var o *bearer.Observer
		select {
		case o = <-observers:
		case <-stop:
			return
		}
		mu.Lock()
		obsv = o
		mu.Unlock()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 1; ; i++ {
			select {
			case <-tick.C:
			case <-o.Done():
				return
			case <-stop:
				return
			}
			nctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := o.Notify(nctx, codes.Content, []byte("t="+strconv.Itoa(i)), bearer.ContentFormatOption(message.TextPlain))
			cancel()
			if err != nil {
				return
			}
			mu.Lock()
			sent = i
			mu.Unlock()
		}
	})

	out, log, err := coapproc.Run(ctx, interopTimeout, cliBin, "-B", clientWait, "-w", "-s", "2", coapURI(addr, "/3303/0/5700"))
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	lines := strings.Fields(string(out))
	mu.Lock()
	n := sent
	o := obsv
	mu.Unlock()
	t.Logf("coap-client printed %d values (first %q, last %q); %d notifications sent", len(lines), lines[0], lines[len(lines)-1], n)
	if len(lines) < 4 || lines[0] != "t=0" {
		t.Fatalf("coap-client printed %q\n%s", out, log)
	}
	prev := -1
	for _, l := range lines {
		v, err := strconv.Atoi(strings.TrimPrefix(l, "t="))
		if err != nil || v <= prev {
			t.Fatalf("values not increasing at %q: %q", l, out)
		}
		prev = v
	}
	// coap-client deregisters when -s ends (GET with Observe=1, or RST for
	// the next notification); either way the observation must end.
	if o == nil {
		t.Fatal("no observer registered")
	}
	select {
	case <-o.Done():
		t.Logf("observation ended: %v", o.Err())
	case <-ctx.Done():
		t.Fatal("observation did not end after coap-client left")
	}
}
