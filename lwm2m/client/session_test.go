package client_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/secure"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smstest"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/m2mbearer/m2mbearer/lwm2m/client"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

var recoverKey = []byte("0123456789abcdef")

// dtlsSide is one bearer for the session-recovery tests: the server's
// listener, restartable, and the device's dialer.
type dtlsSide struct {
	// listen opens the server's inner bearer (the same address each time).
	listen func(t *testing.T) bearer.Bearer
	// device opens the device's inner bearer for one session.
	device  func(t *testing.T) bearer.Bearer
	srvAddr func() net.Addr
	// deviceSent counts what the device has sent (SMS segments; 0 on UDP).
	deviceSent func() uint64
	mtu        int
}

// dtlsServer is an LwM2M server behind DTLS PSK that can restart: with
// its session cache (an abbreviated handshake resumes) or without (a
// full one), announcing it (close_notify) or not (a crash).
type dtlsServer struct {
	t     *testing.T
	side  dtlsSide
	cache *secure.SessionCache
	quiet bool

	srv  *server.Server
	sep  *bearer.Endpoint
	dsrv *secure.Server
	sub  *server.Subscription
}

func (s *dtlsServer) start() {
	t := s.t
	sec := server.NewStaticSecurity(0)
	if err := sec.Bind("dev-a", bearer.Identity{Mode: "psk", PSKIdentity: []byte("psk-a")}); err != nil {
		t.Fatal(err)
	}
	dsrv, err := secure.NewServer(s.side.listen(t), &secure.Config{
		PSKLookup:  func(id []byte) ([]byte, error) { return recoverKey, nil },
		Sessions:   s.cache,
		QuietClose: s.quiet, SkipHelloVerify: s.side.mtu > 0, MTU: s.side.mtu, CIDLength: new(0),
		FlightInterval: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.dsrv = dsrv
	if s.srv, err = server.New(new(registry.Memory), server.WithSecurity(sec), server.WithNoSec(false)); err != nil {
		t.Fatal(err)
	}
	s.sep, err = bearer.NewEndpoint(dsrv, bearer.WithHandler(s.srv.Handler("dtls")))
	if err != nil {
		t.Fatal(err)
	}
	s.srv.Attach("dtls", s.sep)
	s.sub = s.srv.Subscribe(64)
}

func (s *dtlsServer) stop() {
	s.srv.Close()
	s.sep.Close() // closes the DTLS server and its bearer
}

// TestClientRecoversLostDTLSSession: the server restarts while our client
// is registered over DTLS, over UDP and over SMS; the client notices (the
// server's close_notify, or its Update going unanswered after a crash),
// opens a new session — abbreviated when the server kept its session
// cache, full when it lost it — registers again and is managed again, by
// itself. Before WithRedial, the client kept writing on the dead session
// until its registration expired.
func TestClientRecoversLostDTLSSession(t *testing.T) {
	for _, side := range []struct {
		name string
		mk   func(t *testing.T) dtlsSide
	}{{"udp", udpSide}, {"sms", smsSide}} {
		for _, tc := range []struct {
			name      string
			keepCache bool // the server restarts with its session cache
			quiet     bool // a crash: no close_notify
			lifetime  uint32
			resumed   uint64 // abbreviated handshakes the new server saw
		}{
			{"crash, sessions kept", true, true, 2, 1},
			{"crash, sessions lost", false, true, 2, 0},
			{"orderly restart (close_notify)", true, false, 600, 1},
		} {
			if side.name == "sms" && !tc.quiet {
				// On SMS the server says nothing when a session ends
				// (smsgw: QuietClose; a close_notify is an SMS, and one
				// still in the outbox when the bearer closes goes out
				// only after the next start): a restart is a crash.
				continue
			}
			t.Run(side.name+"/"+tc.name, func(t *testing.T) {
				sd := side.mk(t)
				scache, _ := secure.NewSessionCache()
				srv := &dtlsServer{t: t, side: sd, cache: scache, quiet: tc.quiet}
				srv.start()
				ccache, _ := secure.NewSessionCache()
				var dials atomic.Int32
				var c *client.Client
				dial := func(ctx context.Context) (*bearer.Endpoint, error) {
					dials.Add(1)
					conn, err := secure.Dial(ctx, sd.device(t), sd.srvAddr(), &secure.Config{
						PSKIdentity: []byte("psk-a"), PSKKey: recoverKey, Sessions: ccache,
						QuietClose: sd.mtu > 0, MTU: sd.mtu, CIDLength: new(0),
						FlightInterval: 300 * time.Millisecond, HandshakeTimeout: 10 * time.Second,
					})
					if err != nil {
						return nil, err
					}
					return bearer.NewEndpoint(conn, bearer.WithHandler(c))
				}
				var err error
				if c, err = client.New("dev-a", client.WithLifetime(tc.lifetime), client.WithRetry(time.Second), client.WithRedial(dial)); err != nil {
					t.Fatal(err)
				}
				if err := c.AddDevice(client.Device{Manufacturer: "ACME"}); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				ctx := ctxT(t)
				if err := c.StartRetry(ctx, nil, sd.srvAddr()); err != nil {
					t.Fatal(err)
				}
				waitEvent(t, srv.sub, server.Registered)

				// The restart.
				if !tc.keepCache {
					scache, _ = secure.NewSessionCache()
				}
				srv.stop()
				sent0 := sd.deviceSent()
				srv.cache = scache
				srv.start()
				t.Cleanup(srv.stop)
				restarted := time.Now()
				ev := waitEvent(t, srv.sub, server.Registered)
				took := time.Since(restarted)
				if ev.Registration.Identity != "psk:psk-a" {
					t.Fatalf("registration %+v", ev.Registration)
				}
				v, err := srv.srv.Read(ctx, "dev-a", path.Resource(3, 0, 0))
				if err != nil || v.Text() != "ACME" {
					t.Fatalf("read after the restart: %+v %v", v, err)
				}
				st := srv.dsrv.Stats()
				renewed, failed := c.SessionStats()
				t.Logf("registered again %v after the restart: %d dial(s), renewed %d, failed %d; new server: %d handshake(s), %d resumed; device sent %d SMS",
					took.Round(time.Millisecond), dials.Load(), renewed, failed, st.HandshakesOK, st.Resumed, sd.deviceSent()-sent0)
				if renewed != 1 || st.HandshakesOK != 1 || st.Resumed != tc.resumed {
					t.Fatalf("renewed %d, server handshakes %d resumed %d; want 1, 1, %d", renewed, st.HandshakesOK, st.Resumed, tc.resumed)
				}
				if !tc.quiet && took > 5*time.Second {
					t.Fatalf("close_notify: re-registered after %v, want at once", took)
				}
			})
		}
	}
}

// TestClientSessionRecoveryBounded: a server that is gone for good costs
// the device what the registration procedure allows: each attempt is one
// handshake (its ClientHello flights), RetryCount attempts, then the
// client stops; no SMS after that.
func TestClientSessionRecoveryBounded(t *testing.T) {
	sd := smsSide(t)
	scache, _ := secure.NewSessionCache()
	srv := &dtlsServer{t: t, side: sd, cache: scache, quiet: true}
	srv.start()
	ccache, _ := secure.NewSessionCache()
	var c *client.Client
	var dials atomic.Int32
	dial := func(ctx context.Context) (*bearer.Endpoint, error) {
		dials.Add(1)
		conn, err := secure.Dial(ctx, sd.device(t), sd.srvAddr(), &secure.Config{
			PSKIdentity: []byte("psk-a"), PSKKey: recoverKey, Sessions: ccache, QuietClose: true, MTU: sd.mtu, CIDLength: new(0),
			FlightInterval: 200 * time.Millisecond, HandshakeTimeout: 1500 * time.Millisecond,
		})
		if err != nil {
			return nil, err
		}
		return bearer.NewEndpoint(conn, bearer.WithHandler(c))
	}
	var err error
	if c, err = client.New("dev-a", client.WithLifetime(2), client.WithRetry(200*time.Millisecond), client.WithRedial(dial)); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.AddServer(client.Server{ShortID: 1, Lifetime: 2, Binding: "S"}))
	// The procedure: 3 attempts, 200 ms × 2^(n−1) apart (WithRetry: no
	// /1/0/18), one sequence.
	must(c.Set(path.Resource(1, 0, 17), content.NewInt(3)))
	must(c.Set(path.Resource(1, 0, 20), content.NewInt(1)))
	t.Cleanup(func() { c.Close() })
	ctx := ctxT(t)
	if err := c.StartRetry(ctx, nil, sd.srvAddr()); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, srv.sub, server.Registered)
	srv.stop() // and never back
	sent0 := sd.deviceSent()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, failed := c.SessionStats(); failed >= 3 {
			break
		}
		if time.Now().After(deadline) {
			r, f := c.SessionStats()
			t.Fatalf("the procedure did not end: %d dials, renewed %d, failed %d", dials.Load(), r, f)
		}
		time.Sleep(50 * time.Millisecond)
	}
	spent := sd.deviceSent() - sent0
	time.Sleep(2 * time.Second) // nothing more: the procedure gave up
	after := sd.deviceSent() - sent0
	renewed, failed := c.SessionStats()
	t.Logf("server gone: %d dials (renewed %d, failed %d), device sent %d SMS (the unanswered Update, then ClientHello flights)", dials.Load(), renewed, failed, spent)
	// One unanswered Update, then 3 handshakes of at most 4 ClientHellos
	// each (200, 400, 800 ms flights within 1.5 s).
	if failed != 3 || spent > 1+3*4 || after != spent {
		t.Fatalf("failed %d handshakes, device sent %d SMS then %d; want 3 and at most %d, then nothing", failed, spent, after, 1+3*4)
	}
}

