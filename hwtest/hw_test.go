package hwtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer/sms/pdu"
	"github.com/m2mbearer/m2mbearer/modem"
	"github.com/m2mbearer/m2mbearer/modem/quarantine"
	"github.com/m2mbearer/m2mbearer/modem/sim"
)

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// rig is the pair of modems under test.
type rig struct {
	a, b       *modem.Modem
	simA, simB *sim.Modem // nil on hardware
	net        *sim.Network
	wait       time.Duration // deadline for one SMS to arrive
	devA, devB string
	report     *Report
	quar       *quarantine.Store
	simNames   [2]string // the simulated dialects (no hardware)
}

func (r *rig) hardware() bool { return r.simA == nil }

func logger() *slog.Logger {
	if os.Getenv("M2M_HWTEST_TRACE") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func setup(t *testing.T) *rig {
	t.Helper()
	devA, devB := os.Getenv("M2M_MODEM_A"), os.Getenv("M2M_MODEM_B")
	numA, numB := os.Getenv("M2M_MODEM_A_MSISDN"), os.Getenv("M2M_MODEM_B_MSISDN")
	var opts []modem.Option
	opts = append(opts, modem.WithLogger(logger()))
	if os.Getenv("M2M_HWTEST_TRACE") != "" {
		opts = append(opts, modem.WithTrace())
	}
	r := &rig{}
	q, err := quarantine.Open(filepath.Join(t.TempDir(), "quarantine.db"), quarantine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	r.quar = q
	opts = append(opts, modem.WithQuarantine(q))
	cfgA := modem.Config{Device: devA, MSISDN: numA, PIN: os.Getenv("M2M_MODEM_A_PIN"), Baud: 115200}
	cfgB := modem.Config{Device: devB, MSISDN: numB, PIN: os.Getenv("M2M_MODEM_B_PIN"), Baud: 115200}
	if devA != "" || devB != "" {
		if devA == "" || devB == "" || numA == "" || numB == "" {
			t.Fatal("hardware mode needs M2M_MODEM_A, M2M_MODEM_A_MSISDN, M2M_MODEM_B and M2M_MODEM_B_MSISDN")
		}
		r.report = NewReport("hardware")
		r.wait = 3 * time.Minute
		cfgA.ReconnectMin, cfgB.ReconnectMin = time.Second, time.Second
	} else {
		r.report = NewReport("simulator")
		r.wait = 30 * time.Second
		r.net, err = sim.NewNetwork(sim.WithSeed(7), sim.WithConditions(sim.Conditions{Latency: sim.Uniform(10*time.Millisecond, 60*time.Millisecond)}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.net.Close() })
		dir := t.TempDir()
		r.simNames = [2]string{envOr("M2M_HWTEST_SIM_A", "ec25"), envOr("M2M_HWTEST_SIM_B", "sim800")}
		r.simA, err = r.net.AddModem("+491510000001", sim.WithProfile(mustProfile(t, r.simNames[0])),
			sim.WithSendTime(50*time.Millisecond), sim.WithPTYLink(filepath.Join(dir, "ttyModemA")))
		if err != nil {
			t.Fatal(err)
		}
		r.simB, err = r.net.AddModem("+491510000002", sim.WithProfile(mustProfile(t, r.simNames[1])),
			sim.WithSendTime(50*time.Millisecond), sim.WithPTYLink(filepath.Join(dir, "ttyModemB")))
		if err != nil {
			t.Fatal(err)
		}
		if cfgA.Device, err = r.simA.OpenPTY(); err != nil {
			t.Fatal(err)
		}
		if cfgB.Device, err = r.simB.OpenPTY(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.simA.Unplug(); r.simB.Unplug() })
		cfgA.MSISDN, cfgB.MSISDN = r.simA.MSISDN(), r.simB.MSISDN()
		cfgA.ReconnectMin, cfgA.ReconnectMax = 50*time.Millisecond, 500*time.Millisecond
		cfgB.ReconnectMin, cfgB.ReconnectMax = 50*time.Millisecond, 500*time.Millisecond
	}
	r.devA, r.devB = cfgA.Device, cfgB.Device
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	if r.a, err = modem.Open(ctx, cfgA, opts...); err != nil {
		t.Fatalf("open A (%s): %v", cfgA.Device, err)
	}
	r.report.Time("open A", time.Since(start))
	t.Cleanup(func() { _ = r.a.Close() })
	start = time.Now()
	if r.b, err = modem.Open(ctx, cfgB, opts...); err != nil {
		t.Fatalf("open B (%s): %v", cfgB.Device, err)
	}
	r.report.Time("open B", time.Since(start))
	t.Cleanup(func() { _ = r.b.Close() })
	t.Cleanup(func() {
		var buf bytes.Buffer
		for _, m := range []*modem.Modem{r.a, r.b} {
			st := m.Stats()
			r.report.Count("sent by "+m.Name(), int(st.Sent))
			r.report.Count("received by "+m.Name(), int(st.Received))
			r.report.Count("status reports to "+m.Name(), int(st.StatusReports))
			r.report.Count("reconnects of "+m.Name(), int(st.Reconnects))
			r.report.Count("quarantined by "+m.Name(), int(st.Quarantined))
			r.report.Count("length mismatches on "+m.Name(), int(st.LengthMismatches))
		}
		if es, err := r.quar.List(0, 50); err == nil {
			for _, e := range es {
				r.report.Note("quarantined %s %s/%d: %s: %q", e.Modem, e.Storage, e.Index, e.Reason, e.Lines)
			}
		}
		_, _ = r.report.WriteTo(&buf)
		t.Log("\n" + buf.String())
		if path := os.Getenv("M2M_HWTEST_REPORT"); path != "" {
			if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
				t.Errorf("write report: %v", err)
			}
		}
	})
	return r
}

