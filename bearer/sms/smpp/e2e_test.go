package smpp_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
	"github.com/m2mbearer/m2mbearer/bearer/sms/pdu"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smpp"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smpp/smsc"
	"github.com/m2mbearer/m2mbearer/modem/sim"
)

const (
	serverNum = "+15550100"
	deviceNum = "+15551234"
)

func quiet() *slog.Logger {
	if os.Getenv("SMPP_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// epLink is an sms.Transport over a sim.Endpoint: the device's SIM.
type epLink struct {
	ep *sim.Endpoint
	in chan sms.Inbound
}

func newEPLink(t *testing.T, n *sim.Network, num string) *epLink {
	l := &epLink{in: make(chan sms.Inbound, 1024)}
	ep, err := n.AddEndpoint(num, func(m sim.EndpointMessage) bool {
		select {
		case l.in <- sms.Inbound{SIM: num, TPDU: m.TPDU}:
			return true
		default:
			return false
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	l.ep = ep
	return l
}

func (l *epLink) SendTPDU(ctx context.Context, _, _ string, tpdu []byte) (string, uint8, error) {
	mr, err := l.ep.Send(ctx, tpdu)
	return l.ep.MSISDN(), mr, err
}
func (l *epLink) Inbound() <-chan sms.Inbound { return l.in }

// rig is a simulated network with an SMPP SMSC, the gateway's bearer on an
// SMPP link and a device's bearer on an endpoint.
type rig struct {
	net     *sim.Network
	smsc    *smsc.Server
	link    *smpp.Link
	gw, dev *sms.Bearer
	results chan outbox.Result
}

type rigOpts struct {
	link    smpp.Config
	faults  smsc.Faults
	reports bool
	dir     string
	smscTLS *tls.Config // the SMSC listens with TLS
}

func newRig(t *testing.T, o rigOpts) *rig {
	t.Helper()
	r := &rig{results: make(chan outbox.Result, 1024)}
	var err error
	r.net, err = sim.NewNetwork(sim.WithConditions(sim.Conditions{Latency: sim.Fixed(5 * time.Millisecond)}), sim.WithLogger(quiet()),
		sim.WithValidity(time.Hour, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.net.Close() })
	r.smsc, err = smsc.Start(smsc.Config{Network: r.net, Faults: o.faults, Logger: quiet(), TLS: o.smscTLS,
		Accounts: []smsc.Account{{SystemID: "gw", Password: "pw", Numbers: []string{serverNum}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.smsc.Close() })
	lc := o.link
	lc.Addr, lc.SystemID, lc.Password, lc.Sources = r.smsc.Addr(), "gw", "pw", []string{serverNum}
	if lc.StateDir == "" {
		lc.StateDir = t.TempDir()
	}
	if o.dir != "" {
		lc.StateDir = o.dir
	}
	lc.ReconnectMin, lc.ReconnectMax = 20*time.Millisecond, 200*time.Millisecond
	lc.Logger = quiet()
	r.link, err = smpp.Dial(lc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.link.Close() })
	var submit []pdu.Option
	if o.reports {
		submit = append(submit, pdu.WithStatusReport(true))
	}
	r.gw, err = sms.New(r.link, sms.Config{StateDir: lc.StateDir, Submit: submit, Logger: quiet(),
		Peers:    map[string]sms.Peer{deviceNum: {Security: sms.ModeNoSec, SIM: serverNum}},
		Worker:   outbox.WorkerConfig{Poll: 10 * time.Millisecond, BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond},
		OnResult: func(res outbox.Result) { r.results <- res }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.gw.Close() })
	r.dev, err = sms.New(newEPLink(t, r.net, deviceNum), sms.Config{StateDir: t.TempDir(), Logger: quiet(),
		Peers: map[string]sms.Peer{serverNum: {Security: sms.ModeNoSec}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.dev.Close() })
	return r
}

func datagram(n int, seed byte) []byte {
	b := make([]byte, n)
	b[0] = 0x40 // a CoAP header, not a DTLS record
	for i := 1; i < n; i++ {
		b[i] = seed + byte(i*7)
	}
	return b
}

func read(t *testing.T, b *sms.Bearer) ([]byte, string) {
	t.Helper()
	b.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 64<<10)
	n, from, err := b.ReadFrom(buf)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return buf[:n], from.String()
}

func waitResult(t *testing.T, r *rig, want outbox.Outcome) outbox.Result {
	t.Helper()
	select {
	case res := <-r.results:
		if res.Outcome != want {
			t.Fatalf("outcome %v (%v), want %v", res.Outcome, res.Err, want)
		}
		return res
	case <-time.After(20 * time.Second):
		t.Fatalf("no outbox result (link %+v, smsc %+v)", r.link.Stats(), r.smsc.Stats())
	}
	return outbox.Result{}
}

// TestRoundTrip: datagrams both ways through the SMPP link, single and
// concatenated, in every concatenation mode and both bind modes, with
// receipts correlated as status reports.
func TestRoundTrip(t *testing.T) {
	cases := []struct {
		name   string
		concat smpp.Concat
		bind   smpp.BindMode
	}{
		{"udh transceiver", smpp.ConcatUDH, smpp.Transceiver},
		{"sar transceiver", smpp.ConcatSAR, smpp.Transceiver},
		{"payload transceiver", smpp.ConcatPayload, smpp.Transceiver},
		{"udh transmitter+receiver", smpp.ConcatUDH, smpp.TransmitterReceiver},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, rigOpts{link: smpp.Config{Concat: c.concat, Bind: c.bind}, reports: true})
			for i, size := range []int{20, 500} {
				if !t.Run(fmt.Sprintf("%d bytes", size), func(t *testing.T) {
					out := datagram(size, byte(i))
					if _, err := r.gw.WriteTo(out, addr(deviceNum)); err != nil {
						t.Fatal(err)
					}
					got, from := read(t, r.dev)
					if !bytes.Equal(got, out) || from != serverNum {
						t.Fatalf("device got %d bytes from %s", len(got), from)
					}
					waitResult(t, r, outbox.DeliveredOutcome)
					back := datagram(size+3, byte(i+9))
					if _, err := r.dev.WriteTo(back, addr(serverNum)); err != nil {
						t.Fatal(err)
					}
					got, from = read(t, r.gw)
					if !bytes.Equal(got, back) || from != deviceNum {
						t.Fatalf("gateway got %d bytes from %s", len(got), from)
					}
				}) {
					return
				}
			}
			st := settled(r.link)
			if st.Receipts == 0 || st.AwaitingReceipt != 0 || st.Malformed != 0 {
				t.Fatalf("link stats %+v", st)
			}
		})
	}
}

// TestFaults: throttling answered and honoured, refused binds retried,
// a dropped link re-bound, receipts late; everything still arrives once.
func TestFaults(t *testing.T) {
	cases := []struct {
		name   string
		faults smsc.Faults
		during func(r *rig)
		check  func(t *testing.T, r *rig)
	}{
		{"throttled", smsc.Faults{Throttle: 0.5, QueueFull: 0.2}, nil, func(t *testing.T, r *rig) {
			if r.link.Stats().Throttled == 0 {
				t.Fatal("no throttling seen")
			}
		}},
		{"bind refused then allowed", smsc.Faults{RefuseBind: true}, func(r *rig) {
			time.Sleep(100 * time.Millisecond)
			r.smsc.SetFaults(smsc.Faults{})
		}, func(t *testing.T, r *rig) {
			if r.link.Stats().BindFailures == 0 {
				t.Fatal("no bind failure seen")
			}
		}},
		{"dropped link", smsc.Faults{}, func(r *rig) {
			// Drop the session once it is up (dropped before the first
			// bind, there is nothing to drop and nothing to re-bind).
			for deadline := time.Now().Add(30 * time.Second); r.link.Stats().Binds == 0 || r.smsc.Stats().Binds == 0; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					break // the check below reports it
				}
			}
			r.smsc.DropSessions()
		}, func(t *testing.T, r *rig) {
			if r.link.Stats().Binds < 2 {
				t.Fatalf("not re-bound: %+v", r.link.Stats())
			}
		}},
		{"late receipts", smsc.Faults{ReceiptDelay: 300 * time.Millisecond}, nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, rigOpts{faults: c.faults, reports: true, link: smpp.Config{ThrottleMin: 10 * time.Millisecond}})
			if c.during != nil {
				c.during(r)
			}
			const n = 8
			for i := 0; i < n; i++ {
				if _, err := r.gw.WriteTo(datagram(200, byte(i)), addr(deviceNum)); err != nil {
					t.Fatal(err)
				}
			}
			seen := map[byte]bool{}
			for len(seen) < n {
				got, _ := read(t, r.dev)
				if seen[got[1]] {
					t.Fatalf("datagram %x delivered twice", got[1])
				}
				seen[got[1]] = true
			}
			for i := 0; i < n; i++ {
				waitResult(t, r, outbox.DeliveredOutcome)
			}
			if c.check != nil {
				c.check(t, r)
			}
		})
	}
}

