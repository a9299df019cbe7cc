package queuetest

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/pipe"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/m2mbearer/m2mbearer/internal/clocktest"
	"github.com/m2mbearer/m2mbearer/lwm2m/client"
	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// newManualClock is the queue Manager's clock in these tests: it moves
// only by Advance, so a test can put a request 100 s after the device fell
// asleep without waiting 100 s. The CoAP exchanges keep real time.
func newManualClock() *clocktest.Manual {
	return clocktest.New(time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC))
}

// anjayParams are the CoAP timers Anjay runs with in the field report:
// --ack-timeout 1 --max-retransmit 1.
func anjayParams() bearer.Params {
	p := bearer.UDPParams("udp")
	p.AckTimeout, p.MaxRetransmit = time.Second, 1
	return p
}

// shortTimerWorld is our server (queue mode, UDP, no SMS: a NoSec "UQ"
// device that cannot be woken) and one client with Anjay's short timers:
// awake 3 s after its last exchange, then its UDP socket is closed.
type shortTimerWorld struct {
	srv   *server.Server
	q     *server.Queue
	clk   queue.Clock
	light *client.Client
	woke  chan time.Time
	slept chan struct{}
	port  atomic.Int32 // the client's current UDP port
}

type shortTimerConfig struct {
	clock    queue.Clock // nil: real time
	awake    time.Duration
	newPort  bool // each wake-up opens a new port (else the same fixed one)
	register bool // wake with a Register (Anjay) instead of an Update
	// quietOldPort: when the device sleeps, its old port swallows
	// datagrams without an ICMP error (a stale NAT mapping).
	quietOldPort bool
}

