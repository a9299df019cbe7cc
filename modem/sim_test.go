package modem_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/modem"
	"github.com/m2mbearer/m2mbearer/modem/sim"
	"github.com/warthog618/sms/encoding/tpdu"
)

// These tests run the driver against the simulator (modem/sim) over its
// in-memory pipe, for every vendor profile and every fault it offers.

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func submit(t testing.TB, dst string, data []byte, srr bool) []byte {
	t.Helper()
	s, err := tpdu.NewSubmit()
	if err != nil {
		t.Fatal(err)
	}
	s.DA = tpdu.NewAddress(tpdu.FromNumber(dst))
	s.DCS = tpdu.Dcs8BitData
	if srr {
		s.FirstOctet |= tpdu.FoSRR
	}
	s.UD = data
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pipeDialer plugs the sim modem in on every dial (a replug), failing
// while it is plugged in elsewhere.
func pipeDialer(sm *sim.Modem) modem.Dialer {
	return func(context.Context) (io.ReadWriteCloser, error) { return sm.Pipe() }
}

func openSim(t *testing.T, sm *sim.Modem, cfg modem.Config, opts ...modem.Option) *modem.Modem {
	t.Helper()
	if cfg.HealthInterval == 0 {
		cfg.HealthInterval = -1
	}
	if cfg.ReconnectMin == 0 {
		cfg.ReconnectMin, cfg.ReconnectMax = 20*time.Millisecond, 200*time.Millisecond
	}
	if cfg.MSISDN == "" {
		cfg.MSISDN = sm.MSISDN()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := modem.Open(ctx, cfg, append([]modem.Option{modem.WithLogger(quiet()), modem.WithDialer(pipeDialer(sm))}, opts...)...)
	if err != nil {
		t.Fatalf("Open %s: %v", sm.MSISDN(), err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func next(t *testing.T, m *modem.Modem, kind modem.Kind) *modem.Received {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case r := <-m.Received():
			if r.Kind == kind {
				return r
			}
			t.Logf("skipping %v", r.Kind)
			_ = r.Ack(context.Background())
		case <-deadline:
			t.Fatalf("%s: no %v within 20s", m.Name(), kind)
			return nil
		}
	}
}

func TestDriverOnEverySimProfile(t *testing.T) {
	for _, sp := range sim.Profiles() {
		t.Run(sp.Name, func(t *testing.T) {
			n, err := sim.NewNetwork(sim.WithSeed(1))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = n.Close() })
			sa, err := n.AddModem("+15550001", sim.WithProfile(sp))
			if err != nil {
				t.Fatal(err)
			}
			sb, err := n.AddModem("+15550002", sim.WithProfile(sp))
			if err != nil {
				t.Fatal(err)
			}
			a := openSim(t, sa, modem.Config{})
			b := openSim(t, sb, modem.Config{})
			id := a.Identity()
			if id.Profile != sp.DriverProfile || id.Manufacturer != sp.Manufacturer || id.Model != sp.Model || id.IMEI == "" {
				t.Fatalf("identity %+v (sim profile %s)", id, sp.Name)
			}
			h, err := a.Health(context.Background())
			if err != nil || !h.OK() {
				t.Fatalf("health %+v %v", h, err)
			}
			mr, err := a.SendPDU(context.Background(), submit(t, "+15550002", []byte("hello \x00\xff"), true))
			if err != nil {
				t.Fatalf("send: %v", err)
			}
			r := next(t, b, modem.KindDeliver)
			if err := r.Ack(context.Background()); err != nil {
				t.Fatalf("ack: %v", err)
			}
			d, err := tpdu.NewDeliver()
			if err != nil {
				t.Fatal(err)
			}
			if err := d.UnmarshalBinary(r.TPDU); err != nil || string(d.UD) != "hello \x00\xff" || d.OA.Number() != "+15550001" {
				t.Fatalf("deliver %+v %v", d, err)
			}
			sr := next(t, a, modem.KindStatusReport)
			rep, err := sr.StatusReport()
			if err != nil || rep.MR != mr || !rep.Delivered() || rep.Recipient != "+15550002" {
				t.Fatalf("status report %+v %v (mr %d)", rep, err, mr)
			}
			if err := sr.Ack(context.Background()); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for sb.Stats().Stored+sa.Stats().Stored > 0 {
				if time.Now().After(deadline) {
					t.Fatalf("messages left in storage after Ack: a %+v b %+v", sa.Stats(), sb.Stats())
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

func TestSimUnplugRecoveryNothingLost(t *testing.T) {
	n, err := sim.NewNetwork(sim.WithSeed(2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	sa, _ := n.AddModem("+15550001")
	sb, _ := n.AddModem("+15550002", sim.WithSendTime(300*time.Millisecond))
	a := openSim(t, sa, modem.Config{})
	b := openSim(t, sb, modem.Config{})

	// A send in flight when the modem vanishes fails retryably.
	errc := make(chan error, 1)
	go func() {
		_, err := b.SendPDU(context.Background(), submit(t, "+15550001", []byte{1}, false))
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond) // let the +CMGS start; the assertion below holds either way
	sb.Unplug()
	if err := <-errc; err == nil || !modem.Retryable(err) {
		t.Fatalf("in-flight send: %v", err)
	}
	// Messages sent to B while it is away arrive after it is back.
	for i := 0; i < 3; i++ {
		if _, err := a.SendPDU(context.Background(), submit(t, "+15550002", []byte{byte(i)}, false)); err != nil {
			t.Fatal(err)
		}
	}
	got := map[byte]bool{}
	for len(got) < 3 {
		r := next(t, b, modem.KindDeliver)
		d, _ := tpdu.NewDeliver()
		if err := d.UnmarshalBinary(r.TPDU); err != nil {
			t.Fatal(err)
		}
		got[d.UD[0]] = true
		if err := r.Ack(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if b.Stats().Reconnects < 1 {
		t.Fatalf("stats %+v", b.Stats())
	}
}

func TestSimHangReopens(t *testing.T) {
	n, err := sim.NewNetwork(sim.WithSeed(3))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	sa, _ := n.AddModem("+15550001")
	p, _ := modem.ProfileByName("generic")
	p.CommandTimeout = 150 * time.Millisecond
	p.SendTimeout = 300 * time.Millisecond
	// A hung modem needs a power cycle: this dialer models a USB hub that
	// power-cycles the port on every re-open (the simulated modem stays hung
	// until it is unplugged).
	powerCycle := func(context.Context) (io.ReadWriteCloser, error) {
		sa.Unplug()
		return sa.Pipe()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := modem.Open(ctx, modem.Config{MSISDN: sa.MSISDN(), HealthInterval: -1, TimeoutStorm: 2,
		ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond},
		modem.WithProfile(p), modem.WithLogger(quiet()), modem.WithDialer(powerCycle))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	sa.Hang()
	for i := 0; i < 2; i++ {
		if _, err := a.SendPDU(context.Background(), submit(t, "+15550002", []byte{1}, false)); !errors.Is(err, modem.ErrTimeout) || !modem.Retryable(err) {
			t.Fatalf("hung send: %v", err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := a.SendPDU(context.Background(), submit(t, "+15550002", []byte{2}, false)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery from hang: %+v", a.Stats())
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a correctness wait
	}
	if a.Stats().Reconnects < 1 {
		t.Fatalf("stats %+v", a.Stats())
	}
}

func TestSimCMSInjectionAndStorageFull(t *testing.T) {
	// The SMSC retries refused deliveries every 50 ms.
	n, err := sim.NewNetwork(sim.WithSeed(4), sim.WithValidity(time.Hour, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	sa, _ := n.AddModem("+15550001")
	sb, _ := n.AddModem("+15550002", sim.WithStorageCapacity(2))
	a := openSim(t, sa, modem.Config{})
	b := openSim(t, sb, modem.Config{InboxSize: 1})
	sa.InjectCMSError(42, 1)
	_, err = a.SendPDU(context.Background(), submit(t, "+15550002", []byte{9}, false))
	var cms *modem.CMSError
	if !errors.As(err, &cms) || cms.Code != 42 || !modem.Retryable(err) {
		t.Fatalf("injected: %v", err)
	}
	const total = 5
	for i := 0; i < total; i++ {
		if _, err := a.SendPDU(context.Background(), submit(t, "+15550002", []byte{byte(i)}, false)); err != nil {
			t.Fatal(err)
		}
	}
	// B's consumer has not taken anything yet: its storage (2 slots) fills
	// and the SMSC holds the rest, retrying. Once the consumer acks, each
	// freed slot takes the next message: all arrive, none twice.
	waitUntil(t, "storage full", func() bool { return sb.Stats().Refused > 0 })
	seen := map[byte]bool{}
	for len(seen) < total {
		r := next(t, b, modem.KindDeliver)
		d, _ := tpdu.NewDeliver()
		if err := d.UnmarshalBinary(r.TPDU); err != nil {
			t.Fatal(err)
		}
		if seen[d.UD[0]] {
			t.Fatalf("message %d delivered twice", d.UD[0])
		}
		seen[d.UD[0]] = true
		if err := r.Ack(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPoolOverSim(t *testing.T) {
	n, err := sim.NewNetwork(sim.WithSeed(5))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	p, err := modem.NewPool(modem.WithPoolLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := 0; i < 3; i++ {
		sm, _ := n.AddModem(fmt.Sprintf("+1555000%d", i))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		m, err := modem.Open(ctx, modem.Config{MSISDN: sm.MSISDN(), HealthInterval: -1}, modem.WithLogger(quiet()), modem.WithDialer(pipeDialer(sm)))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Add(m); err != nil {
			t.Fatal(err)
		}
	}
	dev, _ := n.AddModem("+4917000001")
	d := openSim(t, dev, modem.Config{})
	r, err := p.SendTPDU(context.Background(), "+15550002", submit(t, "+4917000001", []byte("wake"), false))
	if err != nil || r.From != "+15550002" {
		t.Fatalf("%+v %v", r, err)
	}
	rx := next(t, d, modem.KindDeliver)
	del, _ := tpdu.NewDeliver()
	if err := del.UnmarshalBinary(rx.TPDU); err != nil || del.OA.Number() != "+15550002" {
		t.Fatalf("originator %v %v", del.OA.Number(), err)
	}
	_ = rx.Ack(context.Background())
	if _, err := d.SendPDU(context.Background(), submit(t, "+15550001", []byte("reg"), false)); err != nil {
		t.Fatal(err)
	}
	select {
	case in := <-p.Received():
		if in.Modem != "+15550001" {
			t.Fatalf("received on %s", in.Modem)
		}
		_ = in.Ack(context.Background())
	case <-time.After(20 * time.Second):
		t.Fatal("pool received nothing")
	}
}

// A direct delivery (+CMT, u-blox profile, +CSMS=1) that the consumer
// rejects is negatively acknowledged and redelivered by the network.
func TestSimDirectRejectRedelivers(t *testing.T) {
	n, err := sim.NewNetwork(sim.WithSeed(6), sim.WithValidity(time.Hour, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	sa, _ := n.AddModem("+15550001")
	sb, _ := n.AddModem("+15550002", sim.WithProfile(mustSimProfile(t, "sara-r4")))
	a := openSim(t, sa, modem.Config{})
	b := openSim(t, sb, modem.Config{})
	if b.Identity().Profile != "ublox-sara" {
		t.Fatalf("profile %s", b.Identity().Profile)
	}
	if _, err := a.SendPDU(context.Background(), submit(t, "+15550002", []byte("x"), false)); err != nil {
		t.Fatal(err)
	}
	r := next(t, b, modem.KindDeliver)
	if r.Index != -1 {
		t.Fatalf("not a direct delivery: %+v", r)
	}
	if err := r.Reject(context.Background()); err != nil {
		t.Fatal(err)
	}
	r2 := next(t, b, modem.KindDeliver)
	if !bytes.Equal(r2.TPDU[len(r2.TPDU)-1:], []byte("x")) {
		t.Fatalf("redelivered %x", r2.TPDU)
	}
	if err := r2.Ack(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := sb.Stats(); st.AckTimeouts != 0 {
		t.Fatalf("sim saw an ack timeout: %+v", st)
	}
}

func mustSimProfile(t *testing.T, name string) sim.Profile {
	p, ok := sim.ProfileByName(name)
	if !ok {
		t.Fatalf("no sim profile %s", name)
	}
	return p
}
