package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
)

// TestGatewaySMPPSimulator runs the daemon's simulator with the server
// numbers behind a simulated SMSC over SMPP instead of modems: an SMS-only
// light registers and is read over SMS, a sleeping light is woken by SMS,
// and the link's metrics show submits and correlated receipts.
func TestGatewaySMPPSimulator(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.API.Listen, cfg.LwM2M.UDP, cfg.LwM2M.DTLS, cfg.API.Token = "127.0.0.1:0", "127.0.0.1:0", "", testToken
	cfg.Simulator.Fleet = config.Fleet{Queue: 1, SMS: 1, Awake: 2 * time.Second}
	cfg.Simulator.Latency = 20 * time.Millisecond
	cfg.Simulator.SMPP, cfg.Simulator.SMPPRate, cfg.SMS.StatusReports = true, 50, true
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	g, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Shutdown(context.Background())
	if len(g.modems) != 0 || len(g.smppLinks) != 1 {
		t.Fatalf("%d modems, %d SMPP links", len(g.modems), len(g.smppLinks))
	}
	a := apiClient{t, g.Info().API}
	waitFleet(t, a, 2)
	if code, v := a.do("GET", "/devices/light-sms-1/data/3/0/2", ""); code != 200 || !strings.Contains(toJSON(v), `"value":"light-sms-1"`) {
		t.Fatalf("read over SMS via SMPP: %d %v", code, v)
	}
	waitAsleep(t, a, "light-queue-1")
	code, v := a.do("GET", "/devices/light-queue-1/data/3/0/2", "")
	job, _ := v["job"].(map[string]any)
	if code != 202 || job == nil {
		t.Fatalf("queued read: %d %v", code, v)
	}
	code, v = a.do("GET", "/jobs/"+itoa(int(job["id"].(float64)))+"?wait=40s", "")
	if code != 200 || v["state"] != "done" {
		t.Fatalf("woken by SMS over SMPP: %d %v", code, v)
	}
	resp, err := http.Get(strings.TrimSuffix(g.Info().API, "/api/v1") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, what := range []string{"submitted", "receipts", "received"} {
		t.Run(what, func(t *testing.T) {
			m := regexp.MustCompile(`smsgw_smpp_total\{link="simulator",what="` + what + `"\} (\d+)`).FindSubmatch(body)
			if m == nil {
				t.Fatalf("no %s metric", what)
			}
			if n, _ := strconv.Atoi(string(m[1])); n == 0 {
				t.Errorf("smpp %s = 0", what)
			}
		})
	}
	if !strings.Contains(string(body), `smsgw_smpp_state{link="simulator",what="bound"} 1`) {
		t.Error("link not bound in metrics")
	}
}
