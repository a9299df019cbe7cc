package gateway

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
)

// TestDTLSOverSMSLight runs the gateway in-process with a DTLS-over-SMS
// light beside a NoSec SMS light: both register over the one SMS bearer
// (split by mode) and are read through the API; the DTLS light's
// registration carries its PSK identity; after a restart of the gateway
// (lights included) the light resumes its session, and the server's
// handshake counters say so.
func TestDTLSOverSMSLight(t *testing.T) {
	if testing.Short() {
		t.Skip("SMS handshakes through the simulated network")
	}
	dir := t.TempDir()
	run := func(t *testing.T) *Gateway {
		cfg := config.Default()
		cfg.DataDir = dir
		cfg.API.Listen, cfg.LwM2M.UDP, cfg.LwM2M.DTLS, cfg.API.Token = "127.0.0.1:0", "127.0.0.1:0", "", testToken
		cfg.Simulator.Fleet = config.Fleet{SMS: 1, DTLSSMS: 1, Awake: 3 * time.Second}
		cfg.Simulator.Latency, cfg.Simulator.SendTime = 20*time.Millisecond, 10*time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		t.Cleanup(cancel)
		g, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	stop := func(g *Gateway) {
		sctx, c := context.WithTimeout(context.Background(), 30*time.Second)
		defer c()
		if err := g.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}
	light := func(g *Gateway) *Light {
		for _, l := range g.fleet.Lights {
			if l.Kind == KindDTLSSMS {
				return l
			}
		}
		t.Fatal("no dtls-sms light")
		return nil
	}

	g := run(t)
	a := apiClient{t, g.Info().API}
	waitFleet(t, a, 2)
	for _, ep := range []string{"light-dtls-sms-1", "light-sms-1"} {
		ok := t.Run(ep, func(t *testing.T) {
			a := apiClient{t, a.base}
			code, v := a.do("GET", "/devices/"+ep+"/data/3/0/0", "")
			if code != 200 {
				t.Fatalf("read %s: %d %v", ep, code, v)
			}
			_, d := a.do("GET", "/devices/"+ep, "")
			if d["transport"] != "sms" {
				t.Fatalf("%s: %v", ep, d)
			}
		})
		if !ok {
			t.FailNow()
		}
	}
	reg, ok := g.srv.Lookup("light-dtls-sms-1")
	if !ok || reg.Identity != "psk:light-dtls-sms-1" {
		t.Fatalf("registration identity %q", reg.Identity)
	}
	if full, resumed := light(g).DTLSHandshakes(); full != 1 || resumed != 0 {
		t.Fatalf("first start: %d full, %d abbreviated handshakes", full, resumed)
	}
	stop(g)

	g = run(t)
	defer stop(g)
	a = apiClient{t, g.Info().API}
	waitFleet(t, a, 2)
	// The registration is still in the store; wait for the light's and
	// the server's handshakes.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		full, resumed := light(g).DTLSHandshakes()
		if full+resumed > 0 && g.dtlsSMS.Stats().HandshakesOK > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if full, resumed := light(g).DTLSHandshakes(); full != 0 || resumed != 1 {
		t.Fatalf("after the restart: %d full, %d abbreviated handshakes", full, resumed)
	}
	if st := g.dtlsSMS.Stats(); st.Resumed != 1 {
		t.Fatalf("server after the restart: %+v", st)
	}
	if code, v := a.do("GET", "/devices/light-dtls-sms-1/data/3/0/0", ""); code != 200 {
		t.Fatalf("read after the restart: %d %v", code, v)
	}
}
