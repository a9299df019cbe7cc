package modemlink_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smstest"
	"github.com/m2mbearer/m2mbearer/modem/sim"
)

// TestQBlockUnderLossOverPTYModems: RFC 9177 Q-Block2 and Q-Block1
// transfers of 4 KiB between two Endpoints on SMS bearers over simulated
// modems behind ptys (the real driver), with 20 % of the SMS segments
// lost by the simulated network: the missing blocks are asked for and
// sent again (under their first concatenation reference) until the bodies
// are whole; the upload's handler runs once.
func TestQBlockUnderLossOverPTYModems(t *testing.T) {
	big := bytes.Repeat([]byte("fw-4k..."), 512)
	var mu sync.Mutex
	var puts [][]byte
	mux := bearer.NewServeMux()
	mux.HandleFunc("/fw", func(w bearer.ResponseWriter, r *bearer.Request) {
		if r.Code == codes.PUT {
			mu.Lock()
			puts = append(puts, append([]byte(nil), r.Payload...))
			mu.Unlock()
			w.WriteResponse(codes.Changed, nil)
			return
		}
		w.WriteResponse(codes.Content, big)
	})
	w := newWorld(t, sim.Conditions{Loss: 0.2}, time.Second, mux)
	// Both ends are ours: known to support Q-Block (a Register would have
	// told, as in lwm2m/firmware).
	w.dep.SetQBlockSupport(addr(t, serverNum), true)
	w.sep.SetQBlockSupport(addr(t, deviceNum), true)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	start := time.Now()
	// A request lost whole is the caller's to ask again (no CoAP
	// retransmission on SMS); an answer arriving in part is asked for
	// again by the message layer.
	resp, asked, err := smstest.GetAsking(ctx, w.dep, addr(t, serverNum), "/fw", 3)
	if err != nil || !bytes.Equal(resp.Payload, big) {
		t.Fatalf("Q-Block2 GET of 4 KiB under 20 %% loss: %v", err)
	}
	t.Logf("Q-Block2 GET in %v (%d request(s))", time.Since(start).Round(time.Millisecond), asked)
	start = time.Now()
	resp, err = w.dep.Put(ctx, addr(t, serverNum), "/fw", message.AppOctets, big)
	if err != nil || resp.Code != codes.Changed {
		t.Fatalf("Q-Block1 PUT of 4 KiB under 20 %% loss: %v %v", resp, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(puts) != 1 || !bytes.Equal(puts[0], big) {
		t.Fatalf("the handler got %d uploads", len(puts))
	}
	st := w.net.Stats()
	t.Logf("Q-Block1 PUT in %v; network %+v; repeats device %d server %d", time.Since(start).Round(time.Millisecond), st,
		w.dev.b.Stats().Repeats, w.srv.b.Stats().Repeats)
}
