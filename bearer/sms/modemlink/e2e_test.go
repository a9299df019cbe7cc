package modemlink_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/modemlink"
	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
	"github.com/m2mbearer/m2mbearer/modem"
	"github.com/m2mbearer/m2mbearer/modem/sim"
)

const (
	serverNum = "+491710000001"
	deviceNum = "+491710000002"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openModem opens the (simulated) modem at path with the real driver,
// serial path included.
func openModem(path, msisdn string) (*modem.Modem, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := modem.Open(ctx, modem.Config{Device: path, MSISDN: msisdn, HealthInterval: -1,
		ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond}, modem.WithLogger(quiet()))
	if err != nil {
		return nil, fmt.Errorf("open %s on %s: %w", msisdn, path, err)
	}
	return m, nil
}

type side struct {
	pool *modem.Pool
	link *modemlink.Link
	b    *sms.Bearer
}

func newSide(t *testing.T, sm *sim.Modem, peer string, params bearer.Params, stateDir string) *side {
	t.Helper()
	path, err := sm.OpenPTY()
	if err != nil {
		t.Fatalf("pty: %v", err)
	}
	return newSideOn(t, path, sm.MSISDN(), peer, params, stateDir)
}

// newSideOn opens the modem at the pty path with the real driver and runs
// an SMS bearer on it; the test closes it.
func newSideOn(t *testing.T, path, own, peer string, params bearer.Params, stateDir string) *side {
	t.Helper()
	if stateDir == "" {
		stateDir = t.TempDir()
	}
	s, err := openSide(path, own, peer, params, stateDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.close() })
	return s
}

