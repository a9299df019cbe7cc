package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
)

// TestWebUICampaignSkipped renders, in headless Chromium with live
// updates on, a campaign of 7 demo lights where the 2 SMS-only ones cannot
// be updated within the campaign's SMS budget (0): the list has a column
// for every device state and one for the devices over the SMS budget, the
// counts add up to 7, and the detail says why each skipped light was
// skipped. (It used to read "Done 5, Failed 0", the 2 in no column.)
func TestWebUICampaignSkipped(t *testing.T) {
	b := startBrowser(t)
	g, a, _ := startDMGateway(t, t.TempDir(), "", func(c *config.Config) {
		c.Simulator.Fleet = config.Fleet{UDP: 5, SMS: 2, Awake: 3 * time.Second}
	})
	waitFleet(t, a, 8) // the 7 lights and the test client
	pkg, _ := firmware.BuildPackage("2.6.0", bytes.Repeat([]byte("x"), 2000))
	code, img := a.upload("name=campaign-image&version=2.6.0&sha256="+sum(pkg), pkg)
	if code != 201 {
		t.Fatalf("upload: %d %v", code, img)
	}
	code, c := a.do("POST", "/campaigns", `{"name":"seven","image":"`+img["id"].(string)+`","prefix":"light-","allow_sms_push":true,"sms_budget":0}`)
	if code != 201 {
		t.Fatalf("campaign: %d %v", code, c)
	}
	cid := c["id"].(string)
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, v := a.do("GET", "/campaigns/"+cid, ""); v["campaign"].(map[string]any)["status"] == firmware.CampaignDone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("campaign not done")
		}
	}
	base := strings.TrimSuffix(g.Info().API, "/api/v1")
	b.open(base + "/ui/#token=" + testToken + "&campaign=" + cid)
	row := `#campaigns tr[data-campaign="` + cid + `"] `
	b.waitText(row, "7/7 (100%)", 10*time.Second)
	for _, c := range []struct{ col, want string }{
		{"pending", "0"}, {"running", "0"}, {"done", "5"}, {"skipped", "2"}, {"over-budget", "2"}, {"failed", "0"}, {"cancelled", "0"},
	} {
		t.Run(c.col, func(t *testing.T) {
			b.t = t
			b.waitExact(row+".count-"+c.col, c.want, time.Second)
		})
	}
	b.t = t
	b.waitExact(row+".count-sms", "0 / none", time.Second)
	b.waitExact("#campaign-summary", "7 devices: 5 done, 2 skipped (2 over the SMS budget); SMS 0 used of none", 5*time.Second)
	for _, ep := range []string{"light-sms-1", "light-sms-2"} {
		t.Run(ep, func(t *testing.T) {
			b.t = t
			r := b.waitText(`#campaign-devices tr[data-endpoint="`+ep+`"]`, "skipped", time.Second)
			if !strings.Contains(r, "over the SMS budget") || !strings.Contains(r, "budget") {
				t.Errorf("%s: %q", ep, r)
			}
		})
	}
	b.t = t
	b.waitText(`#campaign-devices tr[data-endpoint="light-udp-1"]`, "done", time.Second)
	b.screenshot(t, "campaign-skipped", "#firmware-section")
	if errs := b.errors(); len(errs) > 0 {
		t.Errorf("the page reported errors:\n%s", strings.Join(errs, "\n"))
	}
}

