package gateway

import (
	"bytes"
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
		r := b.waitText(`#campaign-devices tr[data-endpoint="`+ep+`"]`, "skipped", time.Second)
		if !strings.Contains(r, "over the SMS budget") || !strings.Contains(r, "budget") {
			t.Errorf("%s: %q", ep, r)
		}
	}
	b.waitText(`#campaign-devices tr[data-endpoint="light-udp-1"]`, "done", time.Second)
	b.screenshot(t, "campaign-skipped", "#firmware-section")
	if errs := b.errors(); len(errs) > 0 {
		t.Errorf("the page reported errors:\n%s", strings.Join(errs, "\n"))
	}
}