// openSide is newSideOn without a test, for the crash test's child process.
func openSide(path, own, peer string, params bearer.Params, stateDir string) (*side, error) {
	m, err := openModem(path, own)
	if err != nil {
		return nil, err
	}
	pool, err := modem.NewPool(modem.WithPoolLogger(quiet()))
	if err != nil {
		m.Close()
		return nil, err
	}
	if err := pool.Add(m); err != nil {
		m.Close()
		return nil, err
	}
	link, err := modemlink.New(pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	b, err := sms.New(link, sms.Config{
		StateDir: stateDir,
		Peers:    map[string]sms.Peer{peer: {Security: sms.ModeNoSec, SIM: own}},
		Params:   &params,
		Worker:   outbox.WorkerConfig{Poll: 10 * time.Millisecond, BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond},
		Logger:   quiet(),
	})
	if err != nil {
		link.Close()
		pool.Close()
		return nil, err
	}
	return &side{pool: pool, link: link, b: b}, nil
}

func (s *side) close() {
	s.b.Close()
	s.link.Close()
	s.pool.Close()
}

func params(ack time.Duration) bearer.Params {
	p := sms.DefaultParams()
	p.AckTimeout, p.ProcessingDelay, p.MaxLatency = ack, ack, 2*ack
	return p
}

type world struct {
	net      *sim.Network
	srv, dev *side
	sep, dep *bearer.Endpoint
}

func newWorld(t *testing.T, cond sim.Conditions, ack time.Duration, h bearer.Handler) *world {
	t.Helper()
	n, err := sim.NewNetwork(sim.WithSeed(7), sim.WithConditions(cond), sim.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	sm, err := n.AddModem(serverNum, sim.WithSendTime(2*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	dm, err := n.AddModem(deviceNum, sim.WithSendTime(2*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	w := &world{net: n}
	w.srv = newSide(t, sm, deviceNum, params(ack), "")
	w.dev = newSide(t, dm, serverNum, params(ack), "")
	t.Cleanup(func() {
		// Runs before the sides close. A request that times out here has
		// lost an SMS somewhere: say where it stopped (a message left in a
		// modem's storage, a set held in reassembly, a send stuck in a pool).
		if t.Failed() {
			t.Logf("network %+v", n.Stats())
			for _, x := range []struct {
				name string
				sm   *sim.Modem
				s    *side
			}{{"server", sm, w.srv}, {"device", dm, w.dev}} {
				t.Logf("%s modem %+v; pool %+v; bearer %+v", x.name, x.sm.Stats(), x.s.pool.Status(), x.s.b.Stats())
			}
		}
	})
	if w.sep, err = bearer.NewEndpoint(w.srv.b, bearer.WithHandler(h)); err != nil {
		t.Fatal(err)
	}
	if w.dep, err = bearer.NewEndpoint(w.dev.b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.sep.Close(); w.dep.Close() })
	return w
}

func addr(t *testing.T, s string) sms.Addr {
	a, err := sms.ParseMSISDN(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestEndToEndOverPTYModems runs CoAP between two Endpoints, each on an SMS
// bearer over a simulated modem reached through a pty and the real driver.
func TestEndToEndOverPTYModems(t *testing.T) {
	big := bytes.Repeat([]byte("streetlight-fw.."), 512) // 8 KiB
	var putBody []byte
	obsCh := make(chan *bearer.Observer, 1)
	mux := bearer.NewServeMux()
	mux.HandleFunc("/3/0/0", func(w bearer.ResponseWriter, r *bearer.Request) { w.WriteResponse(codes.Content, []byte("m2mbearer")) })
	mux.HandleFunc("/5/0/0", func(w bearer.ResponseWriter, r *bearer.Request) {
		putBody = append([]byte(nil), r.Payload...)
		w.WriteResponse(codes.Changed, nil)
	})
	mux.HandleFunc("/fw", func(w bearer.ResponseWriter, r *bearer.Request) { w.WriteResponse(codes.Content, big) })
	mux.HandleFunc("/3/0/13", func(w bearer.ResponseWriter, r *bearer.Request) {
		if o, err := w.Observe(); err == nil {
			obsCh <- o
		}
		w.WriteResponse(codes.Content, []byte("t0"))
	})
	w := newWorld(t, sim.Conditions{}, 20*time.Second, mux) // generous: every segment costs an fsync on each side, slow on a loaded CI machine
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	server := addr(t, serverNum)

	start := time.Now()
	resp, err := w.dep.Get(ctx, server, "/3/0/0")
	if err != nil || string(resp.Payload) != "m2mbearer" {
		t.Fatalf("GET: %v", err)
	}
	t.Logf("GET over SMS through pty modems: %v", time.Since(start))

	body := bytes.Repeat([]byte{0x5A}, 500)
	if resp, err = w.dep.Put(ctx, server, "/5/0/0", message.AppOctets, body); err != nil || resp.Code != codes.Changed {
		t.Fatalf("PUT 500: %v", err)
	}
	if !bytes.Equal(putBody, body) {
		t.Fatalf("PUT body: %d bytes", len(putBody))
	}

	notes := make(chan string, 8)
	obs, err := w.dep.Observe(ctx, server, "/3/0/13", func(r *bearer.Response) { notes <- string(r.Payload) })
	if err != nil {
		t.Fatalf("observe: %v", err)
	}
	o := <-obsCh
	o.Notify(ctx, codes.Content, []byte("t1"))
	o.Notify(ctx, codes.Content, []byte("t2"))
	want := map[string]bool{"t0": true, "t1": true, "t2": true}
	for len(want) > 0 {
		select {
		case v := <-notes:
			delete(want, v)
		case <-ctx.Done():
			t.Fatalf("missing notifications %v", want)
		}
	}
	obs.Cancel(ctx)

	start = time.Now()
	if resp, err = w.dep.Get(ctx, server, "/fw"); err != nil || !bytes.Equal(resp.Payload, big) {
		t.Fatalf("Block2 8 KiB: %v", err)
	}
	st := w.net.Stats()
	t.Logf("8 KiB Block2 in %v; network stats %+v", time.Since(start), st)
}

func TestLossTimesOutOverPTYModems(t *testing.T) {
	mux := bearer.NewServeMux()
	mux.HandleFunc("/x", func(w bearer.ResponseWriter, r *bearer.Request) { w.WriteResponse(codes.Content, nil) })
	w := newWorld(t, sim.Conditions{Loss: 1}, 300*time.Millisecond, mux)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err := w.dep.Get(ctx, addr(t, serverNum), "/x")
	if !errors.Is(err, bearer.ErrTimeout) {
		t.Fatalf("err %v, want a timeout", err)
	}
	if el := time.Since(start); el > 10*w.dev.b.Params().MaxTransmitWait() {
		t.Fatalf("took %v", el)
	}
}

func TestDuplicationAndReorderingOverPTYModems(t *testing.T) {
	var runs atomic.Int32
	mux := bearer.NewServeMux()
	mux.HandleFunc("/w", func(w bearer.ResponseWriter, r *bearer.Request) {
		runs.Add(1)
		w.WriteResponse(codes.Changed, r.Payload[:1])
	})
	w := newWorld(t, sim.Conditions{Duplicate: 0.3, Reorder: 0.3, ReorderDelay: 30 * time.Millisecond}, 20*time.Second, mux)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	for i := 0; i < 6; i++ {
		resp, err := w.dep.Post(ctx, addr(t, serverNum), "/w", message.AppOctets, bytes.Repeat([]byte{byte(i)}, 400))
		if err != nil || resp.Payload[0] != byte(i) {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if runs.Load() != 6 {
		t.Fatalf("handler ran %d times for 6 requests", runs.Load())
	}
	t.Logf("network: %+v", w.net.Stats())
}
