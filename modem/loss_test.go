package modem

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// memQuarantine is an in-memory Quarantine for the driver's tests. It
// records whether the fake modem still stored the slot when Put came (a
// message must be quarantined before it is deleted).
type memQuarantine struct {
	f    *fakeModem
	mu   sync.Mutex
	list []memEntry
	fail error
}

type memEntry struct {
	Quarantined
	storedAtPut bool
}

func newMemQuarantine(f *fakeModem) *memQuarantine { return &memQuarantine{f: f} }

func (q *memQuarantine) Put(ctx context.Context, e Quarantined) (uint64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.fail != nil {
		return 0, q.fail
	}
	stored := false
	if q.f != nil && e.Index >= 0 {
		for _, i := range q.f.stored() {
			stored = stored || i == e.Index
		}
	}
	e.ID = uint64(len(q.list) + 1)
	q.list = append(q.list, memEntry{e, stored})
	return e.ID, nil
}

func (q *memQuarantine) entries() []memEntry {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]memEntry(nil), q.list...)
}

// A URC inside a +CMGR answer, between the header and the PDU line (Huawei
// ^RSSI, a +CMTI for the next message, a power-up text), is not taken for
// the PDU: the message is delivered and deleted only after the Ack.
func TestURCInsideCMGRAndCMGL(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inside []string
	}{
		{"+CMTI", []string{`+CMTI: "SM",7`}},
		{"Huawei ^RSSI", []string{"^RSSI: 14"}},
		{"Quectel +QIND", []string{"+QIND: SMS DONE"}},
		{"power-up texts", []string{"RDY", "SMS Ready"}},
		{"unknown vendor +XYZ", []string{"+XYZ: 1,2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			f.inside = tc.inside
			q := newMemQuarantine(f)
			m := openFake(t, f, testProfile(), Config{}, WithQuarantine(q))
			f.storeMsg(testSMSC+testDeliver, testDeliverLen, false) // found by the sweep (+CMGL)
			if err := m.Sweep(context.Background()); err != nil {
				t.Fatal(err)
			}
			r := recvOne(t, m, 10*time.Second)
			idx := f.storeMsg(testSMSC+deliverWith(0x42), testDeliverLen, true) // announced, read by +CMGR
			r2 := recvOne(t, m, 10*time.Second)
			if fmt.Sprintf("%X", r.TPDU) != testDeliver || r2.Index != idx || fmt.Sprintf("%X", r2.TPDU) != deliverWith(0x42) {
				t.Fatalf("delivered %X (slot %d) and %X (slot %d)", r.TPDU, r.Index, r2.TPDU, r2.Index)
			}
			if len(f.stored()) != 2 || len(q.entries()) != 0 {
				t.Fatalf("stored %v, quarantined %v: nothing may leave before the Ack", f.stored(), q.entries())
			}
			for _, x := range []*Received{r, r2} {
				if err := x.Ack(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			if len(f.stored()) != 0 {
				t.Fatalf("stored after Ack: %v", f.stored())
			}
		})
	}
}

// A <length> that does not match the PDU (common in real dumps: phones
// announce 78 or 164 for short messages) is logged and the PDU used,
// because it decodes.
func TestLengthMismatchDelivered(t *testing.T) {
	f := newFake()
	q := newMemQuarantine(f)
	m := openFake(t, f, testProfile(), Config{}, WithQuarantine(q))
	idx := f.storeMsg(testSMSC+testDeliver, 78, true)
	r := recvOne(t, m, 10*time.Second)
	if r.Index != idx || fmt.Sprintf("%X", r.TPDU) != testDeliver {
		t.Fatalf("%+v", r)
	}
	if st := m.Stats(); st.LengthMismatches != 1 || st.Quarantined != 0 {
		t.Fatalf("stats %+v", st)
	}
	if err := r.Ack(context.Background()); err != nil || len(f.stored()) != 0 {
		t.Fatalf("Ack: %v, stored %v", err, f.stored())
	}
}

// ZTE lists stored status reports with an empty <stat>: they are
// delivered (by their TP-MTI), not left on the SIM for ever.
func TestEmptyStatStatusReportDelivered(t *testing.T) {
	f := newFake()
	m := openFake(t, f, testProfile(), Config{})
	f.mu.Lock()
	f.store[3] = fmt.Sprintf(",%d,%s", testReportLen, testSMSC+testReport)
	f.mu.Unlock()
	f.write("\r\n+CDSI: \"SM\",3\r\n")
	r := recvOne(t, m, 10*time.Second)
	if r.Kind != KindStatusReport || r.Index != 3 {
		t.Fatalf("%+v", r)
	}
	_ = r.Ack(context.Background())
	if len(f.stored()) != 0 {
		t.Fatal("not deleted after Ack")
	}
}

// What cannot be delivered is quarantined, then deleted; what is not ours
// (STO UNSENT/SENT, a draft without <stat>) stays; without a quarantine
// nothing is deleted and each slot is reported once.
func TestUndeliverableStored(t *testing.T) {
	submit := "11000B911326880736F40000AA0141" // an SMS-SUBMIT (TP-MTI 01), 15 octets
	cases := []struct {
		name       string
		entry      string // "stat,len,hex"
		quarantine bool   // expected in the quarantine (and deleted)
		stays      bool   // expected to stay on the modem untouched
	}{
		{"not hex", "0,5,ZZ-not-hex", true, false},
		{"odd hex", "0,22," + testSMSC + testDeliver + "A", true, false},
		{"truncated, length mismatch, does not decode", fmt.Sprintf("0,%d,%s", testDeliverLen, testSMSC+testDeliver[:20]), true, false},
		{"SMSC length runs past the line", "1,5,FF00", true, false},
		{"SMS-SUBMIT in a received slot", "1,15,00" + submit, true, false},
		{"STO UNSENT is not ours", "2,15,00" + submit, false, true},
		{"SMS-SUBMIT without <stat> is a draft", ",15,00" + submit, false, true},
		{"header without PDU line", "0,22,", false, true},
	}
	for _, tc := range cases {
		for _, withQ := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/quarantine=%v", tc.name, withQ), func(t *testing.T) {
				f := newFake()
				f.mu.Lock()
				f.store[4] = tc.entry
				f.mu.Unlock()
				var q *memQuarantine
				var opts []Option
				if withQ {
					q = newMemQuarantine(f)
					opts = append(opts, WithQuarantine(q))
				}
				m := openFake(t, f, testProfile(), Config{}, opts...)
				for i := 0; i < 3; i++ { // repeated sweeps report a stuck slot once
					if err := m.Sweep(context.Background()); err != nil && !errors.Is(err, ErrBadResponse) {
						t.Logf("sweep: %v", err)
					}
				}
				deleted := len(f.stored()) == 0
				select {
				case r := <-m.Received():
					t.Fatalf("delivered %+v", r)
				default:
				}
				switch {
				case tc.quarantine && withQ:
					e := q.entries()
					if !deleted || len(e) != 1 || !e[0].storedAtPut || e[0].Index != 4 || e[0].Storage != "SM" || e[0].Reason == "" {
						t.Fatalf("deleted %v, quarantine %+v", deleted, e)
					}
				case tc.quarantine:
					if deleted {
						t.Fatal("deleted without a quarantine")
					}
					if st := m.Stats(); st.BadInput != 1 {
						t.Fatalf("reported %d times, want once", st.BadInput)
					}
				case tc.stays:
					if deleted || (q != nil && len(q.entries()) != 0) {
						t.Fatalf("deleted %v, quarantine %v", deleted, q)
					}
				}
			})
		}
	}
}

