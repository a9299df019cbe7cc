package queuetest

import (
	"context"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
)

// A re-send of the same queue.Attempt (what the drain does after a server
// crash in the middle of a request) must be a CoAP duplicate the device
// answers from its cache (RFC 7252 §4.5), so a non-idempotent Execute runs
// once: the Server's executor sends the attempt's token and message ID
// (bearer.Request.SetMessageID).
func TestResendOfAttemptIsDuplicate(t *testing.T) {
	w := newWorld(t, worldConfig{latency: 10 * time.Millisecond, window: 5 * time.Second})
	l := w.newLight(lightConfig{name: "dup", number: "+491720000006", version: "1.0", binding: "UQS", udp: true, awake: 5 * time.Second})
	req := &queue.Request{Endpoint: "dup", Kind: queue.KindExecute, Paths: []string{"/3/0/4"}, Payload: []byte("0='1'"),
		ContentFormat: 0, ID: 42, Attempt: queue.Attempt{ID: 42, N: 1}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for range 2 {
		if _, err := w.qsrv.Execute(ctx, "dup", req); err != nil {
			t.Fatal(err)
		}
	}
	if n := l.count.get("POST /3/0/4"); n != 1 {
		t.Fatalf("the same attempt ran %d times on the device", n)
	}
}
