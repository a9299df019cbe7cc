package queuetest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/modemlink"
	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/m2mbearer/m2mbearer/lwm2m/client"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
	"github.com/m2mbearer/m2mbearer/lwm2m/smswake"
	"github.com/m2mbearer/m2mbearer/modem"
	"github.com/m2mbearer/m2mbearer/modem/sim"
)

const serverNum = "+491710000001"

func quiet() *slog.Logger {
	if os.Getenv("QUEUETEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// smsParams are SMS bearer parameters scaled down for tests.
func smsParams() bearer.Params {
	p := sms.DefaultParams()
	p.AckTimeout, p.ProcessingDelay, p.MaxLatency = 3*time.Second, 3*time.Second, 6*time.Second
	return p
}

// smsSide is one SIM on a simulated modem, opened through its pty by the
// real driver, with an SMS bearer on it.
type smsSide struct {
	pool *modem.Pool
	link *modemlink.Link
	b    *sms.Bearer
}

func openSide(t testing.TB, n *sim.Network, own string, peers map[string]sms.Peer) *smsSide {
	t.Helper()
	sm, err := n.AddModem(own, sim.WithSendTime(2*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	pty, err := sm.OpenPTY()
	if err != nil {
		t.Fatalf("pty: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := modem.Open(ctx, modem.Config{Device: pty, MSISDN: own, HealthInterval: -1,
		ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond}, modem.WithLogger(quiet()))
	if err != nil {
		t.Fatalf("open modem %s on %s: %v", own, pty, err)
	}
	pool, err := modem.NewPool(modem.WithPoolLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	if err := pool.Add(m); err != nil {
		t.Fatal(err)
	}
	link, err := modemlink.New(pool)
	if err != nil {
		t.Fatal(err)
	}
	p := smsParams()
	b, err := sms.New(link, sms.Config{StateDir: t.TempDir(), Peers: peers, Params: &p,
		Worker: outbox.WorkerConfig{Poll: 5 * time.Millisecond, BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond},
		Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	s := &smsSide{pool: pool, link: link, b: b}
	t.Cleanup(func() { b.Close(); link.Close(); pool.Close() })
	return s
}

// world is a server (UDP on loopback + one SMS modem) with queue mode.
type world struct {
	t      testing.TB
	net    *sim.Network
	srv    *server.Server
	qsrv   *server.Queue
	udpEP  *bearer.Endpoint
	smsEP  *bearer.Endpoint
	smsB   *sms.Bearer
	events chan queue.Event
	// udpAddr is the server's UDP address the lights talk to.
	udpAddr net.Addr

	mu      sync.Mutex
	devices map[string]server.DeviceSettings
}

type worldConfig struct {
	latency time.Duration
	window  time.Duration // server's awake window
	wake    queue.WakePolicy
	expiry  time.Duration
	store   queue.Store
	smsOnly []string // numbers of SMS-only devices (peers known in advance)
}

func newWorld(t testing.TB, wc worldConfig) *world {
	t.Helper()
	n, err := sim.NewNetwork(sim.WithSeed(8), sim.WithConditions(sim.Conditions{Latency: sim.Fixed(wc.latency)}), sim.WithLogger(quiet()),
		sim.WithValidity(time.Hour, fastRetry))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	peers := map[string]sms.Peer{}
	for _, num := range wc.smsOnly {
		peers[num] = sms.Peer{Security: sms.ModeNoSec, SIM: serverNum}
	}
	side := openSide(t, n, serverNum, peers)
	w := &world{t: t, net: n, smsB: side.b, events: make(chan queue.Event, 1024), devices: map[string]server.DeviceSettings{}}
	w.srv, err = server.New(new(registry.Memory), server.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	uc, err := udp.Listen("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if w.udpEP, err = bearer.NewEndpoint(uc, bearer.WithHandler(w.srv.Handler("udp")), bearer.WithLogger(quiet())); err != nil {
		t.Fatal(err)
	}
	if w.smsEP, err = bearer.NewEndpoint(side.b, bearer.WithHandler(w.srv.Handler("sms")), bearer.WithLogger(quiet())); err != nil {
		t.Fatal(err)
	}
	w.udpAddr = w.udpEP.LocalAddr()
	w.srv.Attach("udp", w.udpEP)
	w.srv.Attach("sms", w.smsEP)
	store := wc.store
	if store == nil {
		store = queue.NewMemStore()
	}
	if wc.wake.Timeout == 0 {
		wc.wake = queue.WakePolicy{Timeout: 3 * time.Second, MaxWakes: new(3), MinInterval: 50 * time.Millisecond, CallTimeout: 10 * time.Second}
	}
	waker := smswake.New(side.b, side.b)
	waker.Endpoint = w.smsEP // the device's answer, if any, is matched, never reset
	w.qsrv, err = w.srv.EnableQueue(server.QueueConfig{
		Config: queue.Config{
			Store: store, Waker: waker,
			DefaultWindow: wc.window, ExecTimeout: wc.window + 3*time.Second,
			Wake: wc.wake, DefaultExpiry: wc.expiry,
			OnEvent: func(ev queue.Event) {
				select {
				case w.events <- ev:
				default:
				}
			},
		},
		Peers: smswake.Peers{Setter: side.b, Security: sms.ModeNoSec}, Device: w.device,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.qsrv.Close()
		w.srv.Close()
		w.udpEP.Close()
		w.smsEP.Close()
	})
	return w
}

func (w *world) device(reg *registry.Registration) server.DeviceSettings {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.devices[reg.Endpoint]
}

func (w *world) setDevice(ep string, d server.DeviceSettings) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.devices[ep] = d
}

// counter counts the requests a device's handler runs, by "METHOD /path".
type counter struct {
	h       bearer.Handler
	mu      sync.Mutex
	n       map[string]int
	running atomic.Int64 // handlers not returned yet
}

func (c *counter) ServeCoAP(w bearer.ResponseWriter, r *bearer.Request) {
	c.running.Add(1)
	defer c.running.Add(-1)
	c.mu.Lock()
	c.n[r.Code.String()+" "+r.Path()]++
	if len(r.Payload) > 0 && r.Code == codes.POST {
		c.n[r.Code.String()+" "+r.Path()+" "+string(r.Payload)]++
	}
	c.mu.Unlock()
	c.h.ServeCoAP(w, r)
}

func (c *counter) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

// light is a sleeping streetlight: an LwM2M client with its own modem.
type light struct {
	c      *client.Client
	count  *counter
	smsEP  *bearer.Endpoint
	smsB   *sms.Bearer
	number string
	states chan bool
	wokeAt atomic.Int64 // Unix ns of the last wake-up (UDP reopened)
}

type lightConfig struct {
	name, number, version, binding string
	queue, udp, trigger            bool
	awake                          time.Duration
	// extraPeers are numbers besides the server's whose SMS the light's
	// bearer accepts (a trigger from them must still be refused).
	extraPeers []string
}

func (w *world) newLight(lc lightConfig) *light {
	t := w.t
	t.Helper()
	// The operator's provisioning store knows each light's number: the
	// server wakes only configured numbers, never a registration's sms=.
	w.mu.Lock()
	if w.devices == nil {
		w.devices = map[string]server.DeviceSettings{}
	}
	if d := w.devices[lc.name]; d.MSISDN == "" {
		d.MSISDN = lc.number
		w.devices[lc.name] = d
	}
	w.mu.Unlock()
	peers := map[string]sms.Peer{serverNum: {Security: sms.ModeNoSec, SIM: lc.number}}
	for _, p := range lc.extraPeers {
		peers[p] = sms.Peer{Security: sms.ModeNoSec, SIM: lc.number}
	}
	side := openSide(t, w.net, lc.number, peers)
	opts := []client.Option{client.WithVersion(lc.version), client.WithBinding(lc.binding),
		client.WithSMSNumber(strings.TrimPrefix(lc.number, "+")), client.WithLogger(quiet()), client.WithLifetime(3600)}
	if lc.queue {
		opts = append(opts, client.WithQueueMode())
	}
	c, err := client.New(lc.name, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddDevice(client.Device{Manufacturer: "ACME Lighting", Model: "SL-" + lc.version, Binding: lc.binding}); err != nil {
		t.Fatal(err)
	}
	if err := c.AddServer(client.Server{ShortID: 1, Lifetime: 3600, Binding: lc.binding}); err != nil {
		t.Fatal(err)
	}
	if lc.version != "1.0" {
		if err := c.Set(path.Resource(1, 0, 21), content.NewBool(lc.trigger)); err != nil {
			t.Fatal(err)
		}
	}
	l := &light{c: c, count: &counter{h: c, n: map[string]int{}}, number: lc.number, smsB: side.b, states: make(chan bool, 64)}
	if l.smsEP, err = bearer.NewEndpoint(side.b, bearer.WithHandler(l.count), bearer.WithLogger(quiet())); err != nil {
		t.Fatal(err)
	}
	srvSMS, _ := sms.ParseMSISDN(serverNum)
	cfg := client.QueueModeConfig{Awake: lc.awake, SMS: l.smsEP, SMSServer: srvSMS,
		OnState: func(a bool) {
			if a {
				l.wokeAt.Store(time.Now().UnixNano())
			}
			select {
			case l.states <- a:
			default:
			}
		}}
	if lc.udp {
		cfg.UDPServer = w.udpAddr
		cfg.DialUDP = func() (*bearer.Endpoint, error) {
			uc, err := udp.Listen("udp", "127.0.0.1:0")
			if err != nil {
				return nil, err
			}
			return bearer.NewEndpoint(uc, bearer.WithHandler(l.count), bearer.WithLogger(quiet()))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.StartQueueMode(ctx, cfg); err != nil {
		t.Fatalf("%s: start: %v", lc.name, err)
	}
	t.Cleanup(func() { c.Close(); l.smsEP.Close() })
	return l
}

// waitAsleep waits until the light closed its socket.
func (l *light) waitAsleep(t testing.TB, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for l.c.Awake() {
		select {
		case <-l.states:
		case <-deadline:
			t.Fatalf("%s did not fall asleep within %v", l.c.Name(), d)
		}
	}
}

var _ net.Addr = sms.Addr{}

// fastRetry is the SMSC's retry interval to a modem that refused a
// delivery (late +CNMA on a loaded machine): short, so a refused trigger
// does not outlast the wake-up schedule.
const fastRetry = 300 * time.Millisecond

func simLoss(p float64, latency time.Duration) sim.Conditions {
	return sim.Conditions{Loss: p, Latency: sim.Fixed(latency)}
}

// segments returns the segments of one direction and purpose ("" for all)
// between before and after.
func segments(before, after [bearer.NumPurposes]sms.Count, purpose string) uint64 {
	var n uint64
	for p := range bearer.NumPurposes {
		if purpose == "" || p.String() == purpose {
			n += after[p].Segments - before[p].Segments
		}
	}
	return n
}

// settleSMS waits until the light's handlers returned (their answers are
// written) and every SMS datagram between the server and the light
// arrived: what each side's bearer accounts as sent to the other is
// what the other accounts as received (a count taken then includes every
// answer already on its way).
func settleSMS(t testing.TB, w *world, l *light) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		srv, _ := w.smsB.Usage(l.number)
		dev, _ := l.smsB.Usage(serverNum)
		if l.count.running.Load() == 0 && sms.Total(srv.Sent).Datagrams == sms.Total(dev.Received).Datagrams &&
			sms.Total(dev.Sent).Datagrams == sms.Total(srv.Received).Datagrams {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("SMS still on the way: server sent %+v received %+v, light sent %+v received %+v",
				sms.Total(srv.Sent), sms.Total(srv.Received), sms.Total(dev.Sent), sms.Total(dev.Received))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
