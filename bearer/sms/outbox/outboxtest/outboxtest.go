package outboxtest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
)

// Factory makes the backends under test.
type Factory struct {
	// New returns an empty backend; the suite closes it.
	New func(t *testing.T) outbox.Backend
	// Reopen closes b and returns a backend over its data after a
	// restart; nil when not durable.
	Reopen func(t *testing.T, b outbox.Backend) outbox.Backend
}

const (
	sim  = "+491710000001"
	sim2 = "+491710000002"
)

// Entry returns an entry to "to" of n one-byte segments from sim (""
// lets the transport choose), wanting reports when report is set.
func Entry(from, to string, n int, report bool) *outbox.Entry {
	e := &outbox.Entry{From: from, To: to, WantReport: report, Created: time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC),
		Expires: time.Date(2026, 5, 5, 0, 0, 0, 0, time.UTC)}
	for i := range n {
		e.Segments = append(e.Segments, outbox.Segment{TPDU: []byte{0x41, byte(i), 0xff}})
	}
	return e
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func accept(seg int, mr uint8) func(*outbox.Entry) error {
	return func(e *outbox.Entry) error {
		if e.From == "" {
			e.From = sim
		}
		e.Segments[seg].State, e.Segments[seg].MR = outbox.Accepted, mr
		return nil
	}
}

func deliver(seg int) func(*outbox.Entry) error {
	return func(e *outbox.Entry) error { e.Segments[seg].State = outbox.Delivered; return nil }
}

func ids(t *testing.T, b outbox.Backend) []uint64 {
	t.Helper()
	var out []uint64
	must(t, b.Load(func(e *outbox.Entry) error { out = append(out, e.ID); return nil }))
	slices.Sort(out)
	return out
}

func lookup(t *testing.T, b outbox.Backend, from, to string, mr uint8) (uint64, int) {
	t.Helper()
	id, seg, err := b.Lookup(from, to, mr)
	must(t, err)
	return id, seg
}

// Run runs every case against f, each as a subtest named after it.
func Run(t *testing.T, f Factory) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.durable && f.Reopen == nil {
				t.Skip("not durable")
			}
			b := f.New(t)
			t.Cleanup(func() { b.Close() })
			c.run(t, f, b)
		})
	}
}

// cases are the suite, run in this order; a case gets a new backend
// (closed after it), durable cases only from a Factory with Reopen.
var cases = []struct {
	name    string
	durable bool
	run     func(t *testing.T, f Factory, b outbox.Backend)
}{
	{name: "add, get and load", run: addGetLoad},
	{name: "update, and an error from fn changes nothing", run: updateAtomic},
	{name: "an entry without reports ends when all segments are accepted", run: doneWithoutReports},
	{name: "status report references", run: reportReferences},
	{name: "a wrapped TP-MR keeps the newer entry's reference", run: wrappedMR},
	{name: "remove", run: remove},
	{name: "concurrent updates of one entry all land", run: concurrentUpdates},
	{name: "through an Outbox: enqueue, send, report", run: throughOutbox},
	{name: "durable across a restart", durable: true, run: survivesRestart},
}

// addGetLoad: Add assigns increasing IDs, Get and Load return what was
// added, an unknown ID is ErrNotFound.
func addGetLoad(t *testing.T, _ Factory, b outbox.Backend) {
	var want []uint64
	for i := range 4 {
		e := Entry([]string{sim, "", sim2, sim}[i], fmt.Sprintf("+49172000000%d", i), 2, i%2 == 0)
		must(t, b.Add(e))
		if e.ID == 0 || (len(want) > 0 && e.ID <= want[len(want)-1]) {
			t.Fatalf("id %d after %v", e.ID, want)
		}
		want = append(want, e.ID)
	}
	got, err := b.Get(want[2])
	if err != nil || got.From != sim2 || got.To != "+491720000002" || !got.WantReport || len(got.Segments) != 2 || got.Segments[1].TPDU[1] != 1 {
		t.Fatalf("Get %+v %v", got, err)
	}
	if !slices.Equal(ids(t, b), want) {
		t.Fatalf("Load %v, want %v", ids(t, b), want)
	}
	if _, err := b.Get(9999); !errors.Is(err, outbox.ErrNotFound) {
		t.Fatalf("Get unknown: %v", err)
	}
}