func udpSide(t *testing.T) dtlsSide {
	var addr atomic.Pointer[net.UDPAddr] // the server's, fixed by its first start
	return dtlsSide{
		listen: func(t *testing.T) bearer.Bearer {
			at := "127.0.0.1:0"
			if a := addr.Load(); a != nil {
				at = a.String()
			}
			var b bearer.Bearer
			var err error
			for range 50 { // the old socket's port, free again
				if b, err = udp.Listen("udp", at); err == nil {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err != nil {
				t.Fatal(err)
			}
			addr.CompareAndSwap(nil, b.LocalAddr().(*net.UDPAddr))
			return b
		},
		device:     func(t *testing.T) bearer.Bearer { return listen(t) },
		srvAddr:    func() net.Addr { return addr.Load() },
		deviceSent: func() uint64 { return 0 },
	}
}

func smsSide(t *testing.T) dtlsSide {
	n := smstest.NewNetwork(5, smstest.Faults{})
	t.Cleanup(func() { n.Close() })
	srvSIM, devSIM := n.AddSIM(srvNum), n.AddSIM(devNum)
	params := sms.DefaultParams()
	params.AckTimeout = time.Second // MAX_TRANSMIT_WAIT 1.5 s
	mk := func(t *testing.T, sim *smstest.SIM, own, peer string) *sms.Bearer {
		b, err := sms.New(sim, sms.Config{StateDir: t.TempDir(), Params: &params,
			Worker: outbox.WorkerConfig{Poll: 5 * time.Millisecond, BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond},
			Peers:  map[string]sms.Peer{peer: {Security: sms.ModeDTLS, SIM: own}}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	dev := mk(t, devSIM, devNum, srvNum)
	t.Cleanup(func() { dev.Close() })
	return dtlsSide{
		mtu:    140,
		listen: func(t *testing.T) bearer.Bearer { return mk(t, srvSIM, srvNum, devNum) },
		// One SMS bearer for the device's whole life, lent to each session.
		device:  func(*testing.T) bearer.Bearer { return dev.Lend() },
		srvAddr: func() net.Addr { return msisdn(t, srvNum) },
		deviceSent: func() uint64 {
			u, _ := dev.Usage(srvNum)
			return sms.Total(u.Sent).Segments
		},
	}
}
