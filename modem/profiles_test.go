package modem_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/modem"
	"github.com/m2mbearer/m2mbearer/modem/quarantine"
	"github.com/m2mbearer/m2mbearer/modem/sim"
	"github.com/warthog618/sms/encoding/tpdu"
)

// These tests open each simulated modem in its vendor dialect over a pty
// (the real serial code path) with the driver detecting its profile, and
// run the loss paths of issue 13 through a pty as well.

// openPTY opens the driver on a simulated modem plugged into a pty behind
// a stable link (a udev name), as a deployment opens /dev/ttyUSBn.
func openPTY(t *testing.T, sm *sim.Modem, link string, opts ...modem.Option) *modem.Modem {
	t.Helper()
	if _, err := sm.OpenPTY(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := modem.Open(ctx, modem.Config{Device: link, MSISDN: sm.MSISDN(), HealthInterval: -1,
		ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond},
		append([]modem.Option{modem.WithLogger(quiet())}, opts...)...)
	if err != nil {
		t.Fatalf("Open %s on %s: %v", sm.Profile().Name, link, err)
	}
	t.Cleanup(func() { sm.Unplug(); _ = m.Close() })
	return m
}

// message is one SMS of the matrix: a number (in every segment) and its
// segment count.
type message struct {
	id, parts int
}

// segments builds the SMS-SUBMIT TPDUs of msg to dst: 8-bit data, with a
// concatenation IE (TS 23.040 §9.2.3.24.1) when it has several parts.
func segments(t *testing.T, dst string, msg message) [][]byte {
	t.Helper()
	var out [][]byte
	for seq := 1; seq <= msg.parts; seq++ {
		s, err := tpdu.NewSubmit()
		if err != nil {
			t.Fatal(err)
		}
		s.DA = tpdu.NewAddress(tpdu.FromNumber(dst))
		s.DCS = tpdu.Dcs8BitData
		ud := make([]byte, 4, 120)
		binary.BigEndian.PutUint32(ud, uint32(msg.id))
		for len(ud) < cap(ud) {
			ud = append(ud, byte(seq))
		}
		s.UD = ud
		if msg.parts > 1 {
			s.SetUDH(tpdu.UserDataHeader{tpdu.InformationElement{ID: 0, Data: []byte{byte(msg.id), byte(msg.parts), byte(seq)}}})
		}
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// sender sends messages from m, retrying what fails retryably (a send in
// flight when the modem is unplugged fails with ErrLinkLost).
func send(t *testing.T, m *modem.Modem, dst string, msgs []message) {
	t.Helper()
	for _, msg := range msgs {
		for _, seg := range segments(t, dst, msg) {
			deadline := time.Now().Add(60 * time.Second)
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				_, err := m.SendPDU(ctx, seg)
				cancel()
				if err == nil {
					break
				}
				if !modem.Retryable(err) || time.Now().After(deadline) {
					t.Fatalf("send %d from %s: %v", msg.id, m.Name(), err)
				}
				time.Sleep(50 * time.Millisecond) // the modem is being re-opened
			}
		}
	}
}

// collector acknowledges everything m receives and records the complete
// messages (by id: duplicates after a reconnect are expected and counted
// once).
type collector struct {
	mu       sync.Mutex
	parts    map[int]map[int]bool // id -> segment numbers seen
	total    map[int]int
	complete map[int]bool
	reports  int
}

func collect(t *testing.T, m *modem.Modem) *collector {
	c := &collector{parts: map[int]map[int]bool{}, total: map[int]int{}, complete: map[int]bool{}}
	done := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case r := <-m.Received():
				c.take(t, r)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				if err := r.Ack(ctx); err != nil {
					t.Logf("ack %s/%d: %v (delivered again later)", r.Storage, r.Index, err)
				}
				cancel()
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return c
}

func (c *collector) take(t *testing.T, r *modem.Received) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.Kind == modem.KindStatusReport {
		c.reports++
		return
	}
	d := tpdu.TPDU{Direction: tpdu.MT}
	if err := d.UnmarshalBinary(r.TPDU); err != nil || len(d.UD) < 4 {
		t.Errorf("received TPDU %X: %v", r.TPDU, err)
		return
	}
	id := int(binary.BigEndian.Uint32(d.UD))
	total, seq, _, ok := d.ConcatInfo()
	if !ok {
		total, seq = 1, 1
	}
	if c.parts[id] == nil {
		c.parts[id] = map[int]bool{}
	}
	c.parts[id][seq] = true
	c.total[id] = total
	if len(c.parts[id]) == total {
		c.complete[id] = true
	}
}

func (c *collector) waitAll(t *testing.T, ids []int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		c.mu.Lock()
		var missing []int
		for _, id := range ids {
			if !c.complete[id] {
				missing = append(missing, id)
			}
		}
		c.mu.Unlock()
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("messages %v never complete", missing)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The matrix: 20 messages each way (10 single, 10 concatenated of two or
// three segments) through a modem in each vendor's dialect, unplugged in
// the middle: each message arrives whole (at least once), and the
// simulated modem holds nothing afterwards.
func TestEveryDialectSendsReceivesSurvivesUnplug(t *testing.T) {
	for _, sp := range sim.Profiles() {
		t.Run(sp.Name, func(t *testing.T) {
			t.Parallel()
			n, err := sim.NewNetwork(sim.WithSeed(11), sim.WithConditions(sim.Conditions{Latency: sim.Uniform(2*time.Millisecond, 10*time.Millisecond)}),
				sim.WithValidity(time.Hour, 50*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = n.Close() })
			link := filepath.Join(t.TempDir(), "ttyModem")
			sx, err := n.AddModem("+15557001", sim.WithProfile(sp), sim.WithPTYLink(link))
			if err != nil {
				t.Fatal(err)
			}
			sy, err := n.AddModem("+15557002")
			if err != nil {
				t.Fatal(err)
			}
			x := openPTY(t, sx, link)
			y := openSim(t, sy, modem.Config{})
			if got := x.Profile().Name; got != sp.DriverProfile {
				t.Fatalf("profile %s detected for the %s dialect, want %s", got, sp.Name, sp.DriverProfile)
			}
			atX, atY := collect(t, x), collect(t, y)
			var out, in []message
			var outIDs, inIDs []int
			for i := 0; i < 20; i++ {
				parts := 1
				if i%2 == 1 {
					parts = 2 + i%3/2
				}
				out = append(out, message{id: 100 + i, parts: parts})
				in = append(in, message{id: 200 + i, parts: parts})
				outIDs, inIDs = append(outIDs, 100+i), append(inIDs, 200+i)
			}
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); send(t, x, sy.MSISDN(), out[:10]) }()
			go func() { defer wg.Done(); send(t, y, sx.MSISDN(), in[:10]) }()
			wg.Wait()
			// Unplug while the other side keeps sending: what comes
			// meanwhile waits in the SMSC, and the driver re-opens the link
			// once the modem is back.
			sx.Unplug()
			send(t, y, sx.MSISDN(), in[10:15])
			time.Sleep(30 * time.Millisecond)
			if _, err := sx.Replug(); err != nil {
				t.Fatal(err)
			}
			wg.Add(2)
			go func() { defer wg.Done(); send(t, x, sy.MSISDN(), out[10:]) }()
			go func() { defer wg.Done(); send(t, y, sx.MSISDN(), in[15:]) }()
			wg.Wait()
			atY.waitAll(t, outIDs, 60*time.Second)
			atX.waitAll(t, inIDs, 60*time.Second)
			deadline := time.Now().Add(20 * time.Second)
			for sx.Stats().Stored != 0 {
				if time.Now().After(deadline) {
					t.Fatalf("messages left on the modem: %+v", sx.Stats())
				}
				time.Sleep(20 * time.Millisecond)
			}
			if st := x.Stats(); st.Reconnects < 1 || st.Quarantined != 0 {
				t.Fatalf("driver stats %+v", st)
			}
		})
	}
}

// lossPath runs one loss path of issue 13 through a pty: the simulated
// modem stores what the path needs, the driver with a quarantine reads it,
// and nothing leaves the modem before it is in the inbox (and acknowledged)
// or in the quarantine.
func lossPath(t *testing.T, sp sim.Profile, opts []sim.ModemOption, put func(*sim.Modem) int) (*modem.Modem, *sim.Modem, *quarantine.Store, int) {
	t.Helper()
	n, err := sim.NewNetwork(sim.WithSeed(12))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	link := filepath.Join(t.TempDir(), "ttyLoss")
	sm, err := n.AddModem("+15557101", append([]sim.ModemOption{sim.WithProfile(sp), sim.WithPTYLink(link)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	q, err := quarantine.Open(filepath.Join(t.TempDir(), "q.db"), quarantine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	m := openPTY(t, sm, link, modem.WithQuarantine(&checkedQuarantine{Store: q, sm: sm, t: t}))
	return m, sm, q, put(sm)
}

// checkedQuarantine fails the test when an entry comes for a slot the
// modem no longer holds (deleted before it was quarantined).
type checkedQuarantine struct {
	*quarantine.Store
	sm *sim.Modem
	t  *testing.T
}

func (c *checkedQuarantine) Put(ctx context.Context, e modem.Quarantined) (uint64, error) {
	if e.Index >= 0 && c.sm.Stats().Stored == 0 {
		c.t.Errorf("slot %s/%d quarantined after the modem emptied it", e.Storage, e.Index)
	}
	return c.Store.Put(ctx, e)
}

// deliverPDU is a PDU line (SMSC "+10000000000" and an SMS-DELIVER) the
// simulator would store, and its TPDU length.
func deliverPDU(t *testing.T, id int) (string, int) {
	t.Helper()
	d := tpdu.TPDU{Direction: tpdu.MT}
	d.SetSmsType(tpdu.SmsDeliver)
	d.OA = tpdu.NewAddress(tpdu.FromNumber("+15557999"))
	d.DCS = tpdu.Dcs8BitData
	d.UD = []byte{byte(id), 1, 2, 3}
	b, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("07910100000000F0%X", b), len(b)
}

func TestLossPathsThroughPTY(t *testing.T) {
	huawei, _ := sim.ProfileByName("huawei")
	generic, _ := sim.ProfileByName("generic")
	t.Run("URC inside +CMGR", func(t *testing.T) {
		m, sm, q, idx := lossPath(t, generic, nil, func(sm *sim.Modem) int {
			sm.Interleave(`+CMTI: "SM",29`, 1)
			pdu, n := deliverPDU(t, 1)
			i, err := sm.StoreRaw("SM", 0, n, pdu, true) // +CMTI, then +CMGR
			if err != nil {
				t.Fatal(err)
			}
			return i
		})
		r := next(t, m, modem.KindDeliver)
		if r.Index != idx || sm.Stats().Stored != 1 {
			t.Fatalf("delivered slot %d, modem holds %d", r.Index, sm.Stats().Stored)
		}
		if err := r.Ack(context.Background()); err != nil || sm.Stats().Stored != 0 {
			t.Fatalf("Ack: %v, stored %d", err, sm.Stats().Stored)
		}
		if st := q.Stats(); st.Entries != 0 {
			t.Fatalf("quarantine %+v", st)
		}
	})
	t.Run("Huawei ^RSSI inside +CMGL (start-up sweep)", func(t *testing.T) {
		n, err := sim.NewNetwork(sim.WithSeed(13))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Close() })
		link := filepath.Join(t.TempDir(), "ttyHW")
		sm, _ := n.AddModem("+15557102", sim.WithProfile(huawei), sim.WithPTYLink(link))
		var slots []int
		for i := 0; i < 3; i++ {
			pdu, l := deliverPDU(t, i)
			idx, err := sm.StoreRaw("SM", 1, l, pdu, false)
			if err != nil {
				t.Fatal(err)
			}
			slots = append(slots, idx)
		}
		m := openPTY(t, sm, link)
		var got []int
		for range slots {
			r := next(t, m, modem.KindDeliver)
			got = append(got, r.Index)
			if sm.Stats().Stored != 3-len(got)+1 {
				t.Fatalf("modem holds %d before the Ack of slot %d", sm.Stats().Stored, r.Index)
			}
			if err := r.Ack(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		sort.Ints(got)
		if fmt.Sprint(got) != fmt.Sprint(slots) || sm.Stats().Stored != 0 {
			t.Fatalf("delivered %v of %v, stored %d", got, slots, sm.Stats().Stored)
		}
	})
	t.Run("length mismatch", func(t *testing.T) {
		m, sm, q, idx := lossPath(t, generic, []sim.ModemOption{sim.WithLengthSkew(56)}, func(sm *sim.Modem) int {
			pdu, n := deliverPDU(t, 2)
			i, err := sm.StoreRaw("SM", 0, n+56, pdu, true)
			if err != nil {
				t.Fatal(err)
			}
			return i
		})
		r := next(t, m, modem.KindDeliver)
		if r.Index != idx || m.Stats().LengthMismatches != 1 {
			t.Fatalf("slot %d, stats %+v", r.Index, m.Stats())
		}
		if err := r.Ack(context.Background()); err != nil || sm.Stats().Stored != 0 || q.Stats().Entries != 0 {
			t.Fatalf("Ack: %v, stored %d, quarantine %+v", err, sm.Stats().Stored, q.Stats())
		}
	})
	for _, bad := range []struct{ name, pdu string }{
		{"PDU not hex", "ZZ-not-hex"},
		{"PDU truncated", "07910100000000F0040B91"},
		{"SMSC length past the line", "FF00"},
	} {
		t.Run("undecodable: "+bad.name, func(t *testing.T) {
			m, sm, q, idx := lossPath(t, generic, nil, func(sm *sim.Modem) int {
				i, err := sm.StoreRaw("SM", 0, 22, bad.pdu, true)
				if err != nil {
					t.Fatal(err)
				}
				return i
			})
			deadline := time.Now().Add(20 * time.Second)
			for q.Stats().Entries == 0 || sm.Stats().Stored != 0 {
				if time.Now().After(deadline) {
					t.Fatalf("quarantine %+v, stored %d", q.Stats(), sm.Stats().Stored)
				}
				time.Sleep(10 * time.Millisecond)
			}
			es, err := q.List(0, 0)
			if err != nil || len(es) != 1 || es[0].Index != idx || es[0].Lines[len(es[0].Lines)-1] != bad.pdu || es[0].Modem != sm.MSISDN() {
				t.Fatalf("quarantine %+v, %v", es, err)
			}
			select {
			case r := <-m.Received():
				t.Fatalf("delivered %+v", r)
			default:
			}
		})
	}
	t.Run("quarantine full keeps the message", func(t *testing.T) {
		n, err := sim.NewNetwork(sim.WithSeed(14))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Close() })
		link := filepath.Join(t.TempDir(), "ttyFull")
		sm, _ := n.AddModem("+15557103", sim.WithPTYLink(link))
		q, err := quarantine.Open(filepath.Join(t.TempDir(), "q.db"), quarantine.Options{Max: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		if _, err := q.Put(context.Background(), modem.Quarantined{Reason: "earlier"}); err != nil {
			t.Fatal(err)
		}
		if _, err := sm.StoreRaw("SM", 0, 22, "ZZ-not-hex", false); err != nil {
			t.Fatal(err)
		}
		m := openPTY(t, sm, link, modem.WithQuarantine(q))
		if err := m.Sweep(context.Background()); err != nil && !errors.Is(err, modem.ErrQuarantineFull) {
			t.Logf("sweep: %v", err)
		}
		if sm.Stats().Stored != 1 || q.Stats().Rejected == 0 {
			t.Fatalf("stored %d, quarantine %+v", sm.Stats().Stored, q.Stats())
		}
	})
}

// An nRF91 that drops its SMS client says so with an unsolicited +CMS
// ERROR: 524; the driver registers it again (+CNMI) and messages flow.
// Without the profile's RearmOn nothing more arrives.
func TestNRF91RearmsSMSClient(t *testing.T) {
	for _, rearm := range []bool{true, false} {
		t.Run(fmt.Sprintf("rearm=%v", rearm), func(t *testing.T) {
			sp, _ := sim.ProfileByName("nrf91")
			n, err := sim.NewNetwork(sim.WithSeed(15), sim.WithValidity(time.Hour, 50*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = n.Close() })
			sx, _ := n.AddModem("+15557201", sim.WithProfile(sp))
			sy, _ := n.AddModem("+15557202")
			p, _ := modem.ProfileByName("nordic-nrf91")
			if !rearm {
				p.RearmOn = nil
			}
			x := openSim(t, sx, modem.Config{}, modem.WithProfile(p))
			y := openSim(t, sy, modem.Config{})
			sx.DropSMSClient()
			atX := collect(t, x)
			send(t, y, sx.MSISDN(), []message{{id: 300, parts: 1}, {id: 301, parts: 2}})
			if rearm {
				atX.waitAll(t, []int{300, 301}, 30*time.Second)
				return
			}
			time.Sleep(time.Second)
			atX.mu.Lock()
			defer atX.mu.Unlock()
			if len(atX.complete) != 0 {
				t.Fatalf("delivered without re-registering: %v", atX.complete)
			}
		})
	}
}
