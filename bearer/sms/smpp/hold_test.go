package smpp_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
	"github.com/m2mbearer/m2mbearer/bearer/sms/pdu"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smpp"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smpp/smsc"
	"github.com/m2mbearer/m2mbearer/internal/smppwire"
)

// TestReceiptBeforeSubmitResp: the simulated SMSC writes every receipt
// before the submit_sm_resp naming its message_id (Faults.ReceiptFirst). The
// link holds each such receipt until the correlation is stored: every
// report reaches its outbox entry, none is unknown. On a transceiver the
// receipt is read before the response, so every one is held; with a
// transmitter and a receiver, the two readers race.
func TestReceiptBeforeSubmitResp(t *testing.T) {
	cases := []struct {
		name       string
		bind       smpp.BindMode
		concat     smpp.Concat
		allHeld    bool
		wantReport int // receipts per round (20 and 500-byte datagrams)
	}{
		{"transceiver udh", smpp.Transceiver, smpp.ConcatUDH, true, 1 + 4},
		{"transceiver payload", smpp.Transceiver, smpp.ConcatPayload, true, 1 + 1},
		{"transmitter+receiver udh", smpp.TransmitterReceiver, smpp.ConcatUDH, false, 1 + 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, rigOpts{faults: smsc.Faults{ReceiptFirst: true}, reports: true, link: smpp.Config{Bind: c.bind, Concat: c.concat}})
			const rounds = 3
			for i := 0; i < rounds; i++ {
				for _, size := range []int{20, 500} {
					if _, err := r.gw.WriteTo(datagram(size, byte(i)), addr(deviceNum)); err != nil {
						t.Fatal(err)
					}
				}
			}
			for i := 0; i < 2*rounds; i++ {
				waitResult(t, r, outbox.DeliveredOutcome)
			}
			st := settled(r.link)
			if st.ReceiptsUnknown != 0 || st.Receipts != uint64(rounds*c.wantReport) || st.AwaitingReceipt != 0 || st.ReceiptsHeld == 0 {
				t.Fatalf("link %+v", st)
			}
			if c.allHeld && st.ReceiptsHeld != st.Receipts {
				t.Fatalf("%d of %d receipts held", st.ReceiptsHeld, st.Receipts)
			}
			t.Logf("%d receipts, %d held for their message_id", st.Receipts, st.ReceiptsHeld)
		})
	}
}

// reportTPDU is an SMS-SUBMIT asking for a status report.
func reportTPDU(t *testing.T) []byte {
	t.Helper()
	segs, err := new(pdu.Encoder).Encode(deviceNum, datagram(10, 1), pdu.WithStatusReport(true))
	if err != nil || len(segs) != 1 {
		t.Fatalf("%d segments, %v", len(segs), err)
	}
	return segs[0].TPDU
}

func receiptPDU(seq uint32, id string) []byte {
	b, _ := (&smppwire.SM{SourceTON: 1, SourceNPI: 1, SourceAddr: deviceNum[1:], DestTON: 1, DestNPI: 1, DestAddr: serverNum[1:],
		ESMClass: smppwire.ESMDeliveryReceipt, ShortMessage: []byte("id:" + id + " sub:001 dlvrd:001 submit date:2612060830 done date:2612060830 stat:DELIVRD err:000 text:")}).Marshal()
	return smppwire.Marshal(smppwire.DeliverSM, 0, seq, b)
}