// updateAtomic: Update applies fn; an error from fn leaves the entry as it
// was; an unknown ID is ErrNotFound.
func updateAtomic(t *testing.T, _ Factory, b outbox.Backend) {
	e := Entry("", "+491720000001", 2, false)
	must(t, b.Add(e))
	got, done, err := b.Update(e.ID, accept(0, 7))
	if err != nil || done || got.From != sim || got.Segments[0].State != outbox.Accepted {
		t.Fatalf("Update %+v %v %v", got, done, err)
	}
	boom := errors.New("boom")
	if _, _, err := b.Update(e.ID, func(e *outbox.Entry) error { e.Attempts = 9; return boom }); !errors.Is(err, boom) {
		t.Fatalf("fn error: %v", err)
	}
	if again, _ := b.Get(e.ID); again.Attempts != 0 || again.From != sim {
		t.Fatalf("after failed fn %+v", again)
	}
	if _, _, err := b.Update(9999, accept(0, 1)); !errors.Is(err, outbox.ErrNotFound) {
		t.Fatalf("Update unknown: %v", err)
	}
}

// doneWithoutReports: an entry that wants no report is removed, with no
// reference kept, once every segment is accepted.
func doneWithoutReports(t *testing.T, _ Factory, b outbox.Backend) {
	e := Entry(sim, "+491720000001", 2, false)
	must(t, b.Add(e))
	b.Update(e.ID, accept(0, 1))
	if _, done, _ := b.Update(e.ID, accept(1, 2)); !done {
		t.Fatal("not done")
	}
	if _, err := b.Get(e.ID); !errors.Is(err, outbox.ErrNotFound) {
		t.Fatalf("still stored: %v", err)
	}
	if id, _ := lookup(t, b, sim, "", 1); id != 0 {
		t.Fatal("references without reports")
	}
	if len(ids(t, b)) != 0 {
		t.Fatal("Load still lists it")
	}
}

// reportReferences: (from, to, mr) and (from, mr) name the segment until
// the entry is done.
func reportReferences(t *testing.T, _ Factory, b outbox.Backend) {
	e := Entry(sim, "+491720000001", 2, true)
	must(t, b.Add(e))
	b.Update(e.ID, accept(0, 40))
	b.Update(e.ID, accept(1, 41))
	if id, seg := lookup(t, b, sim, "+491720000001", 41); id != e.ID || seg != 1 {
		t.Fatalf("by recipient: %d %d", id, seg)
	}
	if id, seg := lookup(t, b, sim, "", 40); id != e.ID || seg != 0 {
		t.Fatalf("by sender: %d %d", id, seg)
	}
	if id, seg := lookup(t, b, sim2, "", 40); id != 0 || seg >= 0 {
		t.Fatalf("another SIM: %d %d", id, seg)
	}
	b.Update(e.ID, deliver(0))
	if _, done, _ := b.Update(e.ID, deliver(1)); !done {
		t.Fatal("not done after both reports")
	}
	if id, _ := lookup(t, b, sim, "+491720000001", 41); id != 0 {
		t.Fatal("references outlive their entry")
	}
}

// wrappedMR: a TP-MR reused after 256 sends names the newer entry, and
// removing the older entry keeps the newer one's references.
func wrappedMR(t *testing.T, _ Factory, b outbox.Backend) {
	old := Entry(sim, "+491720000001", 1, true)
	must(t, b.Add(old))
	b.Update(old.ID, accept(0, 5))
	nu := Entry(sim, "+491720000002", 1, true)
	must(t, b.Add(nu))
	b.Update(nu.ID, accept(0, 5)) // 256 sends later, the same MR
	if id, _ := lookup(t, b, sim, "", 5); id != nu.ID {
		t.Fatalf("(from, mr) names %d, want the newer %d", id, nu.ID)
	}
	if _, err := b.Remove(old.ID); err != nil {
		t.Fatal(err)
	}
	if id, _ := lookup(t, b, sim, "", 5); id != nu.ID {
		t.Fatal("removing the older entry dropped the newer one's reference")
	}
	// The older entry's (from, to, mr) is gone; the lookup falls
	// back to (from, mr), which is the newer entry's.
	if id, _ := lookup(t, b, sim, "+491720000001", 5); id == old.ID {
		t.Fatal("the older entry's own reference survived it")
	}
	if id, _ := lookup(t, b, sim, "+491720000002", 5); id != nu.ID {
		t.Fatal("the newer entry's reference by recipient is gone")
	}
}