// TestWebUISMSSpendAndWakeups wakes the sleeping demo light with an SMS
// trigger (a queued read), then checks GET /api/v1/wakeups (the wake-up,
// its latency and trigger count, the histogram), GET /api/v1/sms/spend
// (today's segments per device against the daily budgets) and their view
// in headless Chromium, and that the spend outlives the gateway.
func TestWebUISMSSpendAndWakeups(t *testing.T) {
	b := startBrowser(t)
	parent := t
	g, api := startGateway(t)
	a := apiClient{t, api}
	waitFleet(t, a, 4)
	waitAsleep(t, a, "light-queue-1")
	code, v := a.do("GET", "/devices/light-queue-1/data/3/0/2", "")
	job, _ := v["job"].(map[string]any)
	if code != 202 || job == nil {
		t.Fatalf("queued read: %d %v", code, v)
	}
	waitJob(t, a, int(job["id"].(float64)))
	today := time.Now().UTC().Format(time.DateOnly)
	var wakeups float64

	t.Run("api-wakeups", func(t *testing.T) {
		code, v := a.do("GET", "/wakeups", "")
		recent, _ := v["recent"].([]any)
		if code != 200 || v["count"].(float64) < 1 || len(recent) < 1 {
			t.Fatalf("wakeups: %d %v", code, v)
		}
		wakeups = v["count"].(float64)
		l := recent[0].(map[string]any)
		if l["endpoint"] != "light-queue-1" || l["triggers"].(float64) < 1 || l["seconds"].(float64) <= 0 || l["seconds"].(float64) > 60 {
			t.Errorf("wake-up %v", l)
		}
		var n float64
		for _, b := range v["buckets"].([]any) {
			n += b.(map[string]any)["count"].(float64)
		}
		if n != wakeups || v["p50_seconds"].(float64) <= 0 {
			t.Errorf("buckets hold %v of %v wake-ups: %v", n, wakeups, v)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		req, _ := http.NewRequest("GET", strings.TrimSuffix(api, "/api/v1")+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{fmt.Sprintf("smsgw_wakeup_latency_seconds_count %v\n", wakeups), "smsgw_wakeup_waking 0\n", "smsgw_wakeup_dropped_total 0\n"} {
			t.Run(want, func(t *testing.T) {
				if !strings.Contains(string(m), want) {
					t.Errorf("metrics lack %q", want)
				}
			})
		}
	})
	t.Run("api-spend", func(t *testing.T) {
		code, v := a.do("GET", "/sms/spend?days=3", "")
		days, _ := v["days"].([]any)
		if code != 200 || len(days) != 1 || v["budget_per_device"] != float64(200) || v["budget_per_day"] != float64(20000) {
			t.Fatalf("spend: %d %v", code, v)
		}
		d := days[0].(map[string]any)
		if d["day"] != today || d["sent_segments"].(float64) < 1 || d["budget_used"].(float64) < 1 {
			t.Fatalf("today: %v", d)
		}
		found := false
		for _, x := range d["devices"].([]any) {
			dev := x.(map[string]any)
			if dev["endpoint"] == "light-queue-1" {
				found = true
				if dev["number"] != "+491720000001" || dev["sent_segments"].(float64) < 1 || dev["budget_used"].(float64) < 1 {
					t.Errorf("light-queue-1: %v", dev)
				}
			}
		}
		if !found {
			t.Errorf("light-queue-1 (woken by SMS) not in today's spend: %v", d)
		}
		for _, q := range []string{"0", "32", "x", "-1"} {
			t.Run(q, func(t *testing.T) {
				a := apiClient{t, a.base}
				if code, v := a.do("GET", "/sms/spend?days="+q, ""); code != 400 || !strings.Contains(toJSON(v), "days") {
					t.Errorf("days=%s: %d %v", q, code, v)
				}
			})
		}
	})
	t.Run("ui", func(t *testing.T) {
		b.t = t
		defer func() { b.t = parent }()
		b.open(strings.TrimSuffix(api, "/api/v1") + "/ui/#token=" + testToken)
		b.waitText(`#sms-days tr[data-day="`+today+`"]`, today, 10*time.Second)
		b.waitText("#sms-budgets", "200 a day per device, 20000 a day for the deployment", time.Second)
		row := b.waitText(`#sms-devices tr[data-endpoint="light-queue-1"]`, "+491720000001", 5*time.Second)
		if !strings.Contains(row, " / 200") {
			t.Errorf("device row %q lacks its budget", row)
		}
		b.waitText("#wake-summary", "measured since start", 5*time.Second)
		b.waitText(`#wake-recent tr[data-endpoint="light-queue-1"]`, "light-queue-1", time.Second)
		bars, err := b.eval(`[...document.querySelectorAll("#wake-chart .bucket .n")].map(e => Number(e.textContent)).reduce((a, b) => a + b, 0) + "/" + document.querySelectorAll("#wake-chart .bucket").length`)
		if err != nil || bars != fmt.Sprintf("%v/%d", wakeups, len(wakeBuckets)+1) {
			t.Errorf("chart bars: %v %v (want %v wake-ups in %d buckets)", bars, err, wakeups, len(wakeBuckets)+1)
		}
		b.screenshot(t, "sms-spend-and-wakeups", "#sms-section")
		if errs := b.errors(); len(errs) > 0 {
			t.Errorf("the page reported errors:\n%s", strings.Join(errs, "\n"))
		}
	})
	t.Run("snapshot", func(t *testing.T) {
		if err := g.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(g.cfg.DataDir, spendFile))
		if err != nil || !strings.Contains(string(data), `"day":"`+today+`"`) || !strings.Contains(string(data), "+491720000001") {
			t.Fatalf("%s: %v %s", spendFile, err, data)
		}
	})
}