// A full (or failing) quarantine keeps the message on the modem.
func TestQuarantineFullKeeps(t *testing.T) {
	f := newFake()
	f.storeMsg("ZZ-not-hex", 5, false)
	q := newMemQuarantine(f)
	q.fail = fmt.Errorf("%w: 1000 entries", ErrQuarantineFull)
	openFake(t, f, testProfile(), Config{}, WithQuarantine(q))
	time.Sleep(50 * time.Millisecond) // the sweep at open has run (Open returns after it)
	if len(f.stored()) != 1 {
		t.Fatal("deleted although the quarantine refused it")
	}
}

// An undecodable +CMT under +CSMS=1 is quarantined, then acknowledged; when
// it cannot be quarantined it is refused (+CNMA=2), so that the network
// delivers it again.
func TestDirectUndecodable(t *testing.T) {
	for _, withQ := range []bool{true, false} {
		t.Run(fmt.Sprintf("quarantine=%v", withQ), func(t *testing.T) {
			f := newFake()
			p := mustProfile("ublox-sara")
			p.CommandTimeout = 3 * time.Second
			var opts []Option
			q := newMemQuarantine(nil)
			if withQ {
				opts = append(opts, WithQuarantine(q))
			}
			m := openFake(t, f, p, Config{}, opts...)
			f.write("\r\n+CMT: ,22\r\n" + testSMSC + "0400\r\n") // truncated
			waitFor(t, 10*time.Second, "acknowledged or refused", func() bool {
				f.mu.Lock()
				defer f.mu.Unlock()
				return f.cnma+f.nack > 0
			})
			f.mu.Lock()
			acked, nacked := f.cnma, f.nack
			f.mu.Unlock()
			if withQ && (acked != 1 || nacked != 0 || len(q.entries()) != 1 || q.entries()[0].Index != -1) {
				t.Fatalf("acked %d nacked %d quarantine %+v", acked, nacked, q.entries())
			}
			if !withQ && (acked != 0 || nacked != 1) {
				t.Fatalf("acked %d nacked %d", acked, nacked)
			}
			if m.Stats().Received != 0 {
				t.Fatal("delivered")
			}
		})
	}
}