// remove: Remove returns the entry once, then ErrNotFound.
func remove(t *testing.T, _ Factory, b outbox.Backend) {
	e := Entry(sim, "+491720000001", 1, false)
	must(t, b.Add(e))
	got, err := b.Remove(e.ID)
	if err != nil || got.ID != e.ID {
		t.Fatalf("Remove %v %v", got, err)
	}
	if _, err := b.Remove(e.ID); !errors.Is(err, outbox.ErrNotFound) {
		t.Fatalf("Remove twice: %v", err)
	}
}

// concurrentUpdates: concurrent Updates of one entry all land, with their
// references.
func concurrentUpdates(t *testing.T, _ Factory, b outbox.Backend) {
	e := Entry(sim, "+491720000001", 40, true)
	must(t, b.Add(e))
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			if _, _, err := b.Update(e.ID, accept(i, uint8(i))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, _ := b.Get(e.ID)
	for i, s := range got.Segments {
		if s.State != outbox.Accepted || s.MR != uint8(i) {
			t.Fatalf("segment %d %+v", i, s)
		}
		if id, seg := lookup(t, b, sim, "", uint8(i)); id != e.ID || seg != i {
			t.Fatalf("reference of %d: %d %d", i, id, seg)
		}
	}
}

// throughOutbox: an Outbox over the backend enqueues, hands out due
// entries and ends them on their reports.
func throughOutbox(t *testing.T, _ Factory, b outbox.Backend) {
	o, err := outbox.OpenBackend(b)
	must(t, err)
	e := Entry("", "+491720000001", 2, true)
	e.Expires = time.Time{}
	id, err := o.Enqueue(e)
	must(t, err)
	due, err := o.Due(time.Now(), 10, nil)
	if err != nil || len(due) != 1 || due[0].ID != id {
		t.Fatalf("Due %v %v", due, err)
	}
	o.Accepted(id, 0, sim, 200)
	o.Accepted(id, 1, sim, 201)
	if _, _, done, err := o.ReportTo(sim, "+491720000001", 200, outbox.ReportDelivered); done || err != nil {
		t.Fatalf("first report: %v %v", done, err)
	}
	if _, seg, done, err := o.ReportTo(sim, "+491720000001", 201, outbox.ReportDelivered); !done || seg != 1 || err != nil {
		t.Fatalf("second report: %v %d %v", done, seg, err)
	}
	if st := o.Stats(); st.Entries != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// survivesRestart: entries, references and the ID sequence survive Reopen.
func survivesRestart(t *testing.T, f Factory, b outbox.Backend) {
	e := Entry(sim, "+491720000001", 2, true)
	must(t, b.Add(e))
	b.Update(e.ID, accept(0, 9))
	gone := Entry(sim, "+491720000002", 1, false)
	must(t, b.Add(gone))
	b.Remove(gone.ID)
	b = f.Reopen(t, b)
	t.Cleanup(func() { b.Close() })
	if got := ids(t, b); !slices.Equal(got, []uint64{e.ID}) {
		t.Fatalf("after restart %v", got)
	}
	if id, seg := lookup(t, b, sim, "+491720000001", 9); id != e.ID || seg != 0 {
		t.Fatalf("reference after restart %d %d", id, seg)
	}
	n := Entry(sim, "+491720000003", 1, false)
	must(t, b.Add(n))
	if n.ID <= gone.ID {
		t.Fatalf("id %d reused (removed %d)", n.ID, gone.ID)
	}
}
