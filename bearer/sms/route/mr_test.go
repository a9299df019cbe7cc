package route

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/pdu"
)

const (
	shared = "+15550001" // on both routes
	only   = "+15550002" // on the modems only
	dev    = "+15551234"
	dev2   = "+15551235"
)

// simRoute is a route that numbers its sends as a SIM does: one TP-MR counter
// per sender, starting at 0, so two of them collide at once.
type simRoute struct {
	mu      sync.Mutex
	next    map[string]uint8
	fail    func(n int) bool // a retryable failure for the n-th call
	n       int
	block   chan struct{} // when set, a send returns only once it is closed
	entered chan struct{} // a blocked send has its TP-MR
	in      chan sms.Inbound
	acks    chan uint8 // TP-MRs of reports acknowledged
}

func newSimRoute() *simRoute {
	return &simRoute{next: map[string]uint8{}, in: make(chan sms.Inbound, 512), acks: make(chan uint8, 512),
		entered: make(chan struct{}, 16)}
}

func (s *simRoute) SendTPDU(_ context.Context, from, _ string, _ []byte) (string, uint8, error) {
	s.mu.Lock()
	s.n++
	if s.fail != nil && s.fail(s.n) {
		s.mu.Unlock()
		return "", 0, retryErr{true}
	}
	mr := s.next[from]
	s.next[from] = mr + 1
	block := s.block
	s.mu.Unlock()
	if block != nil {
		s.entered <- struct{}{}
		<-block
	}
	return from, mr, nil
}

func (s *simRoute) Inbound() <-chan sms.Inbound { return s.in }