// Lines ending CR CR LF (Huawei), bare LF and bare CR: the modem opens,
// sends and receives.
func TestLineEndingsThroughDriver(t *testing.T) {
	for name, eol := range map[string]string{"CRCRLF": "\r\r\n", "LF": "\n", "CR": "\r"} {
		t.Run(name, func(t *testing.T) {
			f := newFake()
			f.eol = eol
			m := openFake(t, f, testProfile(), Config{})
			if mr, err := m.SendPDU(context.Background(), testSubmit); err != nil || mr != 0 {
				t.Fatalf("SendPDU = %d, %v", mr, err)
			}
			f.storeMsg(testSMSC+testDeliver, testDeliverLen, true)
			r := recvOne(t, m, 10*time.Second)
			if err := r.Ack(context.Background()); err != nil || len(f.stored()) != 0 {
				t.Fatalf("Ack: %v", err)
			}
		})
	}
}

// Final result codes the old engine did not know end the command at once
// with a typed error and do not count towards a reconnect.
func TestUnknownFinalCodes(t *testing.T) {
	f := newFake()
	p := testProfile()
	m := openFake(t, f, p, Config{TimeoutStorm: 2})
	for _, code := range []string{"COMMAND NOT SUPPORT", "TOO MANY PARAMETERS", "MODEM ERROR: 5"} {
		t.Run(code, func(t *testing.T) {
			f.mu.Lock()
			f.override = map[string]string{"+CBC": "\r\n" + code + "\r\n"}
			f.mu.Unlock()
			start := time.Now()
			_, err := m.Command(context.Background(), "+CBC")
			var rc *ResultCodeError
			if !errors.As(err, &rc) || rc.Line != code || !errors.Is(err, ErrATError) || !Retryable(err) {
				t.Fatalf("%s: err = %v", code, err)
			}
			if d := time.Since(start); d > p.CommandTimeout/2 {
				t.Fatalf("%s took %v: waited for the timeout", code, d)
			}
		})
	}
	if !m.Connected() || m.Stats().Reconnects != 0 {
		t.Fatal("unknown final codes counted as timeouts")
	}
}

// A Wavecom answers AT+CPIN? without OK, a modem may quote the state
// (+CPIN: "SIM PIN"): both open.
func TestCPINDialects(t *testing.T) {
	f := newFake()
	f.cpinNoOK = true
	m := openFake(t, f, testProfile(), Config{})
	if !m.Connected() {
		t.Fatal("not connected")
	}
	g := newFake()
	g.pin = "1234"
	g.cpinQuoted = true
	var sentPIN bool
	openFake(t, g, testProfile(), Config{PIN: "1234"})
	for _, c := range g.commands() {
		sentPIN = sentPIN || c == `+CPIN="1234"`
	}
	if !sentPIN {
		t.Fatalf("PIN not given for a quoted state: %q", g.commands())
	}
}

// A Nokia answers +CPMS? with empty fields: the health poll keeps signal
// and registration and reports the storage as degraded.
func TestHealthDegradesField(t *testing.T) {
	f := newFake()
	f.override = map[string]string{"+CPMS?": "\r\n+CPMS: ,,,,,,,,\r\n\r\nOK\r\n", "+CSQ": "\r\n+CSQ: 15,x\r\n\r\nOK\r\n"}
	p := testProfile()
	p.Storage = "SM"
	m := openFake(t, f, p, Config{})
	h, err := m.Health(context.Background())
	if err != nil || h.Err != nil {
		t.Fatalf("Health: %v / %v", err, h.Err)
	}
	if h.Signal.RSSI != 15 || h.CSReg.Stat != RegHome || h.Storage != nil || len(h.Degraded) != 1 || !strings.Contains(h.Degraded[0], "+CPMS") {
		t.Fatalf("health %+v", h)
	}
	if !h.OK() {
		t.Fatal("a degraded storage read made the modem not OK")
	}
}

// A +CMT that arrives while a session is being set up after a reconnect
// (the network delivers right after +CNMI) is handled once the session is
// live, so that its +CNMA can go out (it failed with ErrNotConnected, and
// the network had to deliver it again).
func TestDirectDeliveryDuringSetup(t *testing.T) {
	f := newFake()
	p := mustProfile("ublox-sara")
	p.CommandTimeout = 3 * time.Second
	m := openFake(t, f, p, Config{})
	f.mu.Lock()
	f.override = map[string]string{"+CNMI=" + p.CNMI: "\r\nOK\r\n\r\n+CMT: ,22\r\n" + testSMSC + testDeliver + "\r\n"}
	f.latency = 100 * time.Millisecond // the rest of the setup takes a while
	f.mu.Unlock()
	f.unplug()
	r := recvOne(t, m, 20*time.Second)
	if err := r.Ack(context.Background()); err != nil {
		t.Fatalf("Ack of a +CMT that came during setup: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cnma != 1 {
		t.Fatalf("+CNMA sent %d times", f.cnma)
	}
}
