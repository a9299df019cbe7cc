package gateway

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/gwtest"
)

// TestWebUIPagesTheFleet: with more devices than a page, the web UI asks
// for one page (limit) and offers the next (cursor), in headless Chromium.
func TestWebUIPagesTheFleet(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		t.Skip("no " + chromium + " (Debian package chromium)")
	}
	dir := t.TempDir()
	if err := gwtest.FillRegistrations(dir, 250, 100); err != nil {
		t.Fatal(err)
	}
	_, root := quietGateway(t, dir, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--no-first-run", "--user-data-dir="+t.TempDir(), "--virtual-time-budget=15000", "--dump-dom",
		root+"/ui/#live=0&limit=100&token="+testToken).Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	dom := string(out)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`id="status">250 devices registered<`),
		regexp.MustCompile(`id="fleet-page">page 1: 100 of 250<`),
		regexp.MustCompile(`<button id="fleet-next" onclick="fleetPage\(1\)">`), // enabled
		regexp.MustCompile(`<button id="fleet-prev" onclick="fleetPage\(-1\)" disabled="">`),
		regexp.MustCompile(`data-endpoint="light-00099"`),
	} {
		t.Run(want.String(), func(t *testing.T) {
			if !want.MatchString(dom) {
				t.Errorf("page lacks %s", want)
			}
		})
	}
	if n := strings.Count(dom, `<tr data-endpoint="light-`); n != 100 {
		t.Errorf("%d fleet rows, want 100", n)
	}
	if strings.Contains(dom, `data-endpoint="light-00100"`) {
		t.Error("the second page's first device is shown")
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}
}