func newShortTimerWorld(t *testing.T, name string, sc shortTimerConfig) *shortTimerWorld {
	t.Helper()
	w := &shortTimerWorld{clk: sc.clock, woke: make(chan time.Time, 16), slept: make(chan struct{}, 16)}
	var err error
	w.srv, err = server.New(new(registry.Memory), server.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	uc, err := udp.Listen("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ep, err := bearer.NewEndpoint(uc, bearer.WithHandler(w.srv.Handler("udp")), bearer.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	w.srv.Attach("udp", ep)
	// Window 0: the server's only guess is MAX_TRANSMIT_WAIT of its
	// bearer (93 s), far longer than the device listens.
	w.q, err = w.srv.EnableQueue(server.QueueConfig{Config: queue.Config{Store: queue.NewMemStore(), Clock: sc.clock, ExecTimeout: 30 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.q.Close(); w.srv.Close(); ep.Close() })

	w.light, err = client.New(name, client.WithVersion("1.1"), client.WithQueueMode(), client.WithLogger(quiet()), client.WithLifetime(3600))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.light.AddDevice(client.Device{Manufacturer: "ACME", Model: "short-timers"}); err != nil {
		t.Fatal(err)
	}
	if err := w.light.AddServer(client.Server{ShortID: 1, Lifetime: 3600, Binding: "U"}); err != nil {
		t.Fatal(err)
	}
	// The SMS side is required by the client's queue mode; nothing is
	// ever sent on it here (NoSec UDP device, no SMS wake-up).
	smsA, smsB, err := pipe.New()
	if err != nil {
		t.Fatal(err)
	}
	smsEP, err := bearer.NewEndpoint(smsA, bearer.WithHandler(w.light), bearer.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { smsEP.Close(); smsB.Close() })
	cfg := client.QueueModeConfig{
		Awake: sc.awake, UDPServer: uc.LocalAddr(), SMS: smsEP, SMSServer: smsB.LocalAddr(),
		RegisterOnWake: sc.register,
		OnState: func(awake bool) {
			if awake {
				w.woke <- time.Now()
				return
			}
			if sc.quietOldPort {
				sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(w.port.Load())})
				if err != nil {
					t.Errorf("quiet old port: %v", err)
				} else {
					t.Cleanup(func() { sink.Close() })
				}
			}
			w.slept <- struct{}{}
		},
		DialUDP: func() (*bearer.Endpoint, error) {
			addr := "127.0.0.1:0"
			if p := w.port.Load(); p != 0 && !sc.newPort {
				addr = fmt.Sprintf("127.0.0.1:%d", p)
			}
			c, err := udp.Listen("udp", addr, udp.WithParams(anjayParams()))
			if err != nil {
				return nil, err
			}
			w.port.Store(int32(c.LocalAddr().(*net.UDPAddr).Port))
			return bearer.NewEndpoint(c, bearer.WithHandler(w.light), bearer.WithLogger(quiet()))
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.light.StartQueueMode(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	<-w.woke
	t.Cleanup(func() { w.light.Close() })
	return w
}

func (w *shortTimerWorld) waitAsleep(t *testing.T) {
	t.Helper()
	select {
	case <-w.slept:
	case <-time.After(20 * time.Second):
		t.Fatal("the light did not fall asleep")
	}
}

// wake makes the light wake up (its lifetime Update falls due, or Anjay
// re-registers) and returns when it opened its socket.
func (w *shortTimerWorld) wake(t *testing.T) time.Time {
	t.Helper()
	w.light.TriggerUpdate()
	select {
	case at := <-w.woke:
		return at
	case <-time.After(10 * time.Second):
		t.Fatal("the light did not wake")
	}
	return time.Time{}
}

func (w *shortTimerWorld) enqueueRead(t *testing.T, ep string) uint64 {
	t.Helper()
	id, err := w.q.Enqueue(context.Background(), queue.Request{Endpoint: ep, Kind: queue.KindRead, Paths: []string{"/3/0/0"}, ContentFormat: queue.NoContentFormat})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// doneWithin waits for request id and checks it ran within limit of from.
func (w *shortTimerWorld) doneWithin(t *testing.T, id uint64, from time.Time, limit time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rec, err := w.q.Wait(ctx, id)
	took := time.Since(from)
	if err != nil || rec.State != queue.StateDone || string(rec.Result.Payload) != "ACME" {
		t.Fatalf("request %d: %+v %v", id, rec, err)
	}
	if took > limit {
		t.Fatalf("request ran %v after the wake-up, want within %v", took, limit)
	}
	t.Logf("ran %v after the wake-up, attempts %d", took.Round(time.Millisecond), rec.Attempt.N)
}

// TestShortTimerClient: a queue-mode client with Anjay's timers (awake 3 s
// after its last exchange, ACK timeout 1 s, MAX_RETRANSMIT 1, NoSec, "UQ")
// wakes up — re-registering from the same fixed port or from a new one —
// and a request queued 0.5, 4, 12, 30 or 100 s after it fell asleep runs
// within 1 s of the wake-up, while the server knows nothing of its timers
// (its only guess is 93 s). The Manager's clock is manual, so the long
// offsets cost no time; the device's 3 s awake window is real, and all
// the devices sleep it at once.
//
// "silent old port" is a NAT whose mapping went stale: the old port
// swallows datagrams without an ICMP error, so the request stays on the
// wire, retransmitted, until the device's Register from its new port
// re-sends it there.
func TestShortTimerClient(t *testing.T) {
	offsets := []time.Duration{500 * time.Millisecond, 4 * time.Second, 12 * time.Second, 30 * time.Second, 100 * time.Second}
	type tcase struct {
		name           string
		newPort, quiet bool
		off            time.Duration
		w              *shortTimerWorld
		clk            *clocktest.Manual
		ep             string
	}
	var cases []*tcase
	for _, port := range []struct {
		name           string
		newPort, quiet bool
	}{{"same port", false, false}, {"new port", true, false}, {"silent old port", true, true}} {
		for _, off := range offsets {
			cases = append(cases, &tcase{name: fmt.Sprintf("%s/queued %v after sleep", port.name, off),
				newPort: port.newPort, quiet: port.quiet, off: off})
		}
	}
	for i, tc := range cases {
		tc.clk = newManualClock()
		tc.ep = fmt.Sprintf("anjay-like-%d", i)
		tc.w = newShortTimerWorld(t, tc.ep, shortTimerConfig{clock: tc.clk, awake: 3 * time.Second, newPort: tc.newPort, register: true, quietOldPort: tc.quiet})
	}
	for _, tc := range cases {
		tc.w.waitAsleep(t)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w, clk, ep := tc.w, tc.clk, tc.ep
			clk.Advance(3*time.Second + tc.off)
			id := w.enqueueRead(t, ep)
			m := w.q.Manager()
			switch {
			case 3*time.Second+tc.off >= 93*time.Second:
				// Past the server's guess: it waits for the device.
			case tc.quiet:
				waitCond(t, "the request on the wire", func() bool {
					rec, err := m.Get(id)
					return err == nil && rec.State == queue.StateSending
				})
			default:
				// The server still thinks the device listens: the
				// request goes out into the closed port and comes back
				// to the queue at the ICMP port unreachable, never
				// failed, and the device is known asleep.
				waitCond(t, "the request back in the queue", func() bool {
					rec, err := m.Get(id)
					return err == nil && rec.State == queue.StateQueued && rec.Attempt.N == 1 && !m.Awake(ep)
				})
				if win, ok := m.Window(ep); !ok || win > 3*time.Second+tc.off {
					t.Fatalf("learned window %v %v, want at most %v", win, ok, 3*time.Second+tc.off)
				}
			}
			clk.Advance(7 * time.Second)
			w.doneWithin(t, id, w.wake(t), time.Second)
		})
	}
}

// TestShortTimerClientRealTime is the same on the real clock, once and
// short: the request is queued 0.5 s after the device fell asleep and the
// device wakes (an Update from a new port) 1.5 s later.
func TestShortTimerClientRealTime(t *testing.T) {
	w := newShortTimerWorld(t, "anjay-like-rt", shortTimerConfig{awake: time.Second, newPort: true})
	w.waitAsleep(t)
	time.Sleep(500 * time.Millisecond)
	id := w.enqueueRead(t, "anjay-like-rt")
	time.Sleep(1500 * time.Millisecond)
	w.doneWithin(t, id, w.wake(t), time.Second)
	// The device is awake: the next request goes out at once.
	start := time.Now()
	w.doneWithin(t, w.enqueueRead(t, "anjay-like-rt"), start, time.Second)
}

func waitCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
