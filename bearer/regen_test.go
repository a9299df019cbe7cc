package bearer

import (
	"bytes"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// unwrapWriter wraps a ResponseWriter the way the gateway's counting
// writer does, with Unwrap.
type unwrapWriter struct{ ResponseWriter }

func (u unwrapWriter) Unwrap() ResponseWriter { return u.ResponseWriter }

// opaqueWriter wraps without Unwrap: SetRegenerable cannot reach the
// Endpoint's writer.
type opaqueWriter struct{ ResponseWriter }

// waitOut waits for n datagrams written by the Endpoint.
func waitOut(t *testing.T, cb *captureBearer, n int) [][]byte {
	t.Helper()
	var got [][]byte
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		got = append(got, cb.take()...)
		time.Sleep(time.Millisecond)
	}
	if len(got) != n {
		t.Fatalf("%d datagrams written, want %d", len(got), n)
	}
	return got
}

// TestDedupBySize: a duplicate of a large reply gets the identical bytes
// back; the reply is kept as a digest only when the handler is
// regenerable (it runs again for the duplicate), else kept whole (the
// handler runs once).
func TestDedupBySize(t *testing.T) {
	big := bytes.Repeat([]byte("firmware block "), 60) // 900 bytes
	tests := []struct {
		name      string
		path      string
		code      codes.Code
		wantRuns  int64 // handler runs for the request and one duplicate
		wantRegen bool  // kept as a digest
	}{
		{"regenerable GET of a large block", "/fw/regen", codes.GET, 2, true},
		{"regenerable through Unwrap", "/fw/unwrap", codes.GET, 2, true},
		{"wrapper without Unwrap: kept whole", "/fw/opaque", codes.GET, 1, false},
		{"non-idempotent POST with a large reply: kept whole", "/exec", codes.POST, 1, false},
		{"regenerable but small: kept whole", "/small", codes.GET, 1, false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var runs atomic.Int64
			mux := NewServeMux()
			mux.HandleFunc("/fw/regen", func(w ResponseWriter, r *Request) {
				runs.Add(1)
				SetRegenerable(w)
				_ = w.WriteResponse(codes.Content, big)
			})
			mux.HandleFunc("/fw/unwrap", func(w ResponseWriter, r *Request) {
				runs.Add(1)
				u := unwrapWriter{w}
				if !SetRegenerable(u) {
					t.Error("SetRegenerable through Unwrap reported false")
				}
				_ = u.WriteResponse(codes.Content, big)
			})
			mux.HandleFunc("/fw/opaque", func(w ResponseWriter, r *Request) {
				runs.Add(1)
				o := opaqueWriter{w}
				if SetRegenerable(o) {
					t.Error("SetRegenerable without Unwrap reported true")
				}
				_ = o.WriteResponse(codes.Content, big)
			})
			mux.HandleFunc("/exec", func(w ResponseWriter, r *Request) {
				n := runs.Add(1)
				_ = w.WriteResponse(codes.Changed, append(big, byte(n)))
			})
			mux.HandleFunc("/small", func(w ResponseWriter, r *Request) {
				runs.Add(1)
				SetRegenerable(w)
				_ = w.WriteResponse(codes.Content, []byte("v1"))
			})
			p := UDPParams("capture")
			cb := newCaptureBearer(p)
			met := new(Counters)
			e, err := NewEndpoint(cb, WithHandler(mux), WithMetrics(met), WithSeed(int64(i)))
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			req := NewRequest(tc.code, nil, tc.path)
			m := message.Message{Code: req.Code, Token: []byte{1, 2, 3, 4}, Options: req.Options, Type: message.Confirmable, MessageID: 4242}
			data, err := encode(&m)
			if err != nil {
				t.Fatal(err)
			}
			peer := fuzzAddr("client")
			e.handleDatagram(data, peer)
			first := waitOut(t, cb, 1)[0]
			e.dedup.mu.Lock()
			ent := e.dedup.lookup(midKey{AddrKey(peer), 4242})
			regen, kept := ent.regen, len(e.dedup.replies[ent.key])
			e.dedup.mu.Unlock()
			if regen != tc.wantRegen {
				t.Fatalf("kept as digest %v (reply of %d bytes kept), want %v", regen, kept, tc.wantRegen)
			}
			if regen && kept != 0 {
				t.Fatalf("digest entry still holds %d reply bytes", kept)
			}
			e.handleDatagram(data, peer) // the duplicate
			second := waitOut(t, cb, 1)[0]
			if !bytes.Equal(first, second) {
				t.Fatalf("duplicate got other bytes:\n%x\n%x", first, second)
			}
			if got := runs.Load(); got != tc.wantRuns {
				t.Fatalf("handler ran %d times, want %d", got, tc.wantRuns)
			}
			if tc.wantRegen && met.Get(EventDedupRegenerated) != 1 {
				t.Fatalf("dedup_regenerated %d", met.Get(EventDedupRegenerated))
			}
		})
	}
}

// TestDedupRegenMismatch: a regenerable handler whose answer changed
// (the image was replaced) does not get its new bytes sent as the reply
// to a duplicate; the entry is dropped and the next copy is served anew.
func TestDedupRegenMismatch(t *testing.T) {
	var runs atomic.Int64
	mux := NewServeMux()
	mux.HandleFunc("/fw/x", func(w ResponseWriter, r *Request) {
		n := runs.Add(1)
		SetRegenerable(w)
		_ = w.WriteResponse(codes.Content, bytes.Repeat([]byte{byte(n)}, 600))
	})
	cb := newCaptureBearer(UDPParams("capture"))
	met := new(Counters)
	e, err := NewEndpoint(cb, WithHandler(mux), WithMetrics(met))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	req := NewRequest(codes.GET, nil, "/fw/x")
	m := message.Message{Code: codes.GET, Token: []byte{9}, Options: req.Options, Type: message.Confirmable, MessageID: 7}
	data, _ := encode(&m)
	peer := fuzzAddr("client")
	e.handleDatagram(data, peer)
	waitOut(t, cb, 1)
	e.handleDatagram(data, peer) // regenerated: other bytes, not sent
	deadline := time.Now().Add(5 * time.Second)
	for met.Get(EventDedupRegenMismatch) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if met.Get(EventDedupRegenMismatch) != 1 {
		t.Fatalf("mismatch not counted: %v", met.Snapshot())
	}
	if out := cb.take(); len(out) != 0 {
		t.Fatalf("a differing regenerated reply was sent: %d datagrams", len(out))
	}
	e.handleDatagram(data, peer) // served as a new request
	out := waitOut(t, cb, 1)
	if runs.Load() != 3 || out[0][len(out[0])-1] != 3 {
		t.Fatalf("runs %d", runs.Load())
	}
}
