package sms_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
	"github.com/m2mbearer/m2mbearer/bearer/sms/pdu"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smstest"
)

const (
	serverNum = "+491710000001"
	deviceNum = "+491710000002"
)

func testParams(ack time.Duration) *bearer.Params {
	p := sms.DefaultParams()
	p.AckTimeout = ack
	p.ProcessingDelay = ack
	p.MaxLatency = 2 * ack
	return &p
}

type pair struct {
	net            *smstest.Network
	srvSIM, devSIM *smstest.SIM
	srv, dev       *sms.Bearer
}

func newPair(t *testing.T, f smstest.Faults, mut func(side string, c *sms.Config)) *pair {
	t.Helper()
	return newPairSeed(t, 42, f, mut)
}

// newPairSeed is newPair with the network's fault seed.
func newPairSeed(t *testing.T, seed uint64, f smstest.Faults, mut func(side string, c *sms.Config)) *pair {
	t.Helper()
	p := &pair{net: smstest.NewNetwork(seed, f)}
	p.srvSIM = p.net.AddSIM(serverNum)
	p.devSIM = p.net.AddSIM(deviceNum)
	mk := func(side string, sim *smstest.SIM, peer, own string) *sms.Bearer {
		c := sms.Config{
			StateDir: t.TempDir(),
			Peers:    map[string]sms.Peer{peer: {Security: sms.ModeNoSec, SIM: own}},
			Params:   testParams(2 * time.Second),
			Worker:   outbox.WorkerConfig{Poll: 5 * time.Millisecond, BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond},
		}
		if mut != nil {
			mut(side, &c)
		}
		b, err := sms.New(sim, c)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	p.srv = mk("server", p.srvSIM, deviceNum, serverNum)
	p.dev = mk("device", p.devSIM, serverNum, deviceNum)
	t.Cleanup(func() {
		p.srv.Close()
		p.dev.Close()
		p.net.Close()
	})
	return p
}

func mustAddr(t *testing.T, s string) sms.Addr {
	a, err := sms.ParseMSISDN(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func endpoints(t *testing.T, p *pair, h bearer.Handler) (srv, dev *bearer.Endpoint) {
	t.Helper()
	var err error
	if srv, err = bearer.NewEndpoint(p.srv, bearer.WithHandler(h)); err != nil {
		t.Fatal(err)
	}
	if dev, err = bearer.NewEndpoint(p.dev); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(); dev.Close() })
	return srv, dev
}

func TestParams(t *testing.T) {
	p := sms.DefaultParams()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if p.MaxDatagram != 34170 || p.PreferredDatagram != 140 || p.MaxRetransmit != 0 {
		t.Fatalf("params %+v", p)
	}
	if p.MaxTransmitWait() != 90*time.Second {
		t.Fatalf("MAX_TRANSMIT_WAIT %v", p.MaxTransmitWait())
	}
}

func TestCoAPOverSMS(t *testing.T) {
	p := newPair(t, smstest.Faults{}, nil)
	var puts atomic.Int32
	var got []byte
	big := bytes.Repeat([]byte("0123456789abcdef"), 512) // 8 KiB
	mux := bearer.NewServeMux()
	mux.HandleFunc("/3/0/0", func(w bearer.ResponseWriter, r *bearer.Request) {
		w.WriteResponse(codes.Content, []byte("m2mbearer"))
	})
	mux.HandleFunc("/big", func(w bearer.ResponseWriter, r *bearer.Request) {
		w.WriteResponse(codes.Content, big)
	})
	mux.HandleFunc("/5/0/0", func(w bearer.ResponseWriter, r *bearer.Request) {
		puts.Add(1)
		got = append([]byte(nil), r.Payload...)
		w.WriteResponse(codes.Changed, nil)
	})
	_, dev := endpoints(t, p, mux)
	server := mustAddr(t, serverNum)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	if dev.BlockSize() != 1024 {
		t.Fatalf("block size %d: SMS blocks should be 1 KiB (8 concatenated segments)", dev.BlockSize())
	}
	resp, err := dev.Get(ctx, server, "/3/0/0")
	if err != nil || resp.Code != codes.Content || string(resp.Payload) != "m2mbearer" {
		t.Fatalf("GET: %v %+v", err, resp)
	}
	before := p.net.Submitted.Load()
	body := bytes.Repeat([]byte{0xA5}, 500)
	resp, err = dev.Put(ctx, server, "/5/0/0", message.AppOctets, body)
	if err != nil || resp.Code != codes.Changed {
		t.Fatalf("PUT: %v %+v", err, resp)
	}
	if !bytes.Equal(got, body) || puts.Load() != 1 {
		t.Fatalf("PUT body %d bytes, handler ran %d times", len(got), puts.Load())
	}
	t.Logf("PUT of 500 bytes took %d SMS segments in all (requests and responses)", p.net.Submitted.Load()-before)

	before = p.net.Submitted.Load()
	resp, err = dev.Get(ctx, server, "/big")
	if err != nil || !bytes.Equal(resp.Payload, big) {
		t.Fatalf("Block2 8 KiB: %v (%d bytes)", err, len(resp.Payload))
	}
	t.Logf("Block2 GET of 8 KiB took %d SMS segments", p.net.Submitted.Load()-before)
	st := p.srv.Stats()
	if st.DatagramsReceived == 0 || st.DroppedUnknownPeer != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestObserveOverSMS(t *testing.T) {
	p := newPair(t, smstest.Faults{}, nil)
	obsCh := make(chan *bearer.Observer, 1)
	mux := bearer.NewServeMux()
	mux.HandleFunc("/3/0/13", func(w bearer.ResponseWriter, r *bearer.Request) {
		if o, err := w.Observe(); err == nil {
			obsCh <- o
		}
		w.WriteResponse(codes.Content, []byte("0"))
	})
	_, dev := endpoints(t, p, mux)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	notes := make(chan string, 10)
	obs, err := dev.Observe(ctx, mustAddr(t, serverNum), "/3/0/13", func(r *bearer.Response) { notes <- string(r.Payload) })
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Cancel(ctx)
	o := <-obsCh
	for _, v := range []string{"1", "2", "3"} {
		if err := o.Notify(ctx, codes.Content, []byte(v)); err != nil {
			t.Fatalf("notify %s: %v", v, err)
		}
	}
	want := map[string]bool{"0": true, "1": true, "2": true, "3": true}
	for len(want) > 0 {
		select {
		case v := <-notes:
			delete(want, v)
		case <-ctx.Done():
			t.Fatalf("notifications missing: %v", want)
		}
	}
}

func TestLossGivesTimeoutNotHang(t *testing.T) {
	p := newPair(t, smstest.Faults{Loss: 1}, func(_ string, c *sms.Config) { c.Params = testParams(200 * time.Millisecond) })
	mux := bearer.NewServeMux()
	mux.HandleFunc("/x", func(w bearer.ResponseWriter, r *bearer.Request) { w.WriteResponse(codes.Content, nil) })
	_, dev := endpoints(t, p, mux)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := dev.Get(ctx, mustAddr(t, serverNum), "/x")
	el := time.Since(start)
	if !errors.Is(err, bearer.ErrTimeout) {
		t.Fatalf("err %v, want ErrTimeout", err)
	}
	mtw := p.dev.Params().MaxTransmitWait()
	if el < mtw*9/10 || el > mtw*5 {
		t.Fatalf("timed out after %v, MAX_TRANSMIT_WAIT is %v", el, mtw)
	}
	if n := p.net.Submitted.Load(); n != 1 {
		t.Fatalf("%d SMS sent: MAX_RETRANSMIT 0 means no retransmission", n)
	}
}

func TestDuplicationAndReorderInvisible(t *testing.T) {
	p := newPair(t, smstest.Faults{Duplicate: 0.3, Reorder: 0.3, Latency: time.Millisecond}, nil)
	var runs atomic.Int32
	mux := bearer.NewServeMux()
	mux.HandleFunc("/w", func(w bearer.ResponseWriter, r *bearer.Request) {
		runs.Add(1)
		w.WriteResponse(codes.Changed, r.Payload[:4])
	})
	_, dev := endpoints(t, p, mux)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := 0; i < 10; i++ {
		body := bytes.Repeat([]byte{byte(i)}, 400) // 3 SMS segments
		resp, err := dev.Post(ctx, mustAddr(t, serverNum), "/w", message.AppOctets, body)
		if err != nil || resp.Payload[0] != byte(i) {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if runs.Load() != 10 {
		t.Fatalf("handler ran %d times for 10 requests", runs.Load())
	}
	if p.net.Duplicated.Load() == 0 {
		t.Fatal("the network duplicated nothing: test proves nothing")
	}
	t.Logf("duplicated %d segments; handler ran once per request", p.net.Duplicated.Load())
}

func TestUnknownSenderDropped(t *testing.T) {
	p := newPair(t, smstest.Faults{}, nil)
	stranger := p.net.AddSIM("+491719999999")
	// The stranger sends a valid CoAP GET to the server's number.
	enc := new(pdu.Encoder)
	segs, err := enc.Encode(serverNum, []byte{0x40, 0x01, 0x12, 0x34})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := stranger.SendTPDU(context.Background(), "", serverNum, segs[0].TPDU); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.srv.Stats().DroppedUnknownPeer == 0 {
		if time.Now().After(deadline) {
			t.Fatal("SMS from an unconfigured number was not counted as dropped")
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.srv.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	buf := make([]byte, 100)
	if _, _, err := p.srv.ReadFrom(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadFrom gave %v; the stranger's datagram must not be handed on", err)
	}
	if p.srvSIM.Acked.Load() == 0 {
		t.Fatal("the ignored SMS was not acknowledged to the modem (it would stay in storage)")
	}
}

func TestWriteErrors(t *testing.T) {
	p := newPair(t, smstest.Faults{}, func(side string, c *sms.Config) {
		if side == "server" {
			c.DailyBudgetPerDevice = new(3)
			c.Peers["+491710000003"] = sms.Peer{Security: sms.ModeDTLS}
		}
	})
	dev := mustAddr(t, deviceNum)
	if _, err := p.srv.WriteTo([]byte{0x40, 1, 0, 1}, mustAddr(t, "+491710000099")); !errors.Is(err, sms.ErrUnknownPeer) {
		t.Fatalf("unknown peer: %v", err)
	}
	if _, err := p.srv.WriteTo([]byte{0x40, 1, 0, 1}, mustAddr(t, "+491710000003")); !errors.Is(err, sms.ErrSecurityMode) {
		t.Fatalf("plain CoAP to a DTLS peer: %v", err)
	}
	if _, err := p.srv.WriteTo(make([]byte, 34171), dev); !errors.Is(err, bearer.ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	if _, err := p.srv.WriteTo(make([]byte, 300), dev); err != nil { // 3 segments
		t.Fatal(err)
	}
	_, err := p.srv.WriteTo([]byte{0x40, 1, 0, 2}, dev)
	var be *sms.BudgetError
	if !errors.Is(err, sms.ErrBudgetExceeded) || !errors.As(err, &be) || be.Scope != "device" || be.Used != 3 {
		t.Fatalf("budget: %v", err)
	}
	if used, _ := p.srv.BudgetUsed(deviceNum); used != 3 {
		t.Fatalf("budget used %d", used)
	}
	if p.srv.Stats().BudgetRejected != 1 {
		t.Fatalf("stats %+v", p.srv.Stats())
	}
	if _, err := p.srv.WriteTo([]byte{1}, &net.UDPAddr{}); err == nil {
		t.Fatal("UDP address accepted by the SMS bearer")
	}
}

func TestRateLimit(t *testing.T) {
	p := newPair(t, smstest.Faults{}, func(side string, c *sms.Config) { c.PeerRate = 1; c.PeerBurst = 2 })
	dev := mustAddr(t, deviceNum)
	for i := 0; i < 2; i++ {
		if _, err := p.srv.WriteTo([]byte{0x40, 1, 0, byte(i)}, dev); err != nil {
			t.Fatal(err)
		}
	}
	_, err := p.srv.WriteTo([]byte{0x40, 1, 0, 9}, dev)
	var re *sms.RateError
	if !errors.As(err, &re) || re.RetryAfter <= 0 || !errors.Is(err, sms.ErrRateLimited) {
		t.Fatalf("rate: %v", err)
	}
}

func TestStatusReportFailureReachesCaller(t *testing.T) {
	var mu sync.Mutex
	var results []outbox.Result
	p := newPair(t, smstest.Faults{ReportStatus: 0x41}, func(side string, c *sms.Config) {
		c.Submit = []pdu.Option{pdu.WithStatusReport(true)}
		c.OnResult = func(r outbox.Result) { mu.Lock(); results = append(results, r); mu.Unlock() }
	})
	if _, err := p.srv.WriteTo([]byte{0x40, 1, 0, 1}, mustAddr(t, deviceNum)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(results)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no result; stats %+v", p.srv.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	var de *sms.DeliveryError
	if r := results[0]; r.Outcome != outbox.Failed || !errors.As(r.Err, &de) || de.Status != 0x41 {
		t.Fatalf("result %+v", results[0])
	}
	if st := p.srv.Stats(); st.SendFailures != 1 || st.StatusReports != 1 || st.Outbox.Entries != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDeliveredReport(t *testing.T) {
	p := newPair(t, smstest.Faults{}, func(side string, c *sms.Config) {
		c.Submit = []pdu.Option{pdu.WithStatusReport(true)}
	})
	if _, err := p.srv.WriteTo(make([]byte, 200), mustAddr(t, deviceNum)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.srv.Stats().Delivered != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("not delivered; stats %+v", p.srv.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := p.srv.Stats(); st.Outbox.Entries != 0 || st.StatusReports != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestWAPPushFraming(t *testing.T) {
	p := newPair(t, smstest.Faults{}, func(side string, c *sms.Config) {
		if side == "server" {
			c.Peers[deviceNum] = sms.Peer{Security: sms.ModeNoSec, Framing: sms.FramingWAPPush}
		}
	})
	coap := []byte{0x50, 0x02, 0x00, 0x01, 0xb1, '1', 0x01, '0', 0x01, '8'} // NON POST /1/0/8
	if _, err := p.srv.WriteTo(coap, mustAddr(t, deviceNum)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 200)
	p.dev.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, form, err := p.dev.ReadFromForm(buf)
	if err != nil || !bytes.Equal(buf[:n], coap) || from.String() != serverNum || form != pdu.FormWAPPush {
		t.Fatalf("got %x from %v form %v err %v", buf[:n], from, form, err)
	}
}

func TestRetryableSendErrorsRetried(t *testing.T) {
	p := newPair(t, smstest.Faults{}, nil)
	p.srvSIM.FailNext(3, tempErr{})
	if _, err := p.srv.WriteTo([]byte{0x40, 1, 0, 7}, mustAddr(t, deviceNum)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	p.dev.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _, err := p.dev.ReadFrom(buf)
	if err != nil || n != 4 || buf[3] != 7 {
		t.Fatalf("got %x %v", buf[:n], err)
	}
}

type tempErr struct{}

func (tempErr) Error() string   { return "modem busy" }
func (tempErr) Retryable() bool { return true }

// TestInboxReplay stores the first segments of a concatenated datagram,
// closes the bearer (as a crash would leave it), and checks that after a
// restart the last segment completes the datagram: acknowledged segments are
// never lost.
func TestInboxReplay(t *testing.T) {
	n := smstest.NewNetwork(1, smstest.Faults{})
	defer n.Close()
	sim := n.AddSIM(serverNum)
	dir := t.TempDir()
	cfg := sms.Config{StateDir: dir, Peers: map[string]sms.Peer{deviceNum: {Security: sms.ModeNoSec}}}
	b, err := sms.New(sim, cfg)
	if err != nil {
		t.Fatal(err)
	}
	enc := new(pdu.Encoder)
	data := bytes.Repeat([]byte{0x42}, 300)
	segs, err := enc.Encode(serverNum, data)
	if err != nil || len(segs) != 3 {
		t.Fatalf("%d segments, %v", len(segs), err)
	}
	orig, _ := pdu.NumberAddress(deviceNum)
	deliver := func(i int) []byte {
		sub, err := pdu.ParseSubmit(segs[i].TPDU)
		if err != nil {
			t.Fatal(err)
		}
		d, err := pdu.DeliverOf(sub, orig, time.Now()).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	sim.Inject(deliver(0))
	sim.Inject(deliver(1))
	deadline := time.Now().Add(5 * time.Second)
	for sim.Acked.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("segments not acknowledged")
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.Close()

	b, err = sms.New(sim, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sim.Inject(deliver(2))
	buf := make([]byte, 1000)
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, from, err := b.ReadFrom(buf)
	if err != nil || !bytes.Equal(buf[:got], data) || from.String() != deviceNum {
		t.Fatalf("after restart: %d bytes from %v: %v", got, from, err)
	}
}
