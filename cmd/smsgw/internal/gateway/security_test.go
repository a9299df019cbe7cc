package gateway

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
)

// TestCheckSMSPeer: over SMS an endpoint registers only from the number
// configured for it (server.WithPeerCheck turns a refusal into 4.03; see
// lwm2m/server TestPeerCheck).
func TestCheckSMSPeer(t *testing.T) {
	g := &Gateway{devices: map[string]config.SMSDevice{
		"lamp-1": {Endpoint: "lamp-1", MSISDN: "+491710000001"},
		"lamp-2": {Endpoint: "lamp-2", MSISDN: "00491710000002"}, // any form ParseMSISDN takes
	}}
	num := func(s string) net.Addr {
		a, err := sms.ParseMSISDN(s)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	udpPeer := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5683}
	tests := []struct {
		name, ep, transport string
		peer                net.Addr
		want                string // "" = allowed, else part of the error
	}{
		{"own number", "lamp-1", "sms", num("+491710000001"), ""},
		{"other number form", "lamp-2", "sms", num("+491710000002"), ""},
		{"lamp-1 as lamp-2", "lamp-2", "sms", num("+491710000001"), "configured for number +491710000002"},
		{"unknown endpoint over SMS", "lamp-9", "sms", num("+491710000001"), "not in sms.devices"},
		{"UDP is not checked", "lamp-9", "udp", udpPeer, ""},
		{"DTLS is not checked", "lamp-2", "dtls", udpPeer, ""},
	}
	for _, tc := range tests {
		err := g.checkSMSPeer(tc.ep, tc.transport, tc.peer, bearer.Identity{})
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestMetricsAuth: with api.metrics_auth, /metrics needs the API token;
// /healthz and /openapi.json stay open.
func TestMetricsAuth(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.API.Listen, cfg.LwM2M.UDP, cfg.LwM2M.DTLS, cfg.API.Token = "127.0.0.1:0", "127.0.0.1:0", "", testToken
	cfg.API.MetricsAuth = true
	cfg.Simulator.Enabled = false
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Shutdown(context.Background())
	root := strings.TrimSuffix(g.Info().API, "/api/v1")
	get := func(p, token string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, "GET", root+p, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/metrics", ""); code != http.StatusUnauthorized {
		t.Fatalf("/metrics without token: %d", code)
	}
	if code, _ := get("/metrics", "wrong"); code != http.StatusUnauthorized {
		t.Fatalf("/metrics with a wrong token: %d", code)
	}
	if code, body := get("/metrics", testToken); code != 200 || !strings.Contains(body, "smsgw_") {
		t.Fatalf("/metrics with the token: %d", code)
	}
	for _, p := range []string{"/healthz", "/openapi.json"} {
		if code, _ := get(p, ""); code != 200 {
			t.Fatalf("%s: %d", p, code)
		}
	}
}
