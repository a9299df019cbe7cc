package firmware_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smstest"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/m2mbearer/m2mbearer/lwm2m/client"
	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// env is a gateway: LwM2M server on UDP loopback with the image store and
// the CoAP Package URI server on the same endpoint.
type env struct {
	srv   *server.Server
	ep    *bearer.Endpoint
	met   *bearer.Counters // the UDP Endpoint's counters
	addr  net.Addr
	store *firmware.Store
	upd   *firmware.Updater
	// SMS side (newEnvSMS): the network, the gateway's SMS endpoint.
	net   *smstest.Network
	smsEP *bearer.Endpoint
}

const gwNum = "+491710000001"

// smsNumber is the MSISDN of SMS-only light i.
func smsNumber(i int) string { return fmt.Sprintf("+4917200%06d", i) }

func newEnv(t testing.TB, waker firmware.Waker) *env { return newEnvSMS(t, waker, 0) }

// newEnvSMS is newEnv with an SMS bearer on the in-memory SMS network too,
// configured for smsDevices SMS-only lights (smsNumber(0..n-1)).
func newEnvSMS(t testing.TB, waker firmware.Waker, smsDevices int) *env {
	t.Helper()
	store, err := firmware.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := udp.Listen("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The fleet is on 127.0.0.1: one source for the server's rate limit.
	srv, err := server.New(new(registry.Memory), server.WithMaxObservations(100000),
		server.WithLimits(server.Limits{SourceRate: -1}))
	if err != nil {
		t.Fatal(err)
	}
	mux := bearer.NewServeMux()
	mux.Handle("/", srv.Handler("udp"))
	lim := bearer.DefaultLimits(b.Params())
	lim.MaxPeers = 20000
	lim.MaxDedup = 200000
	lim.MaxExchanges = 20000
	lim.MaxHandlers = 256
	met := new(bearer.Counters)
	ep, err := bearer.NewEndpoint(b, bearer.WithHandler(mux), bearer.WithLimits(lim), bearer.WithMetrics(met))
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/fw/", firmware.NewCoAPHandler(store, "/fw/", ep.BlockSize(), nil))
	srv.Attach("udp", ep)
	eps := map[string]*bearer.Endpoint{"udp": ep}
	var smsNet *smstest.Network
	var sep *bearer.Endpoint
	if smsDevices > 0 {
		smsNet = smstest.NewNetwork(5, smstest.Faults{})
		peers := map[string]sms.Peer{}
		for i := range smsDevices {
			peers[smsNumber(i)] = sms.Peer{Security: sms.ModeNoSec, SIM: gwNum}
		}
		sb, err := sms.New(smsNet.AddSIM(gwNum), sms.Config{StateDir: t.TempDir(), Worker: smsWorker, Peers: peers})
		if err != nil {
			t.Fatal(err)
		}
		if sep, err = bearer.NewEndpoint(sb, bearer.WithHandler(srv.Handler("sms"))); err != nil {
			t.Fatal(err)
		}
		srv.Attach("sms", sep)
		eps["sms"] = sep
		t.Cleanup(func() { sep.Close(); smsNet.Close() })
	}
	upd, err := firmware.NewUpdater(firmware.Config{
		Server: srv, Store: store, Endpoints: eps,
		Pull: firmware.PullURIs{CoAP: "coap://" + b.LocalAddr().String() + "/fw/"}, Waker: waker,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { upd.Close(); srv.Close(); ep.Close() })
	return &env{srv: srv, ep: ep, met: met, addr: b.LocalAddr(), store: store, upd: upd, net: smsNet, smsEP: sep}
}

var smsWorker = outbox.WorkerConfig{Poll: 5 * time.Millisecond, BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond}

// newSMSLight starts SMS-only light i (binding S, push only).
func newSMSLight(t testing.TB, e *env, name string, i int) *light {
	t.Helper()
	num := smsNumber(i)
	db, err := sms.New(e.net.AddSIM(num), sms.Config{StateDir: t.TempDir(), Worker: smsWorker,
		Peers: map[string]sms.Peer{gwNum: {Security: sms.ModeNoSec, SIM: num}}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(name, client.WithBinding("S"), client.WithSMSNumber(num), client.WithLifetime(3600))
	if err != nil {
		t.Fatal(err)
	}
	cep, err := bearer.NewEndpoint(db, bearer.WithHandler(c))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddDevice(client.Device{Manufacturer: "m2m", Firmware: "1.0", Binding: "S"}); err != nil {
		t.Fatal(err)
	}
	dev, err := firmware.NewDevice(c, firmware.DeviceConfig{PushOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	gw, _ := sms.ParseMSISDN(gwNum)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.Start(ctx, cep, gw); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close(); c.Close(); cep.Close() })
	return &light{c: c, ep: cep, dev: dev, sleepy: &sleepy{h: c, c: c}}
}

// light is a simulated streetlight: our LwM2M client with the demo
// firmware behaviour, optionally sleeping (drops requests until woken).
type light struct {
	c      *client.Client
	ep     *bearer.Endpoint
	dev    *firmware.Device
	sleepy *sleepy
}

// sleepy simulates a queue-mode device's radio: while asleep, requests are
// not answered; Wake (the SMS trigger) wakes it and it sends an Update.
type sleepy struct {
	h       bearer.Handler
	c       *client.Client
	sleeps  bool
	mu      sync.Mutex
	until   time.Time // awake until
	wakes   int
	dropped int
	// slow, if set, says how long the device takes to answer r (a
	// radio with latency); 0 answers at once.
	slow func(r *bearer.Request) time.Duration
}

// awakeFor is how long a sleepy device stays awake after a wake-up or
// after the last request it served.
const awakeFor = 20 * time.Second

func (s *sleepy) ServeCoAP(w bearer.ResponseWriter, r *bearer.Request) {
	s.mu.Lock()
	asleep := s.sleeps && time.Now().After(s.until)
	if asleep {
		s.dropped++
	} else if s.sleeps {
		s.until = time.Now().Add(awakeFor) // traffic keeps the radio awake
	}
	slow := s.slow
	s.mu.Unlock()
	if asleep {
		return // no answer: the request times out
	}
	if slow != nil {
		time.Sleep(slow(r))
	}
	s.h.ServeCoAP(w, r)
}

// wake is the SMS trigger arriving: the device wakes and sends an Update.
func (s *sleepy) wake() {
	s.mu.Lock()
	s.wakes++
	s.until = time.Now().Add(awakeFor)
	s.mu.Unlock()
	s.c.TriggerUpdate()
}

// lights finds lights by name for the test waker.
type lights struct {
	mu sync.Mutex
	m  map[string]*light
}

// applied returns the updates the lights applied, in all and at most by
// one light.
func (ls *lights) applied() (total, most int) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for _, l := range ls.m {
		n := l.dev.Applied()
		total += n
		most = max(most, n)
	}
	return total, most
}

func (ls *lights) add(l *light) {
	ls.mu.Lock()
	if ls.m == nil {
		ls.m = map[string]*light{}
	}
	ls.m[l.c.Name()] = l
	ls.mu.Unlock()
}

// Wake implements firmware.Waker, standing in for the SMS trigger.
func (ls *lights) Wake(_ context.Context, ep string) error {
	ls.mu.Lock()
	l := ls.m[ep]
	ls.mu.Unlock()
	if l == nil {
		return errors.New("no such light")
	}
	l.sleepy.wake()
	return nil
}

type lightOpts struct {
	queue    bool
	pushOnly bool
	firmware string
}

func newLight(t testing.TB, e *env, name string, o lightOpts) *light {
	t.Helper()
	var opts []client.Option
	if o.queue {
		opts = append(opts, client.WithQueueMode())
	}
	c, err := client.New(name, opts...)
	if err != nil {
		t.Fatal(err)
	}
	sl := &sleepy{h: c, c: c, sleeps: o.queue, until: time.Now().Add(time.Second)}
	b, err := udp.Listen("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cep, err := bearer.NewEndpoint(b, bearer.WithHandler(sl))
	if err != nil {
		t.Fatal(err)
	}
	fw := o.firmware
	if fw == "" {
		fw = "1.0"
	}
	if err := c.AddServer(client.Server{ShortID: 1, Lifetime: 600, Binding: "U"}); err != nil {
		t.Fatal(err)
	}
	if err := c.AddDevice(client.Device{Manufacturer: "m2m", Model: "SL", Serial: name, Firmware: fw}); err != nil {
		t.Fatal(err)
	}
	dev, err := firmware.NewDevice(c, firmware.DeviceConfig{Endpoint: cep, PushOnly: o.pushOnly})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.Start(ctx, cep, e.addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close(); c.Close(); cep.Close() })
	return &light{c: c, ep: cep, dev: dev, sleepy: sl}
}

func image(t testing.TB, e *env, version string, size int) firmware.ImageInfo {
	t.Helper()
	payload := []byte(strings.Repeat("streetlight firmware "+version+" ", size/20+1))[:size]
	pkg, err := firmware.BuildPackage(version, payload)
	if err != nil {
		t.Fatal(err)
	}
	info, err := e.store.PutBytes(context.Background(), "sl", version, pkg)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func fast() firmware.Options {
	return firmware.Options{PollInterval: 200 * time.Millisecond, DownloadTimeout: 30 * time.Second,
		UpdateTimeout: 30 * time.Second, WakeTimeout: 30 * time.Second}
}
