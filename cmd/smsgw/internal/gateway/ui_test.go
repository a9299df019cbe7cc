package gateway

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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

	// The plain URL, live updates on, the way an operator would script
	// it: the page's load event waits for its first render (holdLoad),
	// and its event stream is no fetch of the page (events-worker.js),
	// so headless Chromium needs no "#live=0" and no flag to wait.
	url := base + "/ui/#token=" + testToken + "&device=light-udp-1"
	headless := func(t *testing.T, args ...string) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		args = append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
			"--no-first-run", "--hide-scrollbars", "--window-size=1280,1400", "--user-data-dir=" + t.TempDir()}, args...)
		start := time.Now()
		out, err := exec.CommandContext(ctx, chromium, append(args, url)...).Output()
		if err != nil {
			t.Fatalf("chromium %v: %v (after %v)", args, err, time.Since(start).Round(time.Millisecond))
		}
		t.Logf("chromium %s: %v", args[len(args)-1], time.Since(start).Round(time.Millisecond))
		return out
	}
	checkDOM := func(t *testing.T, dom string) {
		t.Helper()
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
			t.Run(want.String(), func(t *testing.T) {
				if !want.MatchString(dom) {
					t.Errorf("page lacks %s", want)
				}
			})
		}
		// A cell the page's read filled says nothing of a "last known"
		// value (the tooltip of the last values, which may arrive first).
		if regexp.MustCompile(`id="v-3311-0-5851"[^>]*title="last known`).MatchString(dom) {
			t.Error("the read value of /3311/0/5851 keeps the tooltip of the last known value")
		}
		if t.Failed() {
			t.Logf("DOM:\n%s", dom)
		}
	}
	t.Run("dom-at-load", func(t *testing.T) {
		// --dump-dom without --virtual-time-budget serialises the page
		// at its load event.
		checkDOM(t, string(headless(t, "--dump-dom")))
	})
	t.Run("virtual-time-budget", func(t *testing.T) {
		// It used to run until killed: the page's event stream was a
		// fetch that never ended, and virtual time stops while one is
		// pending. The budget is 15 s of virtual time, seconds of real one.
		checkDOM(t, string(headless(t, "--virtual-time-budget=15000", "--dump-dom")))
	})
	t.Run("screenshot", func(t *testing.T) {
		file := filepath.Join(t.ArtifactDir(), "ui-light-udp-1.png")
		headless(t, "--screenshot="+file)
		png, err := os.ReadFile(file)
		if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
			t.Fatalf("screenshot %s: %v", file, err)
		}
		t.Logf("screenshot %s (%d bytes)", file, len(png))
	})
	_ = g
}
