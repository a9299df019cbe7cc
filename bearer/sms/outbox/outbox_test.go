package outbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func testEntry(to string, nseg int) *Entry {
	e := &Entry{To: to}
	for i := 0; i < nseg; i++ {
		e.Segments = append(e.Segments, Segment{TPDU: []byte{0x41, 0x00, byte(i), 0xAA, 0xBB}})
	}
	return e
}

func openTest(t *testing.T, opts ...Option) *Outbox {
	t.Helper()
	ob, err := Open(filepath.Join(t.TempDir(), "outbox.db"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ob.Close() })
	return ob
}

func TestEntryRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		e := &Entry{
			ID:         rapid.Uint64().Draw(t, "id"),
			From:       rapid.StringN(0, 20, maxString).Draw(t, "from"),
			To:         rapid.StringN(1, 20, maxString).Draw(t, "to"),
			WantReport: rapid.Bool().Draw(t, "report"),
			Attempts:   rapid.IntRange(0, 1000).Draw(t, "attempts"),
			LastError:  rapid.String().Draw(t, "lasterr"),
			Created:    time.Unix(0, rapid.Int64Range(1, 1<<62).Draw(t, "created")),
			Expires:    time.Unix(0, rapid.Int64Range(1, 1<<62).Draw(t, "expires")),
		}
		n := rapid.IntRange(1, 255).Draw(t, "nseg")
		for i := 0; i < n; i++ {
			e.Segments = append(e.Segments, Segment{
				TPDU:  rapid.SliceOfN(rapid.Byte(), 1, maxTPDU).Draw(t, "tpdu"),
				State: SegmentState(rapid.IntRange(0, 2).Draw(t, "state")),
				MR:    rapid.Byte().Draw(t, "mr"),
			})
		}
		got, err := unmarshalEntry(e.marshal())
		if err != nil {
			t.Fatal(err)
		}
		if !got.Created.Equal(e.Created) || !got.Expires.Equal(e.Expires) || got.ID != e.ID || got.From != e.From ||
			got.To != e.To || got.WantReport != e.WantReport || got.Attempts != e.Attempts || got.LastError != e.LastError ||
			len(got.Segments) != len(e.Segments) {
			t.Fatalf("round trip: got %+v want %+v", got, e)
		}
		for i := range e.Segments {
			g, w := got.Segments[i], e.Segments[i]
			if g.State != w.State || g.MR != w.MR || !bytes.Equal(g.TPDU, w.TPDU) {
				t.Fatalf("segment %d: got %+v want %+v", i, g, w)
			}
		}
	})
}

func FuzzUnmarshalEntry(f *testing.F) {
	f.Add(testEntry("+15550001", 3).marshal())
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	e := testEntry("+4915112345678", 1)
	e.WantReport = true
	e.LastError = "boom"
	f.Add(e.marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := unmarshalEntry(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		again, err := unmarshalEntry(e.marshal())
		if err != nil || again.ID != e.ID || len(again.Segments) != len(e.Segments) {
			t.Fatalf("re-encode of a decoded entry failed: %v", err)
		}
	})
}

func TestEnqueueValidatesAndBounds(t *testing.T) {
	ob := openTest(t, WithLimits(Limits{MaxEntries: 2, MaxBytes: 1000}))
	bad := []*Entry{nil, {To: ""}, {To: "+1"}, {To: "+1", Segments: []Segment{{TPDU: nil}}},
		{To: "+1", Segments: []Segment{{TPDU: make([]byte, maxTPDU+1)}}}}
	for i, e := range bad {
		if _, err := ob.Enqueue(e); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad entry %d: err %v, want ErrInvalid", i, err)
		}
	}
	for i := 0; i < 2; i++ {
		if _, err := ob.Enqueue(testEntry("+1", 1)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ob.Enqueue(testEntry("+1", 1)); !errors.Is(err, ErrFull) {
		t.Fatalf("third entry: %v, want ErrFull", err)
	}
	if st := ob.Stats(); st.Entries != 2 || st.Bytes != 10 || st.Pending != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "o.db")
	ob, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	id, err := ob.Enqueue(testEntry("+15550001", 3))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ob.Accepted(id, 0, "+15559999", 7); err != nil {
		t.Fatal(err)
	}
	ob.Close()
	ob, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	e, err := ob.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if e.From != "+15559999" || e.Segments[0].State != Accepted || e.Segments[0].MR != 7 || e.NextPending() != 1 {
		t.Fatalf("after reopen: %+v", e)
	}
	due, err := ob.Due(time.Now(), 10, nil)
	if err != nil || len(due) != 1 || due[0].ID != id {
		t.Fatalf("due after reopen: %v %v", due, err)
	}
}