// TestMissingReceipt: the SMSC never sends the receipt; the entry stays in
// the outbox awaiting it (until it expires), and nothing is sent again.
func TestMissingReceipt(t *testing.T) {
	r := newRig(t, rigOpts{faults: smsc.Faults{DropReceipts: 1}, reports: true})
	if _, err := r.gw.WriteTo(datagram(30, 1), addr(deviceNum)); err != nil {
		t.Fatal(err)
	}
	read(t, r.dev)
	deadline := time.Now().Add(5 * time.Second)
	for r.smsc.Stats().ReceiptsDropped == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	// The device can have the message, and the SMSC have dropped its
	// receipt, before the outbox recorded the acceptance.
	st := r.gw.Stats().Outbox
	for ; st.AwaitingReport != 1 && time.Now().Before(deadline); st = r.gw.Stats().Outbox {
		time.Sleep(5 * time.Millisecond)
	}
	if st.AwaitingReport != 1 || st.Pending != 0 {
		t.Fatalf("outbox %+v", st)
	}
	if st := r.link.Stats(); st.AwaitingReceipt != 1 || st.Submitted != 1 {
		t.Fatalf("link %+v", st)
	}
}

func addr(n string) sms.Addr {
	a, err := sms.ParseMSISDN(n)
	if err != nil {
		panic(err)
	}
	return a
}

// capture is a transport that keeps the first TPDU sent.
type capture struct {
	mu  sync.Mutex
	b   []byte
	in  chan sms.Inbound
	one sync.Once
}

func (c *capture) SendTPDU(_ context.Context, _, _ string, tpdu []byte) (string, uint8, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.b == nil {
		c.b = append([]byte(nil), tpdu...)
	}
	return serverNum, 0, nil
}

func (c *capture) get() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b
}

func (c *capture) Inbound() <-chan sms.Inbound {
	c.one.Do(func() { c.in = make(chan sms.Inbound) })
	return c.in
}

// settled returns l's stats once no correlation is stored, or after 5 s: a
// correlation is forgotten once the bearer acknowledged the report, just
// after the outbox told its result.
func settled(l *smpp.Link) smpp.Stats {
	st := l.Stats()
	for deadline := time.Now().Add(5 * time.Second); st.AwaitingReceipt != 0 && time.Now().Before(deadline); st = l.Stats() {
		time.Sleep(2 * time.Millisecond)
	}
	return st
}