// report makes the route receive a status report for its TP-MR mr.
func (s *simRoute) report(t *testing.T, sim, recipient string, mr, status byte) {
	t.Helper()
	ra, err := pdu.NumberAddress(recipient)
	if err != nil {
		ra = pdu.Address{TON: pdu.TONUnknown, NPI: pdu.NPIISDN, Value: recipient}
	}
	now := time.Now()
	b, err := (&pdu.StatusReport{MR: mr, Recipient: ra, SCTS: now, Discharge: now, Status: status}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s.in <- sms.Inbound{SIM: sim, TPDU: b, Ack: func(context.Context) error { s.acks <- mr; return nil }}
}

var submitEnc = new(pdu.Encoder)

// fataler is testing.TB or *rapid.T.
type fataler interface {
	Helper()
	Fatal(...any)
}

func submit(t fataler, to string, report bool) []byte {
	segs, err := submitEnc.Encode(to, []byte{0x40, 1, 2, 3}, pdu.WithStatusReport(report))
	if err != nil {
		t.Fatal(err)
	}
	return segs[0].TPDU
}

// readReport returns the TP-MR of the next status report the Mux passes on.
func readReport(t fataler, m *Mux) (uint8, sms.Inbound) {
	select {
	case msg := <-m.Inbound():
		sr, err := pdu.ParseStatusReport(msg.TPDU)
		if err != nil {
			t.Fatal(err)
		}
		return sr.MR, msg
	case <-time.After(5 * time.Second):
		t.Fatal("no report passed on")
	}
	return 0, sms.Inbound{}
}

type mrRig struct {
	smpp, modems *simRoute
	m            *Mux
	path         string
}

func newMRRig(t *testing.T, path string, opts ...Option) *mrRig {
	t.Helper()
	r := &mrRig{smpp: newSimRoute(), modems: newSimRoute(), path: path}
	r.open(t, opts...)
	return r
}

func (r *mrRig) open(t *testing.T, opts ...Option) {
	t.Helper()
	m, err := New([]Route{
		{Name: "smpp:op1", Transport: r.smpp, Numbers: []string{shared}},
		{Name: "modems", Transport: r.modems, Numbers: []string{shared, only}},
	}, append([]Option{WithStateFile(r.path)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	r.m = m
	t.Cleanup(func() { m.Close() })
}

// sendVia sends one SMS from from to to over the named route (the SMPP
// link is failed retryably when the modems should take it).
func (r *mrRig) sendVia(t *testing.T, route, from, to string, report bool) uint8 {
	t.Helper()
	r.smpp.mu.Lock()
	r.smpp.fail = func(int) bool { return route == "modems" }
	r.smpp.mu.Unlock()
	_, mr, err := r.m.SendTPDU(context.Background(), from, to, submit(t, to, report))
	if err != nil {
		t.Fatal(err)
	}
	return mr
}

func (r *mrRig) route(name string) *simRoute {
	if name == "modems" {
		return r.modems
	}
	return r.smpp
}

func TestMRTranslation(t *testing.T) {
	t.Run("interleaved sends for one number: distinct TP-MRs, each report translated to its own", func(t *testing.T) {
		r := newMRRig(t, filepath.Join(t.TempDir(), "route.db"))
		type sent struct {
			route string
			rmr   uint8 // the route's TP-MR
			v     uint8 // the Mux's
		}
		var sends []sent
		rmr := map[string]uint8{}
		for i := 0; i < 12; i++ {
			route := []string{"smpp:op1", "modems"}[i%2]
			v := r.sendVia(t, route, shared, dev, true)
			sends = append(sends, sent{route, rmr[route], v})
			rmr[route]++
		}
		seen := map[uint8]bool{}
		for _, s := range sends {
			if seen[s.v] {
				t.Fatalf("TP-MR %d handed out twice while awaiting reports: %+v", s.v, sends)
			}
			seen[s.v] = true
		}
		// Reports in reverse order, each on its own route with the
		// route's TP-MR.
		for i := len(sends) - 1; i >= 0; i-- {
			s := sends[i]
			r.route(s.route).report(t, shared, dev, s.rmr, 0x00)
			got, msg := readReport(t, r.m)
			if got != s.v {
				t.Fatalf("report of send %d (%s TP-MR %d) passed on as %d, want %d", i, s.route, s.rmr, got, s.v)
			}
			msg.Ack(context.Background())
		}
		if st := r.m.MRStats(); st.Mapped != 0 || st.Translated != 12 || st.Assigned != 12 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("mappings survive a restart", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "route.db")
		r := newMRRig(t, path)
		a := r.sendVia(t, "smpp:op1", shared, dev, true)
		b := r.sendVia(t, "modems", shared, dev, true)
		r.m.Close()
		r.open(t)
		r.modems.report(t, shared, dev, 0, 0x00)
		if got, _ := readReport(t, r.m); got != b {
			t.Fatalf("modem report as %d, want %d", got, b)
		}
		r.smpp.report(t, shared, dev, 0, 0x00)
		if got, _ := readReport(t, r.m); got != a {
			t.Fatalf("smpp report as %d, want %d", got, a)
		}
	})
	t.Run("temporary report keeps the mapping, the final one removes it once acknowledged", func(t *testing.T) {
		r := newMRRig(t, filepath.Join(t.TempDir(), "route.db"))
		v := r.sendVia(t, "modems", shared, dev, true)
		r.modems.report(t, shared, dev, 0, 0x20) // congestion, still trying
		got, msg := readReport(t, r.m)
		msg.Ack(context.Background())
		if got != v || r.m.MRStats().Mapped != 1 {
			t.Fatalf("got %d want %d, stats %+v", got, v, r.m.MRStats())
		}
		r.modems.report(t, shared, dev, 0, 0x00)
		_, msg = readReport(t, r.m)
		if r.m.MRStats().Mapped != 1 {
			t.Fatal("mapping gone before the report was acknowledged")
		}
		msg.Ack(context.Background())
		if st := r.m.MRStats(); st.Mapped != 0 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("recipient written otherwise: found by route, sender and TP-MR", func(t *testing.T) {
		r := newMRRig(t, filepath.Join(t.TempDir(), "route.db"))
		r.sendVia(t, "smpp:op1", shared, dev, true)
		v := r.sendVia(t, "modems", shared, dev, true)
		r.modems.report(t, shared, "5551234", 0, 0x00) // national form
		if got, _ := readReport(t, r.m); got != v {
			t.Fatalf("got %d, want %d", got, v)
		}
	})
	t.Run("no mapping, TP-MR not in use: passed on unchanged", func(t *testing.T) {
		r := newMRRig(t, filepath.Join(t.TempDir(), "route.db"))
		r.modems.report(t, shared, dev, 77, 0x00)
		if got, _ := readReport(t, r.m); got != 77 || r.m.MRStats().Unmapped != 1 {
			t.Fatalf("got %d, stats %+v", got, r.m.MRStats())
		}
	})
	t.Run("no mapping, TP-MR in use for another send: acknowledged and dropped", func(t *testing.T) {
		r := newMRRig(t, filepath.Join(t.TempDir(), "route.db"))
		v := r.sendVia(t, "smpp:op1", shared, dev, true)
		r.modems.report(t, shared, dev, v, 0x00) // the modems sent nothing with it
		select {
		case mr := <-r.modems.acks:
			if mr != v {
				t.Fatalf("acknowledged %d", mr)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("dropped report not acknowledged")
		}
		select {
		case msg := <-r.m.Inbound():
			t.Fatalf("passed on %x", msg.TPDU)
		case <-time.After(50 * time.Millisecond):
		}
		if st := r.m.MRStats(); st.Dropped != 1 || st.Mapped != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("no report asked, or a number with one route: the route's TP-MR untouched", func(t *testing.T) {
		r := newMRRig(t, filepath.Join(t.TempDir(), "route.db"))
		r.sendVia(t, "smpp:op1", shared, dev, true) // smpp 0 -> mapped
		if mr := r.sendVia(t, "smpp:op1", shared, dev, false); mr != 1 {
			t.Fatalf("no report asked: TP-MR %d, want the route's 1", mr)
		}
		for i := uint8(0); i < 3; i++ {
			if mr := r.sendVia(t, "modems", only, dev, true); mr != i {
				t.Fatalf("one route: TP-MR %d, want the route's %d", mr, i)
			}
		}
		if st := r.m.MRStats(); st.Mapped != 1 || st.Assigned != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("all 256 TP-MRs awaiting reports: the oldest mapping is given up", func(t *testing.T) {
		r := newMRRig(t, filepath.Join(t.TempDir(), "route.db"))
		first := r.sendVia(t, "modems", shared, dev, true)
		for i := 0; i < 255; i++ {
			r.sendVia(t, []string{"smpp:op1", "modems"}[i%2], shared, dev, true)
		}
		if st := r.m.MRStats(); st.Mapped != 256 || st.Reused != 0 {
			t.Fatalf("stats %+v", st)
		}
		if v := r.sendVia(t, "smpp:op1", shared, dev, true); v != first {
			t.Fatalf("TP-MR %d, want the oldest's %d", v, first)
		}
		// Another recipient is not affected.
		r.sendVia(t, "smpp:op1", shared, dev2, true)
		if st := r.m.MRStats(); st.Mapped != 257 || st.Reused != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("mappings past their age removed", func(t *testing.T) {
		now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
		var mu sync.Mutex
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		path := filepath.Join(t.TempDir(), "route.db")
		r := newMRRig(t, path, WithClock(clock), WithMaxAge(time.Hour))
		r.sendVia(t, "modems", shared, dev, true)
		r.m.Close()
		mu.Lock()
		now = now.Add(2 * time.Hour)
		mu.Unlock()
		r.open(t, WithClock(clock), WithMaxAge(time.Hour))
		if st := r.m.MRStats(); st.Mapped != 0 || st.Expired != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("routes of one TP-MR space: a report on either finds the send", func(t *testing.T) {
		a, b, modems := newSimRoute(), newSimRoute(), newSimRoute()
		m, err := New([]Route{
			{Name: "smpp:op1", Transport: a, Numbers: []string{shared}, Space: "account"},
			{Name: "smpp:op2", Transport: b, Numbers: []string{shared}, Space: "account"},
			{Name: "modems", Transport: modems, Numbers: []string{shared}},
		}, WithStateFile(filepath.Join(t.TempDir(), "route.db")))
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		_, v, err := m.SendTPDU(context.Background(), shared, dev, submit(t, dev, true)) // op1, its TP-MR 0
		if err != nil {
			t.Fatal(err)
		}
		b.report(t, shared, dev, 0, 0x00) // the receipt reaches op2
		if got, _ := readReport(t, m); got != v {
			t.Fatalf("got %d, want %d", got, v)
		}
		modems.report(t, shared, dev, 0, 0x00) // another space, no send of its own: not op1's
		if got, _ := readReport(t, m); got != 0 || got == v || m.MRStats().Unmapped != 1 {
			t.Fatalf("the modems' report passed on as %d (op1's send has %d), stats %+v", got, v, m.MRStats())
		}
	})
	t.Run("report before its send's mapping: held until it is stored", func(t *testing.T) {
		r := newMRRig(t, filepath.Join(t.TempDir(), "route.db"))
		r.sendVia(t, "smpp:op1", shared, dev, true) // smpp TP-MR 0 mapped
		// The modems' next send (their TP-MR 0) is reported before its
		// SendTPDU returns to the mux; a foreign report comes too.
		release := make(chan struct{})
		r.modems.mu.Lock()
		r.modems.block = release
		r.modems.mu.Unlock()
		type res struct {
			v   uint8
			err error
		}
		done := make(chan res, 1)
		go func() {
			r.smpp.mu.Lock()
			r.smpp.fail = func(int) bool { return true }
			r.smpp.mu.Unlock()
			_, v, err := r.m.SendTPDU(context.Background(), shared, dev, submit(t, dev, true))
			done <- res{v, err}
		}()
		<-r.modems.entered
		r.modems.report(t, shared, dev, 0, 0x00)  // its own, early
		r.modems.report(t, shared, dev2, 9, 0x00) // nobody's
		select {
		case msg := <-r.m.Inbound():
			t.Fatalf("report passed on before the mapping existed: %x", msg.TPDU)
		case <-time.After(100 * time.Millisecond):
		}
		close(release)
		got := <-done
		if got.err != nil {
			t.Fatal(got.err)
		}
		seen := map[uint8]bool{}
		for i := 0; i < 2; i++ {
			mr, _ := readReport(t, r.m)
			seen[mr] = true
		}
		if !seen[got.v] || !seen[9] {
			t.Fatalf("reports passed on as %v, want the send's %d and the foreign 9", seen, got.v)
		}
		if st := r.m.MRStats(); st.Held != 2 || st.Translated != 1 || st.Unmapped != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("state file unusable: a send that asked for a report fails retryably", func(t *testing.T) {
		r := newMRRig(t, filepath.Join(t.TempDir(), "route.db"))
		r.m.tr.db.Close()
		_, _, err := r.m.SendTPDU(context.Background(), shared, dev, submit(t, dev, true))
		var re interface{ Retryable() bool }
		if err == nil || !errors.As(err, &re) || !re.Retryable() {
			t.Fatalf("err %v", err)
		}
	})
}

// TestMRProperty: for any interleaving of sends for one number over two
// routes whose TP-MR counters collide, no two sends awaiting reports for
// the same recipient share a TP-MR, and reports coming back in any order
// each reach the bearer with the TP-MR its send was given.
func TestMRProperty(t *testing.T) {
	dir := t.TempDir()
	n := 0
	rapid.Check(t, func(rt *rapid.T) {
		n++
		smpp, modems := newSimRoute(), newSimRoute()
		m, err := New([]Route{
			{Name: "smpp:op1", Transport: smpp, Numbers: []string{shared}},
			{Name: "modems", Transport: modems, Numbers: []string{shared}},
		}, WithBuffer(512), WithStateFile(filepath.Join(dir, time.Now().Format("150405.000000000")+".db")))
		if err != nil {
			rt.Fatal(err)
		}
		defer m.Close()
		// Sequential sends: no batch to wait for, no fsync (durability is
		// TestMRTranslation's "restart" case).
		m.tr.db.MaxBatchDelay, m.tr.db.NoSync = 0, true
		type sent struct {
			viaModems bool
			to        string
			rmr, v    uint8
		}
		var sends []sent
		count := rapid.IntRange(1, 60).Draw(rt, "sends")
		for i := 0; i < count; i++ {
			viaModems := rapid.Bool().Draw(rt, "modems")
			to := rapid.SampledFrom([]string{dev, dev2}).Draw(rt, "to")
			smpp.mu.Lock()
			smpp.fail = func(int) bool { return viaModems }
			smpp.mu.Unlock()
			r := smpp
			if viaModems {
				r = modems
			}
			r.mu.Lock()
			rmr := r.next[shared]
			r.mu.Unlock()
			_, v, err := m.SendTPDU(context.Background(), shared, to, submit(rt, to, true))
			if err != nil {
				rt.Fatal(err)
			}
			sends = append(sends, sent{viaModems, to, rmr, v})
		}
		// Every send awaits its report: the bearer must be able to tell
		// them apart by recipient and TP-MR.
		seen := map[sent]bool{}
		for _, s := range sends {
			k := sent{to: s.to, v: s.v}
			if seen[k] {
				rt.Fatalf("TP-MR %d handed out twice for %s while awaiting reports", s.v, s.to)
			}
			seen[k] = true
		}
		order := rapid.Permutation(sends).Draw(rt, "report order")
		for _, s := range order {
			r := smpp
			if s.viaModems {
				r = modems
			}
			ra, _ := pdu.NumberAddress(s.to)
			b, _ := (&pdu.StatusReport{MR: s.rmr, Recipient: ra, SCTS: time.Now(), Discharge: time.Now()}).Marshal()
			r.in <- sms.Inbound{SIM: shared, TPDU: b}
			got, msg := readReport(rt, m)
			if got != s.v {
				rt.Fatalf("report of %+v passed on as %d", s, got)
			}
			if msg.Ack != nil {
				msg.Ack(context.Background())
			}
		}
		if st := m.MRStats(); st.Mapped != 0 {
			rt.Fatalf("stats %+v", st)
		}
	})
}

// TestMRStateSnapshot: WriteStateTo copies the TP-MR map consistently (a
// Mux opened on the copy knows the mapping awaiting its report); a Mux
// with no number on several routes keeps no file and says so.
func TestMRStateSnapshot(t *testing.T) {
	dir := t.TempDir()
	r := newMRRig(t, filepath.Join(dir, "route.db"))
	r.sendVia(t, "smpp:op1", shared, dev, true)
	if !r.m.KeepsState() {
		t.Fatal("KeepsState false with a shared number")
	}
	var buf bytes.Buffer
	if n, err := r.m.WriteStateTo(&buf); err != nil || n != int64(buf.Len()) {
		t.Fatalf("WriteStateTo: %d %v", n, err)
	}
	cp := filepath.Join(dir, "copy.db")
	if err := os.WriteFile(cp, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if c := newMRRig(t, cp); c.m.MRStats().Mapped != 1 {
		t.Fatalf("the copy holds %d mappings, want 1", c.m.MRStats().Mapped)
	}
	one, err := New([]Route{{Name: "modems", Transport: newSimRoute(), Numbers: []string{only}}}, WithStateFile(filepath.Join(dir, "unused.db")))
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	for _, c := range []struct {
		name string
		m    *Mux
	}{{"one route per number", one}, {"zero", &Mux{}}} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := c.m.WriteStateTo(&buf); c.m.KeepsState() || !errors.Is(err, ErrNoStateFile) {
				t.Errorf("%s: KeepsState %v, WriteStateTo %v", c.name, c.m.KeepsState(), err)
			}
		})
	}
}