// TestReceiptHold drives the hold by hand: what the link answers, and when,
// for a receipt that comes while a submit is in flight.
func TestReceiptHold(t *testing.T) {
	cases := []struct {
		name     string
		hold     time.Duration
		inFlight bool   // a submit is outstanding when the receipt comes
		receipt  string // the receipt's message_id
		respond  string // the submit_sm_resp's message_id ("" none)
		wantHeld bool   // the deliver_sm is not answered before the submit_sm_resp
		report   bool   // a status report reaches Inbound
		unknown  uint64
	}{
		{"receipt before its submit_sm_resp", time.Minute, true, "M1", "M1", true, true, 0},
		{"foreign receipt while a submit is in flight", time.Minute, true, "X9", "M1", true, false, 1},
		{"hold bound passes first", 100 * time.Millisecond, true, "M1", "", false, false, 1},
		{"no submit in flight: answered at once", time.Minute, false, "M1", "", false, false, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rs := newRawSMSC(t)
			l, err := smpp.Dial(smpp.Config{Name: "raw", Addr: rs.ln.Addr().String(), SystemID: "gw", Password: "pw",
				Sources: []string{serverNum}, StateDir: t.TempDir(), ResponseTimeout: 5 * time.Second, ReceiptHold: c.hold,
				ReconnectMin: 10 * time.Millisecond, Logger: quiet()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			conn, br := rs.accept()
			sent := make(chan error, 1)
			var sub smppwire.PDU
			if c.inFlight {
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					_, _, err := l.SendTPDU(ctx, "", deviceNum, reportTPDU(t))
					sent <- err
				}()
				sub = readUntil(t, br, smppwire.SubmitSM)
			}
			conn.Write(receiptPDU(100, c.receipt))
			answered := make(chan smppwire.PDU, 1)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				p, err := smppwire.ReadPDU(br, 0)
				if err == nil {
					answered <- p
				}
			}()
			defer wg.Wait()
			if c.wantHeld {
				select {
				case p := <-answered:
					t.Fatalf("receipt answered while its submit is in flight: %+v", p.Header)
				case <-time.After(150 * time.Millisecond):
				}
			}
			if c.respond != "" {
				body, _ := (&smppwire.SubmitResp{MessageID: c.respond}).Marshal()
				conn.Write(smppwire.Marshal(smppwire.SubmitSMResp, 0, sub.Sequence, body))
				if err := <-sent; err != nil {
					t.Fatal(err)
				}
			}
			if c.report {
				select {
				case in := <-l.Inbound():
					inc, err := pdu.Decode(in.TPDU)
					if err != nil || inc.StatusReport == nil || in.SIM != serverNum {
						t.Fatalf("inbound %+v: %v", in, err)
					}
					in.Ack(context.Background())
				case <-time.After(10 * time.Second):
					t.Fatalf("no status report; stats %+v", l.Stats())
				}
			}
			select {
			case p := <-answered:
				if p.ID != smppwire.DeliverSMResp || p.Sequence != 100 || p.Status != smppwire.ROK {
					t.Fatalf("answer %+v", p.Header)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("receipt never answered; stats %+v", l.Stats())
			}
			st := l.Stats()
			if st.ReceiptsUnknown != c.unknown || (st.ReceiptsHeld == 1) != c.inFlight || (st.Receipts == 1) != c.report {
				t.Fatalf("stats %+v", st)
			}
			if c.inFlight && c.respond == "" {
				// The submit is still outstanding; the link's Close ends it.
				conn.Close()
				if err := <-sent; err == nil {
					t.Fatal("unanswered submit succeeded")
				}
			}
		})
	}
}

// clock is a test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestPayloadSetExpiry: in ConcatPayload mode a set whose other segments
// never come is kept (durably, across a restart) until PayloadSetMaxAge,
// then removed and counted; beyond MaxPayloadSets the oldest set goes.
func TestPayloadSetExpiry(t *testing.T) {
	enc := new(pdu.Encoder)
	set := func() [][]byte { // a three-segment set for the device
		segs, err := enc.Encode(deviceNum, datagram(300, 7), pdu.WithStatusReport(true))
		if err != nil || len(segs) != 3 {
			t.Fatalf("%d segments, %v", len(segs), err)
		}
		return [][]byte{segs[0].TPDU, segs[1].TPDU, segs[2].TPDU}
	}
	clk := &clock{t: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)}
	dir := t.TempDir()
	dial := func() *smpp.Link {
		// The SMSC is never reached: incomplete sets need no bind.
		l, err := smpp.Dial(smpp.Config{Name: "p", Addr: "127.0.0.1:1", SystemID: "gw", Sources: []string{serverNum}, StateDir: dir,
			Concat: smpp.ConcatPayload, PayloadSetMaxAge: time.Hour, PruneInterval: 5 * time.Millisecond, MaxPayloadSets: 2,
			ReconnectMin: time.Hour, Now: clk.now, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	waitStats := func(l *smpp.Link, ok func(smpp.Stats) bool) smpp.Stats {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(2 * time.Millisecond) {
			if st := l.Stats(); ok(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("stats %+v", l.Stats())
			}
		}
	}
	send := func(l *smpp.Link, tpdu []byte) {
		t.Helper()
		if _, _, err := l.SendTPDU(context.Background(), "", deviceNum, tpdu); err != nil {
			t.Fatal(err)
		}
	}
	l := dial()
	a := set()
	send(l, a[0])
	send(l, a[1])
	clk.add(30 * time.Minute)
	if st := l.Stats(); st.PayloadSets != 1 || st.SetsExpired != 0 {
		t.Fatalf("stats %+v", st)
	}
	l.Close()

	t.Run("kept across a restart until its age", func(t *testing.T) {
		l := dial()
		defer l.Close()
		time.Sleep(20 * time.Millisecond) // several prunes
		if st := l.Stats(); st.PayloadSets != 1 || st.SetsExpired != 0 {
			t.Fatalf("stats %+v", st)
		}
		clk.add(31 * time.Minute)
		st := waitStats(l, func(s smpp.Stats) bool { return s.SetsExpired == 1 })
		if st.PayloadSets != 0 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("the oldest set goes beyond the bound", func(t *testing.T) {
		l := dial()
		defer l.Close()
		b, c, d := set(), set(), set()
		send(l, b[0])
		clk.add(time.Minute)
		send(l, c[0])
		clk.add(time.Minute)
		send(l, d[0]) // a third set: b goes
		st := l.Stats()
		if st.SetsEvicted != 1 || st.PayloadSets != 2 {
			t.Fatalf("stats %+v", st)
		}
		// c is still whole-able: its last segments complete it (the submit
		// then waits for a bind that never comes).
		send(l, c[1])
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if _, _, err := l.SendTPDU(ctx, "", deviceNum, c[2]); !errors.Is(err, smpp.ErrNotBound) {
			t.Fatalf("completing set c: %v", err)
		}
	})
}
