package gateway

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

const chromium = "/usr/bin/chromium"

// TestWebUIHeadlessChromium loads the web UI in headless Chromium, lets its
// JavaScript call the API, and checks the rendered DOM: the fleet with each
// light's state, the selected light's object tree with values read from the
// device, its (empty) queue and the modems.
func TestWebUIHeadlessChromium(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		t.Skip("no " + chromium + " (Debian package chromium)")
	}
	g, api := startGateway(t)
	a := apiClient{t, api}
	waitFleet(t, a, 4)
	// Wait until the queue-mode light sleeps, so the page shows both states.
	for asleep := time.Now().Add(40 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, d := a.do("GET", "/devices/light-queue-1", ""); d["awake"] == false {
			break
		}
		if time.Now().After(asleep) {
			t.Fatal("queue-mode light never asleep")
		}
	}
	base := strings.TrimSuffix(api, "/api/v1")

	// The page itself needs no token; the API does.
	resp, err := http.Get(base + "/ui/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /ui/: %v %v", err, resp)
	}
	resp.Body.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--no-first-run", "--user-data-dir="+t.TempDir(), "--virtual-time-budget=15000", "--dump-dom",
		base+"/ui/#live=0&token="+testToken+"&device=light-udp-1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	dom := string(out)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`<body data-ready="1"`),
		regexp.MustCompile(`id="status">4 devices registered<`),
		regexp.MustCompile(`data-endpoint="light-udp-1" class="sel">.*?class="state-awake">awake<`),
		regexp.MustCompile(`data-endpoint="light-queue-1"[^>]*>.*?class="state-sleeping">sleeping<`),
		regexp.MustCompile(`data-endpoint="light-sms-1"[^>]*>.*?<td>sms</td>`),
		regexp.MustCompile(`id="device-name">light-udp-1<`),
		regexp.MustCompile(`/3311/0 Light Control`),
		// A value cell may carry attributes besides its id (the last
		// known values and the page's own reads fill it in either order).
		regexp.MustCompile(`id="v-3-0-0"[^>]*>m2mbearer<`),
		regexp.MustCompile(`id="v-3-0-2"[^>]*>light-udp-1<`),
		regexp.MustCompile(`id="v-3311-0-5851"[^>]*>80<`),
		regexp.MustCompile(`no queued work`),
		regexp.MustCompile(`<td>\+491710000001</td>.*?<td>ready</td>`),
	} {
		if !want.MatchString(dom) {
			t.Errorf("page lacks %s", want)
		}
	}
	// A cell the page's read filled says nothing of a "last known" value
	// (the tooltip of the last values, which may arrive first).
	if regexp.MustCompile(`id="v-3311-0-5851"[^>]*title="last known`).MatchString(dom) {
		t.Error("the read value of /3311/0/5851 keeps the tooltip of the last known value")
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}
	_ = g
}
