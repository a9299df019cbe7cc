package outbox

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// missHook is a Backend whose first Lookup that finds nothing calls
// onMiss before it returns.
type missHook struct {
	Backend
	once   sync.Once
	onMiss func()
}

func (b *missHook) Lookup(from, to string, mr uint8) (uint64, int, error) {
	id, seg, err := b.Backend.Lookup(from, to, mr)
	if err == nil && seg < 0 {
		b.once.Do(b.onMiss)
	}
	return id, seg, err
}

// racingSender delivers the status report of each submit before the
// submit returns (an SMSC faster than our store), and lets the submit
// return once the report's lookup has missed.
type racingSender struct {
	w       *Worker
	missed  chan struct{}
	reports chan error
}

func (s *racingSender) SendTPDU(ctx context.Context, from, to string, tpdu []byte) (string, uint8, error) {
	go func() { s.reports <- s.w.HandleReportTo("+15559999", to, 7, ReportDelivered, nil) }()
	select {
	case <-s.missed:
	case <-time.After(5 * time.Second):
		return "", 0, errors.New("the report never looked its segment up")
	}
	return "+15559999", 7, nil
}

// TestEarlyReportRacingAcceptance: a status report that finds no segment
// (its submit's acceptance not yet recorded) and is kept as early must not
// be lost when the acceptance is recorded, and its kept reports looked
// for, between the report's lookup and its keep. Here the report's lookup
// waits, after missing, until the send has finished (or 500 ms): before
// the fix the send recorded the acceptance, found no kept report and ended,
// then the report was kept and never applied (the entry waited for a
// report already received: TestAccountSharedByLinks' "15 of 16
// delivered" under load).
func TestEarlyReportRacingAcceptance(t *testing.T) {
	bolt, err := OpenBolt(filepath.Join(t.TempDir(), "outbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	var w *Worker
	missed := make(chan struct{})
	be := &missHook{Backend: bolt, onMiss: func() {
		close(missed)
		for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline) && w.inflightCount() > 0; {
			time.Sleep(time.Millisecond)
		}
	}}
	ob, err := OpenBackend(be)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ob.Close() })
	e := testEntry("+15550001", 1)
	e.WantReport = true
	if _, err := ob.Enqueue(e); err != nil {
		t.Fatal(err)
	}
	results := make(chan Result, 4)
	s := &racingSender{missed: missed, reports: make(chan error, 4)}
	w, err = NewWorker(ob, s, WorkerConfig{Poll: 5 * time.Millisecond, OnDone: func(r Result) { results <- r }})
	if err != nil {
		t.Fatal(err)
	}
	s.w = w
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	defer func() {
		cancel()
		<-errc
	}()
	select {
	case r := <-results:
		if r.Outcome != DeliveredOutcome {
			t.Fatalf("outcome %v %v", r.Outcome, r.Err)
		}
	case <-time.After(5 * time.Second):
		w.mu.Lock()
		kept := len(w.early)
		w.mu.Unlock()
		t.Fatalf("the report was lost: %d report(s) kept as early, stats %+v", kept, ob.Stats())
	}
	if err := <-s.reports; err != nil {
		t.Fatal(err)
	}
	if st := ob.Stats(); st.Entries != 0 {
		t.Fatalf("stats %+v", st)
	}
}
