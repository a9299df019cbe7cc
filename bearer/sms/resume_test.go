package sms_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/secure"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smstest"
)

// dtlsPeers makes every peer of a pair's bearers a DTLS peer.
func dtlsPeers(side string, c *sms.Config) {
	for k := range c.Peers {
		pc := c.Peers[k]
		pc.Security = sms.SecurityDTLS
		c.Peers[k] = pc
	}
}

// restartDevice closes the device's SMS bearer (a power cut: no
// close_notify goes out) and opens a new one on the same SIM.
func restartDevice(t *testing.T, p *pair) {
	t.Helper()
	p.dev.Close()
	b, err := sms.New(p.devSIM, sms.Config{
		StateDir: t.TempDir(),
		Peers:    map[string]sms.Peer{serverNum: {Security: sms.SecurityDTLS, SIM: deviceNum}},
		Params:   testParams(2 * time.Second),
		Worker:   outbox.WorkerConfig{Poll: 5 * time.Millisecond, BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	p.dev = b
}

func TestDTLSResumptionAfterDeviceRestart(t *testing.T) {
	for _, tc := range []struct {
		name     string
		graceful bool
	}{
		{"power cut", false},
		{"close_notify", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, smstest.Faults{Latency: 20 * time.Millisecond}, dtlsPeers)
			scfg, ccfg := secureCfg(140)
			scfg.CIDLength = -1
			var err error
			if scfg.Sessions, err = secure.NewSessionCache(); err != nil {
				t.Fatal(err)
			}
			if ccfg.Sessions, err = secure.NewSessionCache(); err != nil {
				t.Fatal(err)
			}
			ss, err := secure.NewServer(&traceBearer{p.srv, t, "server"}, scfg)
			if err != nil {
				t.Fatal(err)
			}
			sep, err := bearer.NewEndpoint(ss, bearer.WithHandler(costMux()))
			if err != nil {
				t.Fatal(err)
			}
			defer sep.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			srv := mustAddr(t, serverNum)
			read := func(conn *secure.Conn) {
				t.Helper()
				dev, err := bearer.NewEndpoint(conn)
				if err != nil {
					t.Fatal(err)
				}
				if resp, err := dev.Get(ctx, srv, "/3/0/0"); err != nil || string(resp.Payload) != "m2mbearer" {
					t.Fatalf("read: %v", err)
				}
				if tc.graceful {
					dev.Close()
				}
			}
			conn, err := secure.Dial(ctx, p.dev, srv, ccfg)
			if err != nil {
				t.Fatal(err)
			}
			read(conn)
			if !tc.graceful {
				restartDevice(t, p)
			} else {
				restartDevice(t, p)
			}
			n0 := p.net.Submitted.Load()
			conn, err = secure.Dial(ctx, &traceBearer{p.dev, t, "device"}, srv, ccfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("second handshake: %d SMS, server %+v\nserver cache %+v client cache %+v", p.net.Submitted.Load()-n0, ss.Stats(), scfg.Sessions.Stats(), ccfg.Sessions.Stats())
			read(conn)
		})
	}
}

type traceBearer struct {
	bearer.Bearer
	t    *testing.T
	side string
}

func (c *traceBearer) WriteTo(p []byte, a net.Addr) (int, error) {
	c.t.Logf("%s sends %d bytes: % x", c.side, len(p), p[:min(len(p), 16)])
	return c.Bearer.WriteTo(p, a)
}
