package smpp_test

import (
	"bytes"
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
	"github.com/m2mbearer/m2mbearer/bearer/sms/pdu"
	"github.com/m2mbearer/m2mbearer/bearer/sms/route"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smpp"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smpp/smsc"
	"github.com/m2mbearer/m2mbearer/modem/sim"
)

// modemRoute stands for a modem whose SIM has the same number as the SMPP
// account: it numbers its sends as a SIM does (TP-MR 0, 1, ... like the
// SMPP link's counter for the device, so the two collide), refuses every
// second datagram retryably (the mux then fails over to the SMPP link, so
// the datagrams interleave), and reports what it sent on demand.
type modemRoute struct {
	mu    sync.Mutex
	mine  bool // the datagram being sent is the modem's
	next  uint8
	sent  map[string]uint8 // TPDU -> TP-MR
	in    chan sms.Inbound
	calls int
}

func (m *modemRoute) SendTPDU(_ context.Context, from, _ string, tpdu []byte) (string, uint8, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if sub, err := pdu.ParseSubmit(tpdu); err == nil && sub.UDH.Concat.Seq <= 1 {
		m.mine = !m.mine // a new datagram
	}
	if !m.mine {
		return "", 0, smpp.ErrNotBound // any retryable error
	}
	mr := m.next
	m.next++
	m.sent[string(tpdu)] = mr
	return from, mr, nil
}

func (m *modemRoute) Inbound() <-chan sms.Inbound { return m.in }