func TestReportCorrelation(t *testing.T) {
	ob := openTest(t)
	e := testEntry("+15550001", 2)
	e.WantReport = true
	e.From = "+15559999"
	id, _ := ob.Enqueue(e)
	ob.Accepted(id, 0, "+15559999", 10)
	_, done, _ := ob.Accepted(id, 1, "+15559999", 11)
	if done {
		t.Fatal("entry finished before reports")
	}
	if st := ob.Stats(); st.AwaitingReport != 1 {
		t.Fatalf("stats %+v", st)
	}
	// A foreign report (unknown MR) touches nothing.
	if got, _, _, err := ob.Report("+15559999", 99, ReportDelivered); got != nil || err != nil {
		t.Fatalf("foreign report: %v %v", got, err)
	}
	if _, seg, done, err := ob.Report("+15559999", 10, ReportDelivered); err != nil || seg != 0 || done {
		t.Fatalf("first report: seg %d done %v err %v", seg, done, err)
	}
	if _, _, done, err := ob.Report("+15559999", 11, ReportTemporary); err != nil || done {
		t.Fatalf("temporary report: %v %v", done, err)
	}
	if _, seg, done, err := ob.Report("+15559999", 11, ReportDelivered); err != nil || seg != 1 || !done {
		t.Fatalf("last report: seg %d done %v err %v", seg, done, err)
	}
	if st := ob.Stats(); st.Entries != 0 || st.Bytes != 0 {
		t.Fatalf("not removed: %+v", st)
	}
	// Permanent failure removes the entry.
	e2 := testEntry("+15550002", 1)
	e2.WantReport = true
	id2, _ := ob.Enqueue(e2)
	ob.Accepted(id2, 0, "+15559999", 12)
	if got, _, done, err := ob.Report("+15559999", 12, ReportPermanent); err != nil || !done || got.ID != id2 {
		t.Fatalf("permanent: %v %v %v", got, done, err)
	}
	if _, err := ob.Get(id2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("permanent failure left the entry: %v", err)
	}
}

// fakeSender records sends and fails according to a script.
type fakeSender struct {
	mu    sync.Mutex
	sent  []string // "to:tpdu-index"
	fail  func(n int, to string) error
	n     int
	mr    uint8
	delay time.Duration
}

type tempErr struct{ retry bool }

func (e tempErr) Error() string   { return fmt.Sprintf("fake modem error (retryable=%v)", e.retry) }
func (e tempErr) Retryable() bool { return e.retry }

