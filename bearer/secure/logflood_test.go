package secure

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestHandshakeFailureLogBounded: 2,000 spoofed ClientHellos whose
// handshakes fail (evicted, never authenticated) are all counted, but the
// log gets a bounded number of lines about them.
func TestHandshakeFailureLogBounded(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(syncWriter{&mu, &buf}, nil))
	n := newMemNet()
	s := startServer(t, n, &Config{PSKLookup: pskLookup, MaxHandshakes: 4, Logger: log})
	hellos := captureClientFlight(t)
	if len(hellos) == 0 {
		t.Fatal("no ClientHello captured")
	}
	const flood = 2000
	for i := range flood {
		s.route(append([]byte(nil), hellos[0]...), memAddr(fmt.Sprintf("spoofed-%d", i)))
	}
	// A failure is counted before its log line is written or held back:
	// wait until every counted failure is accounted for in the log.
	var out string
	var lines int
	var st Stats
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		out = buf.String()
		mu.Unlock()
		lines = strings.Count(out, "handshake failed")
		st = s.Stats()
		if st.HandshakesFailed >= flood-4 && st.LogSuppressed+uint64(lines) == st.HandshakesFailed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d lines, %d held back, %d failures: %+v", lines, st.LogSuppressed, st.HandshakesFailed, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%d failed handshakes: %d log lines (%d bytes of log), %d held back", st.HandshakesFailed, lines, len(out), st.LogSuppressed)
	if lines > 20 {
		t.Fatalf("%d lines, %d held back, %d failures", lines, st.LogSuppressed, st.HandshakesFailed)
	}
}

type syncWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