func mustProfile(t *testing.T, name string) sim.Profile {
	p, ok := sim.ProfileByName(name)
	if !ok {
		t.Fatalf("no sim profile %s", name)
	}
	return p
}

// await returns the next message of kind on m that satisfies match,
// acknowledging (deleting) anything else it meets.
func (r *rig) await(t *testing.T, m *modem.Modem, kind modem.Kind, match func(*modem.Received) bool) *modem.Received {
	t.Helper()
	deadline := time.NewTimer(r.wait)
	defer deadline.Stop()
	for {
		select {
		case x := <-m.Received():
			if x.Kind == kind && match(x) {
				return x
			}
			r.report.Note("%s: acknowledged unrelated %v (storage %s/%d)", m.Name(), x.Kind, x.Storage, x.Index)
			_ = x.Ack(context.Background())
		case <-deadline.C:
			t.Fatalf("%s: no matching %v within %v", m.Name(), kind, r.wait)
			return nil
		}
	}
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// sendSegments sends a datagram from src to dst's number, returning the
// message references in segment order.
func sendSegments(t *testing.T, src *modem.Modem, dst string, data []byte, srr bool) []int {
	t.Helper()
	segs, err := new(pdu.Encoder).Encode(dst, data, pdu.WithStatusReport(srr))
	if err != nil {
		t.Fatal(err)
	}
	var mrs []int
	for _, s := range segs {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		mr, err := src.SendPDU(ctx, s.TPDU)
		cancel()
		if err != nil {
			t.Fatalf("send segment %d/%d: %v", s.Concat.Seq, len(segs), err)
		}
		mrs = append(mrs, mr)
	}
	return mrs
}

// receiveDatagram reassembles the next datagram from originator on m.
func (r *rig) receiveDatagram(t *testing.T, m *modem.Modem, originator string) *pdu.Datagram {
	t.Helper()
	re, err := pdu.NewReassembler(pdu.ReassemblerConfig{Timeout: r.wait})
	if err != nil {
		t.Fatal(err)
	}
	for {
		x := r.await(t, m, modem.KindDeliver, func(x *modem.Received) bool {
			in, err := pdu.Decode(x.TPDU)
			return err == nil && in.Deliver != nil && in.Deliver.Originator.String() == originator
		})
		in, _ := pdu.Decode(x.TPDU)
		part, err := pdu.PartOf(in.Deliver)
		if err != nil {
			t.Fatalf("segment: %v", err)
		}
		dg, err := re.Add(part)
		if err != nil {
			t.Fatalf("reassemble: %v", err)
		}
		// Acknowledge only once the segment is held (here: in memory).
		if err := x.Ack(context.Background()); err != nil {
			t.Fatalf("ack: %v", err)
		}
		if dg != nil {
			return dg
		}
	}
}

func TestHardwareInTheLoop(t *testing.T) {
	r := setup(t)
	run := func(name string, f func(t *testing.T)) {
		ok := t.Run(name, f)
		switch {
		case ok && strings.Contains(name, "unplug") && r.hardware():
			r.report.Result(name, "SKIP")
		case ok:
			r.report.Result(name, "PASS")
		default:
			r.report.Result(name, "FAIL")
		}
	}

	run("identity", func(t *testing.T) {
		for _, x := range []struct {
			role, dev string
			m         *modem.Modem
		}{{"A", r.devA, r.a}, {"B", r.devB, r.b}} {
			t.Run(x.role, func(t *testing.T) {
				role, m := x.role, x.m
				id := m.Identity()
				if id.Manufacturer == "" || id.Model == "" || id.MSISDN == "" {
					t.Errorf("modem %s identity incomplete: %+v", role, id)
				}
				h, _ := m.Health(context.Background())
				dbm, known := h.Signal.DBm()
				reg := "not registered"
				if h.Registered() {
					reg = "registered"
				}
				r.report.AddModem(ModemInfo{Role: role, MSISDN: id.MSISDN, Manufacturer: id.Manufacturer, Model: id.Model,
					Revision: id.Revision, Profile: id.Profile, IMEI: id.IMEI, IMSI: id.IMSI, SMSC: id.SMSC, SignalDBm: dbm, SignalKnown: known,
					Registration: reg, Device: x.dev})
			})
		}
		if !r.hardware() && (r.a.Identity().Profile != r.simA.Profile().DriverProfile || r.b.Identity().Profile != r.simB.Profile().DriverProfile) {
			t.Errorf("profiles detected: %s, %s for the dialects %s, %s", r.a.Identity().Profile, r.b.Identity().Profile, r.simNames[0], r.simNames[1])
		}
	})

	run("health", func(t *testing.T) {
		for _, m := range []*modem.Modem{r.a, r.b} {
			start := time.Now()
			h, err := m.Health(context.Background())
			r.report.Time("health poll "+m.Name(), time.Since(start))
			if err != nil || !h.OK() {
				t.Errorf("%s: health %+v, %v", m.Name(), h, err)
			}
		}
	})

	run("single SMS round trip", func(t *testing.T) {
		data := randomBytes(t, 100)
		start := time.Now()
		sendSegments(t, r.a, r.b.MSISDN(), data, false)
		r.report.Time("send 1 SMS (+CMGS)", time.Since(start))
		dg := r.receiveDatagram(t, r.b, r.a.MSISDN())
		r.report.Time("single SMS A->B", time.Since(start))
		r.report.Count("SMS segments sent", 1)
		if !bytes.Equal(dg.Data, data) || dg.Segments != 1 {
			t.Fatalf("got %d bytes in %d SMS", len(dg.Data), dg.Segments)
		}
	})

	run("3-segment concatenated binary", func(t *testing.T) {
		data := randomBytes(t, 300) // 134 + 134 + 32 bytes with an 8-bit reference UDH
		start := time.Now()
		mrs := sendSegments(t, r.b, r.a.MSISDN(), data, false)
		if len(mrs) != 3 {
			t.Fatalf("%d segments, want 3", len(mrs))
		}
		dg := r.receiveDatagram(t, r.a, r.b.MSISDN())
		r.report.Time("3-segment SMS B->A", time.Since(start))
		r.report.Count("SMS segments sent", 3)
		if !bytes.Equal(dg.Data, data) || dg.Segments != 3 {
			t.Fatalf("got %d bytes in %d SMS", len(dg.Data), dg.Segments)
		}
	})

	run("status report", func(t *testing.T) {
		start := time.Now()
		mrs := sendSegments(t, r.a, r.b.MSISDN(), randomBytes(t, 20), true)
		// The recipient takes the message first: a modem that delivers
		// directly (+CMT under +CSMS=1, the nRF91) acknowledges it to the
		// network only then, and the SMSC reports on it only after that.
		_ = r.receiveDatagram(t, r.b, r.a.MSISDN())
		x := r.await(t, r.a, modem.KindStatusReport, func(x *modem.Received) bool {
			sr, err := x.StatusReport()
			return err == nil && sr.MR == mrs[0] && sr.Final()
		})
		r.report.Time("status report", time.Since(start))
		r.report.Count("SMS segments sent", 1)
		sr, _ := x.StatusReport()
		if !sr.Delivered() {
			t.Errorf("status 0x%02X for MR %d", sr.Status, sr.MR)
		}
		_ = x.Ack(context.Background())
	})

	run("recovery after unplug", func(t *testing.T) {
		if r.hardware() {
			t.Skip("unplug is simulated only; unplug the USB cable by hand to test it on hardware")
		}
		data := randomBytes(t, 50)
		start := time.Now()
		oldPTY, _ := os.Readlink(r.devB)
		drainEvents(r.b)
		r.unplugB(t)
		// Once B's driver has closed its port, the pty number is free and
		// another modem (of another test process, in CI) may take it. B's
		// driver must not find that modem by B's name.
		awaitEvent(t, r.b, modem.EventDisconnected, r.wait)
		decoy := r.decoy(t, oldPTY)
		defer func() {
			if n := decoy.Stats().Commands; n != 0 {
				t.Errorf("B's driver re-opened another modem's pty (%s) and sent it %d AT commands", oldPTY, n)
			}
		}()
		// Sent while B is away: the SMSC holds it.
		sendSegments(t, r.a, r.b.MSISDN(), data, false)
		if _, err := r.simB.Replug(); err != nil {
			t.Fatal(err)
		}
		dg := r.receiveDatagram(t, r.b, r.a.MSISDN())
		r.report.Time("unplug to message received", time.Since(start))
		r.report.Count("SMS segments sent", 1)
		if !bytes.Equal(dg.Data, data) {
			t.Fatal("payload differs")
		}
		if r.b.Stats().Reconnects < 1 {
			t.Errorf("no reconnect counted: %+v", r.b.Stats())
		}
		if _, err := r.b.SendPDU(context.Background(), mustSubmit(t, r.a.MSISDN())); err != nil {
			t.Fatalf("send after recovery: %v", err)
		}
		_ = r.receiveDatagram(t, r.a, r.b.MSISDN())
		r.report.Count("SMS segments sent", 1)
	})
}

// unplugB unplugs modem B as a USB unplug does; sim.Modem.Unplug removes
// B's device name first, as udev removes /dev/ttyUSBn (the freed pty
// number may go to another test process's modem at once).
func (r *rig) unplugB(t *testing.T) {
	t.Helper()
	r.simB.Unplug()
	if _, err := os.Lstat(r.devB); !os.IsNotExist(err) {
		t.Fatalf("B's device name %s still there after unplug: %v", r.devB, err)
	}
}

// drainEvents discards the events m has queued.
func drainEvents(m *modem.Modem) {
	for {
		select {
		case <-m.Events():
		default:
			return
		}
	}
}

// awaitEvent waits for the next event of type typ from m.
func awaitEvent(t *testing.T, m *modem.Modem, typ modem.EventType, wait time.Duration) {
	t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		select {
		case ev := <-m.Events():
			if ev.Type == typ {
				return
			}
		case <-deadline.C:
			t.Fatalf("%s: no %v event within %v", m.Name(), typ, wait)
		}
	}
}

// decoy plugs in a modem of another network over a new pty, which the
// kernel numbers with the lowest free number: usually freed, the one B
// used. It answers AT commands like B's model, with B's number.
func (r *rig) decoy(t *testing.T, freed string) *sim.Modem {
	t.Helper()
	n, err := sim.NewNetwork()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	d, err := n.AddModem(r.simB.MSISDN(), sim.WithProfile(mustProfile(t, "sim800")))
	if err != nil {
		t.Fatal(err)
	}
	path, err := d.OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Unplug)
	if path != freed {
		t.Logf("decoy on %s, not on B's freed %s (taken meanwhile)", path, freed)
	}
	return d
}

func mustSubmit(t *testing.T, dst string) []byte {
	segs, err := new(pdu.Encoder).Encode(dst, []byte("after replug"))
	if err != nil || len(segs) != 1 {
		t.Fatal(err)
	}
	return segs[0].TPDU
}