func (s *fakeSender) SendTPDU(ctx context.Context, from, to string, tpdu []byte) (string, uint8, error) {
	if s.delay > 0 {
		select {
		case <-time.After(s.delay):
		case <-ctx.Done():
			return "", 0, ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	if s.fail != nil {
		if err := s.fail(s.n, to); err != nil {
			return "", 0, err
		}
	}
	s.mr++
	s.sent = append(s.sent, fmt.Sprintf("%s:%d", to, tpdu[2]))
	return "+15559999", s.mr, nil
}

func runWorker(t *testing.T, ob *Outbox, s Sender, cfg WorkerConfig, until func() bool) []Result {
	t.Helper()
	var mu sync.Mutex
	var results []Result
	cfg.OnDone = func(r Result) { mu.Lock(); results = append(results, r); mu.Unlock() }
	if cfg.Poll == 0 {
		cfg.Poll = 5 * time.Millisecond
	}
	w, err := NewWorker(ob, s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		ok := until()
		mu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			<-errc
			t.Fatalf("worker did not finish; stats %+v", ob.Stats())
		}
		time.Sleep(2 * time.Millisecond)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	return append([]Result(nil), results...)
}

func TestWorkerSendsInOrderAndRetries(t *testing.T) {
	ob := openTest(t)
	s := &fakeSender{fail: func(n int, to string) error {
		if n == 2 || n == 3 {
			return tempErr{retry: true}
		}
		return nil
	}}
	for i := 0; i < 3; i++ {
		if _, err := ob.Enqueue(testEntry("+1555000", 3)); err != nil {
			t.Fatal(err)
		}
	}
	res := runWorker(t, ob, s, WorkerConfig{BackoffMin: time.Millisecond, BackoffMax: 4 * time.Millisecond},
		func() bool { return ob.Stats().Entries == 0 })
	want := []string{"+1555000:0", "+1555000:1", "+1555000:2", "+1555000:0", "+1555000:1", "+1555000:2",
		"+1555000:0", "+1555000:1", "+1555000:2"}
	if fmt.Sprint(s.sent) != fmt.Sprint(want) {
		t.Fatalf("sent %v\nwant %v", s.sent, want)
	}
	if len(res) != 3 {
		t.Fatalf("results %v", res)
	}
	for _, r := range res {
		if r.Outcome != Sent || r.Err != nil {
			t.Fatalf("result %+v", r)
		}
	}
}

func TestWorkerPermanentFailure(t *testing.T) {
	ob := openTest(t)
	s := &fakeSender{fail: func(n int, to string) error {
		if to == "+bad" {
			return tempErr{retry: false}
		}
		return nil
	}}
	ob.Enqueue(testEntry("+bad", 2))
	ob.Enqueue(testEntry("+good", 2))
	res := runWorker(t, ob, s, WorkerConfig{}, func() bool { return ob.Stats().Entries == 0 })
	if len(res) != 2 {
		t.Fatalf("results %+v", res)
	}
	for _, r := range res {
		switch r.Entry.To {
		case "+bad":
			var te tempErr
			if r.Outcome != Failed || !errors.As(r.Err, &te) {
				t.Fatalf("bad: %+v", r)
			}
		case "+good":
			if r.Outcome != Sent {
				t.Fatalf("good: %+v", r)
			}
		}
	}
}

func TestWorkerExpiry(t *testing.T) {
	ob := openTest(t)
	s := &fakeSender{fail: func(int, string) error { return tempErr{retry: true} }}
	e := testEntry("+1", 1)
	e.Expires = time.Now().Add(50 * time.Millisecond)
	ob.Enqueue(e)
	res := runWorker(t, ob, s, WorkerConfig{BackoffMin: 5 * time.Millisecond, BackoffMax: 10 * time.Millisecond},
		func() bool { return ob.Stats().Entries == 0 })
	if len(res) != 1 || res[0].Outcome != Expired || !errors.Is(res[0].Err, ErrExpired) {
		t.Fatalf("results %+v", res)
	}
	if res[0].Entry.Attempts == 0 || res[0].Entry.LastError == "" {
		t.Fatalf("expired entry lost its history: %+v", res[0].Entry)
	}
}

func TestWorkerParallelAcrossDestinations(t *testing.T) {
	ob := openTest(t)
	s := &fakeSender{delay: 20 * time.Millisecond}
	for i := 0; i < 8; i++ {
		ob.Enqueue(testEntry(fmt.Sprintf("+1555%04d", i), 1))
	}
	start := time.Now()
	runWorker(t, ob, s, WorkerConfig{MaxInFlight: 8}, func() bool { return ob.Stats().Entries == 0 })
	// Sequential would take 8 × 20 ms; in parallel it is about one send time.
	if el := time.Since(start); el > 8*20*time.Millisecond*3/4 {
		t.Logf("warning: parallel sends took %v (loaded machine?)", el)
	}
	if len(s.sent) != 8 {
		t.Fatalf("sent %v", s.sent)
	}
}

func TestWorkerHandleReport(t *testing.T) {
	ob := openTest(t)
	s := &fakeSender{}
	e := testEntry("+1", 1)
	e.WantReport = true
	ob.Enqueue(e)
	runWorker(t, ob, s, WorkerConfig{}, func() bool { return ob.Stats().AwaitingReport == 1 })
	var got []Result
	w, err := NewWorker(ob, s, WorkerConfig{OnDone: func(r Result) { got = append(got, r) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.HandleReport("+15559999", s.mr, ReportDelivered, nil); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Outcome != DeliveredOutcome || ob.Stats().Entries != 0 {
		t.Fatalf("got %+v stats %+v", got, ob.Stats())
	}
}

func TestRetryable(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{errors.New("plain"), true},
		{tempErr{retry: false}, false},
		{fmt.Errorf("wrapped: %w", tempErr{retry: false}), false},
		{tempErr{retry: true}, true},
		{context.DeadlineExceeded, true},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%v", c.err), func(t *testing.T) {
			if got := Retryable(c.err); got != c.want {
				t.Errorf("Retryable(%v) = %v, want %v", c.err, got, c.want)
			}
		})
	}
}

// TestReportCorrelationByRecipient: one sender's TP-MR wraps (an SMPP link
// at 100 SMS/s does so every 2.6 s); reports naming their recipient still
// find their own segment, and a report naming none falls back to the last.
func TestReportCorrelationByRecipient(t *testing.T) {
	ob := openTest(t)
	var ids []uint64
	for _, to := range []string{"+15550001", "+15550002", "+15550003"} {
		e := testEntry(to, 1)
		e.WantReport, e.From = true, "+15559999"
		id, _ := ob.Enqueue(e)
		if _, _, err := ob.Accepted(id, 0, "+15559999", 42); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	cases := []struct {
		name, to string
		want     uint64
	}{
		{"no recipient: legacy key, last accepted", "", ids[2]},
		{"first recipient", "+15550001", ids[0]},
		{"second recipient", "+15550002", ids[1]},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, _, done, err := ob.ReportTo("+15559999", c.to, 42, ReportDelivered)
			if err != nil || e == nil || e.ID != c.want || !done {
				t.Fatalf("got %+v done %v err %v, want entry %d", e, done, err, c.want)
			}
		})
	}
	if st := ob.Stats(); st.Entries != 0 {
		t.Fatalf("left: %+v", st)
	}
}

// TestDueEarliestDeadlineFirst: across destinations the entry that expires
// first goes first; per destination the stored order is kept.
func TestDueEarliestDeadlineFirst(t *testing.T) {
	ob := openTest(t)
	now := time.Now()
	add := func(to string, in time.Duration) uint64 {
		e := testEntry(to, 1)
		if in > 0 {
			e.Expires = now.Add(in)
		}
		id, err := ob.Enqueue(e)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	late := add("+15550001", time.Hour)
	none := add("+15550002", 0) // MaxAge: 24 h
	soon := add("+15550003", time.Minute)
	add("+15550003", time.Second) // behind soon: same destination
	mid := add("+15550004", 10*time.Minute)
	due, err := ob.Due(now, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, e := range due {
		got = append(got, e.ID)
	}
	want := []uint64{soon, mid, late, none}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

// TestConcurrentUpdatesKeepScheduleConsistent: acceptances, reports and
// removals of many entries at once (their fsyncs batched) leave the
// in-memory schedule equal to what is stored, as a reopen shows.
func TestConcurrentUpdatesKeepScheduleConsistent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	ob, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	ids := make([]uint64, n)
	for i := range ids {
		e := testEntry(fmt.Sprintf("+1555%07d", i), 2)
		e.WantReport, e.From = true, "+15559999"
		if ids[i], err = ob.Enqueue(e); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func(i int, id uint64) {
			defer wg.Done()
			to := fmt.Sprintf("+1555%07d", i)
			ob.Accepted(id, 0, "+15559999", 1)
			ob.Accepted(id, 1, "+15559999", 2)
			switch i % 3 {
			case 0: // delivered: gone
				ob.ReportTo("+15559999", to, 1, ReportDelivered)
				ob.ReportTo("+15559999", to, 2, ReportDelivered)
			case 1: // removed
				ob.Remove(id)
			}
		}(i, id)
	}
	wg.Wait()
	got := ob.Stats()
	if due, _ := ob.Due(time.Now(), n, nil); len(due) != 0 {
		t.Fatalf("%d entries due, none has a pending segment", len(due))
	}
	ob.Close()
	ob2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ob2.Close()
	if want := ob2.Stats(); got != want || got.Entries != n/3 || got.AwaitingReport != n/3 {
		t.Fatalf("in memory %+v, stored %+v (want %d awaiting report)", got, want, n/3)
	}
}