// TestSharedNumberReports: one number on an SMPP account and on a modem's
// SIM; the gateway's sends for one device interleave over both, whose
// TP-MRs collide. The modem reports its sends failed, the SMSC reports its
// own delivered; every report must reach its own outbox entry: an entry
// fails exactly when one of its segments went through the modem.
func TestSharedNumberReports(t *testing.T) {
	n, err := sim.NewNetwork(sim.WithConditions(sim.Conditions{Latency: sim.Fixed(5 * time.Millisecond)}), sim.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	// The SMSC's receipts come 300 ms late, after the modem's reports.
	srv, err := smsc.Start(smsc.Config{Network: n, Logger: quiet(), Faults: smsc.Faults{ReceiptDelay: 300 * time.Millisecond},
		Accounts: []smsc.Account{{SystemID: "gw", Password: "pw", Numbers: []string{serverNum}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	dir := t.TempDir()
	link, err := smpp.Dial(smpp.Config{Name: "op1", Addr: srv.Addr(), SystemID: "gw", Password: "pw", Sources: []string{serverNum},
		StateDir: dir, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { link.Close() })
	modem := &modemRoute{sent: map[string]uint8{}, in: make(chan sms.Inbound, 64)}
	mux, err := route.New([]route.Route{
		{Name: "modems", Transport: modem, Numbers: []string{serverNum}},
		{Name: "smpp:op1", Transport: link, Numbers: link.Sources(), Ready: link.Ready},
	}, route.WithStateFile(filepath.Join(dir, "route.db")), route.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mux.Close() })
	gw, results := muxBearers(t, n, mux, dir, link)

	const entries = 8
	for i := 0; i < entries; i++ {
		size := []int{20, 300}[i%2] // one segment, or three
		if _, err := gw.WriteTo(datagram(size, byte(i)), addr(deviceNum)); err != nil {
			t.Fatal(err)
		}
	}
	// Once every segment was accepted, the modem reports its own failed.
	for deadline := time.Now().Add(20 * time.Second); gw.Stats().Outbox.Pending != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("segments not all accepted: %+v", gw.Stats().Outbox)
		}
	}
	modem.mu.Lock()
	var viaModem [][]byte
	for tp, mr := range modem.sent {
		viaModem = append(viaModem, []byte(tp))
		ra, _ := pdu.NumberAddress(deviceNum)
		b, _ := (&pdu.StatusReport{MR: mr, Recipient: ra, SCTS: time.Now(), Discharge: time.Now(), Status: 0x41}).Marshal()
		modem.in <- sms.Inbound{SIM: serverNum, TPDU: b}
	}
	modem.mu.Unlock()
	if len(viaModem) == 0 {
		t.Fatal("nothing went through the modem")
	}
	failed, delivered := 0, 0
	for i := 0; i < entries; i++ {
		var r outbox.Result
		select {
		case r = <-results:
		case <-time.After(20 * time.Second):
			t.Fatalf("%d of %d entries ended; mux %+v, link %+v", i, entries, mux.MRStats(), link.Stats())
		}
		touched := false
		for _, s := range r.Entry.Segments {
			for _, tp := range viaModem {
				touched = touched || bytes.Equal(s.TPDU, tp)
			}
		}
		switch {
		case touched && r.Outcome == outbox.Failed:
			failed++
		case !touched && r.Outcome == outbox.DeliveredOutcome:
			delivered++
		default:
			t.Fatalf("entry %d (%d segments, through the modem: %v) ended %v: %v", r.Entry.ID, len(r.Entry.Segments), touched, r.Outcome, r.Err)
		}
	}
	st := mux.MRStats()
	if failed == 0 || delivered == 0 || st.Dropped != 0 || st.Unmapped != 0 {
		t.Fatalf("failed %d, delivered %d, mux %+v", failed, delivered, st)
	}
	t.Logf("%d entries failed through the modem, %d delivered through SMPP; mux %+v", failed, delivered, st)
}

// TestAccountSharedByLinks: two links bound to one SMSC account (redundant
// binds), the SMSC handing each receipt to whichever session of the account
// takes it next. Sharing one State (and one TP-MR space in the mux), every
// receipt is correlated whichever link it reaches; each link with its own,
// the receipts that reach the other link are unknown there.
func TestAccountSharedByLinks(t *testing.T) {
	for _, shared := range []bool{true, false} {
		name := map[bool]string{true: "one State", false: "a State each"}[shared]
		t.Run(name, func(t *testing.T) {
			n, err := sim.NewNetwork(sim.WithConditions(sim.Conditions{Latency: sim.Fixed(5 * time.Millisecond)}), sim.WithLogger(quiet()))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { n.Close() })
			srv, err := smsc.Start(smsc.Config{Network: n, Logger: quiet(),
				Accounts: []smsc.Account{{SystemID: "gw", Password: "pw", Numbers: []string{serverNum}}}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Close() })
			dir := t.TempDir()
			var st *smpp.State
			space := ""
			if shared {
				if st, err = smpp.OpenState(filepath.Join(dir, "smpp-account.db")); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { st.Close() }) // after the links (cleanups run last first)
				space = "smpp-account:gw"
			}
			var routes []route.Route
			var links []*smpp.Link
			for _, name := range []string{"op1", "op2"} {
				l, err := smpp.Dial(smpp.Config{Name: name, Addr: srv.Addr(), SystemID: "gw", Password: "pw", Sources: []string{serverNum},
					StateDir: dir, State: st, Logger: quiet()})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { l.Close() })
				links = append(links, l)
				routes = append(routes, route.Route{Name: "smpp:" + name, Transport: l, Numbers: l.Sources(), Ready: l.Ready, Space: space})
			}
			mux, err := route.New(routes, route.WithStateFile(filepath.Join(dir, "route.db")), route.WithLogger(quiet()))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { mux.Close() })
			gw, results := muxBearers(t, n, mux, dir, links...)
			const entries = 16
			for i := 0; i < entries; i++ {
				if _, err := gw.WriteTo(datagram(20, byte(i)), addr(deviceNum)); err != nil {
					t.Fatal(err)
				}
			}
			if !shared {
				for deadline := time.Now().Add(20 * time.Second); links[0].Stats().ReceiptsUnknown+links[1].Stats().ReceiptsUnknown == 0; time.Sleep(5 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("no receipt reached the other link: %+v / %+v", links[0].Stats(), links[1].Stats())
					}
				}
				return
			}
			for i := 0; i < entries; i++ {
				select {
				case r := <-results:
					if r.Outcome != outbox.DeliveredOutcome {
						t.Fatalf("entry %d: %v %v", r.Entry.ID, r.Outcome, r.Err)
					}
				case <-time.After(20 * time.Second):
					t.Fatalf("%d of %d delivered; op1 %+v, op2 %+v, mux %+v", i, entries, links[0].Stats(), links[1].Stats(), mux.MRStats())
				}
			}
			a, b := links[0].Stats(), links[1].Stats()
			if a.ReceiptsUnknown+b.ReceiptsUnknown != 0 || a.Receipts == 0 || b.Receipts == 0 || a.Receipts+b.Receipts != entries {
				t.Fatalf("op1 %+v\nop2 %+v", a, b)
			}
			t.Logf("receipts correlated by op1 %d, by op2 %d; submits op1 %d, op2 %d", a.Receipts, b.Receipts, a.Submitted, b.Submitted)
		})
	}
}

// muxBearers starts the gateway's bearer over mux (status reports asked
// for, results on the channel) and the device's on the network, and waits
// for the links to bind.
func muxBearers(t *testing.T, n *sim.Network, mux *route.Mux, dir string, links ...*smpp.Link) (*sms.Bearer, chan outbox.Result) {
	t.Helper()
	results := make(chan outbox.Result, 64)
	gw, err := sms.New(mux, sms.Config{StateDir: dir, Submit: []pdu.Option{pdu.WithStatusReport(true)}, Logger: quiet(),
		Peers:    map[string]sms.Peer{deviceNum: {Security: sms.ModeNoSec, SIM: serverNum}},
		Worker:   outbox.WorkerConfig{Poll: 10 * time.Millisecond, BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond},
		OnResult: func(r outbox.Result) { results <- r }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	dev, err := sms.New(newEPLink(t, n, deviceNum), sms.Config{StateDir: t.TempDir(), Logger: quiet(),
		Peers: map[string]sms.Peer{serverNum: {Security: sms.ModeNoSec}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	for _, l := range links {
		for deadline := time.Now().Add(10 * time.Second); !l.Ready(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("link %s not bound", l.Name())
			}
		}
	}
	return gw, results
}
