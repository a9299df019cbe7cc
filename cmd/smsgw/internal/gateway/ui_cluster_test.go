package gateway

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
	"github.com/m2mbearer/m2mbearer/redisstore/redistest"
)

// clusterGateway starts node of a cluster on srv: with the demo fleet f and
// the simulator's server SIMs sims.
func clusterGateway(t *testing.T, srv *redistest.Server, node string, f config.Fleet, sims []string) *Gateway {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Store, cfg.StorePrefix, cfg.Node = srv.URL(), "ui:", node
	cfg.API.Listen, cfg.LwM2M.UDP, cfg.LwM2M.DTLS, cfg.API.Token = "127.0.0.1:0", "127.0.0.1:0", "", testToken
	cfg.Simulator.Fleet, cfg.Simulator.ServerSIMs = f, sims
	cfg.Simulator.Latency, cfg.Simulator.SendTime = 20*time.Millisecond, 10*time.Millisecond
	cfg.Cluster.HeartbeatTTL = time.Second
	return startValidGateway(t, cfg)
}

// TestWebUIClusterHeadlessChromium: two nodes on one redis-server; the page
// served by gw-b shows both nodes alive, which node holds which light (all
// at gw-a, which runs the demo fleet) and which node has which modem, and
// the fleet table's node column. After gw-a stops, gw-b shows it down and
// names itself as the node serving gw-a's lights.
func TestWebUIClusterHeadlessChromium(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		t.Skip("no " + chromium + " (Debian package chromium)")
	}
	srv := redistest.Start(t, redistest.Options{})
	a := clusterGateway(t, srv, "gw-a", config.Fleet{UDP: 2, Queue: 1, Awake: 8 * time.Second}, []string{"+491710000001"})
	b := clusterGateway(t, srv, "gw-b", config.Fleet{Awake: time.Second}, []string{"+491710000077"})
	bAPI := apiClient{t, b.Info().API}
	waitFleet(t, bAPI, 3)
	page := func() string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		base := strings.TrimSuffix(b.Info().API, "/api/v1")
		out, err := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
			"--no-first-run", "--user-data-dir="+t.TempDir(), "--virtual-time-budget=15000", "--dump-dom",
			base+"/ui/#token="+testToken).Output()
		if err != nil {
			t.Fatalf("chromium: %v", err)
		}
		return string(out)
	}
	check := func(dom string, wants ...string) {
		t.Helper()
		for _, w := range wants {
			if !regexp.MustCompile(w).MatchString(dom) {
				t.Errorf("page lacks %s", w)
			}
		}
		if t.Failed() {
			t.Fatalf("DOM:\n%s", dom)
		}
	}
	// Wait until gw-b saw gw-a's heartbeat.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, v := bAPI.do("GET", "/cluster", "")
		if ns, _ := v["nodes"].([]any); len(ns) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("gw-b never saw gw-a")
		}
	}
	check(page(),
		`<body data-ready="1"`,
		`id="cluster-self">this page is served by gw-b<`,
		`data-node="gw-a"><td>gw-a</td><td class="state-alive">alive</td><td>3</td><td>\+491710000001</td>`,
		`data-node="gw-b"><td>gw-b</td><td class="state-alive">alive</td><td>0</td><td>\+491710000077</td>`,
		`<tr data-endpoint="light-udp-1"><td>light-udp-1</td><td>gw-a</td><td>gw-a</td></tr>`,
		`data-endpoint="light-queue-1"[^>]*>.*?<td class="node">gw-a</td>`,
	)
	// A picture of the page for a person (kept with go test -artifacts).
	shot := filepath.Join(t.ArtifactDir(), "cluster.png")
	sctx0, cancel0 := context.WithTimeout(context.Background(), 60*time.Second)
	if err := exec.CommandContext(sctx0, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=15000", "--window-size=1280,2400", "--screenshot="+shot,
		strings.TrimSuffix(b.Info().API, "/api/v1")+"/ui/#token="+testToken).Run(); err != nil {
		t.Fatalf("chromium screenshot: %v", err)
	}
	cancel0()
	t.Logf("screenshot %s", shot)
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, v := bAPI.do("GET", "/cluster", "")
		if tk, _ := v["takeover"].(map[string]any); len(tk) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("gw-b never took gw-a's lights over")
		}
	}
	check(page(),
		`data-node="gw-a"><td>gw-a</td><td class="state-down">down</td>`,
		`<tr data-endpoint="light-udp-1"><td>light-udp-1</td><td>gw-a</td><td>gw-b \(takeover\)</td></tr>`,
	)
}
