package gateway

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
	"github.com/m2mbearer/m2mbearer/lwm2m/client"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

// TestWebUIDeviceManagement drives the web UI in headless Chromium (over
// the DevTools protocol, so buttons are clicked and forms filled through
// the page's own handlers, with the live event stream on) against our
// LwM2M 1.1 client "tdev" (with Wakaama's test object 31024, outside the
// model) and a queue-mode client "qdev": each device management view is
// used, its rendered content checked against what the device holds, and a
// screenshot of it written to the subtest's artifact directory
// (go test -artifacts -outputdir DIR keeps them).
func TestWebUIDeviceManagement(t *testing.T) {
	b := startBrowser(t)
	parent := t
	g, a, tc := startDMGateway(t, t.TempDir(), "", func(c *config.Config) { c.Queue.AwakeWindow = 2 * time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	qc := startTestClient(ctx, t, g, "qdev", client.WithQueueMode())
	base := strings.TrimSuffix(g.Info().API, "/api/v1")
	b.open(base + "/ui/#token=" + testToken + "&device=tdev")
	b.waitText("#device-name", "tdev", 10*time.Second)

	// Each step is a subtest that depends on the ones before it (the same
	// page): stop at the first failure.
	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"discover", func(t *testing.T) {
			b.do(`const f = document.querySelector("#dm-discover form"); f.elements.path.value = "/3/0"; f.querySelector("button").click();`)
			row := b.waitText(`#dm-discover-links tr[data-path="/3/0/4"]`, "Reboot", 20*time.Second)
			if !strings.Contains(row, "E") {
				t.Errorf("Reboot row %q lacks its operation E", row)
			}
			b.waitText(`#dm-discover-links tr[data-path="/3/0/0"]`, "Manufacturer", time.Second)
			b.waitText("#dm-discover-result", "discover /3/0: 2.05", time.Second)
			// An object outside the model: its resources, no names.
			b.do(`const f = document.querySelector("#dm-discover form"); f.elements.path.value = "/31024"; f.querySelector("button").click();`)
			b.waitText(`#dm-discover-links tr[data-path="/31024/10/2"]`, "/31024/10/2", 20*time.Second)
			b.screenshot(t, "discover", "#dm-discover")
		}},
		{"write-attributes", func(t *testing.T) {
			// Not a number: refused in the page, nothing sent.
			b.do(`const f = document.querySelector("#dm-attributes form"); f.elements.path.value = "/31024/10/1"; f.elements.pmin.value = "abc"; f.querySelector("button").click();`)
			b.waitText(`#dm-attributes-result[data-state="error"]`, `pmin: "abc" is not a number`, 5*time.Second)
			// pmin > pmax: the API refuses it, the error shows.
			b.do(`const f = document.querySelector("#dm-attributes form"); f.elements.pmin.value = "60"; f.elements.pmax.value = "5"; f.querySelector("button").click();`)
			if txt := b.waitText(`#dm-attributes-result[data-state="error"]`, "write-attributes /31024/10/1 pmin=60 pmax=5", 20*time.Second); !strings.Contains(txt, "pmax") {
				t.Errorf("pmin > pmax: %q", txt)
			}
			if v, _ := b.eval(`document.getElementById("dm-attributes-result").classList.contains("err")`); v != true {
				t.Error("refused attributes not shown as an error")
			}
			// Set three, then the Discover of the same path shows them.
			b.do(`const f = document.querySelector("#dm-attributes form"); f.elements.pmin.value = "5"; f.elements.pmax.value = "60"; f.elements.gt.value = "50"; f.querySelector("button").click();`)
			b.waitText("#dm-attributes-result", "write-attributes /31024/10/1 pmin=5 pmax=60 gt=50: 2.04", 20*time.Second)
			b.waitExact(`#dm-discover-links tr[data-path="/31024/10/1"] .attrs`, "gt=50 pmax=60 pmin=5", 20*time.Second)
			b.screenshot(t, "write-attributes-set", "#dm")
			// The Discover row's button fills the form; remove gt.
			b.do(`document.querySelector('#dm-discover-links tr[data-path="/31024/10/1"] button').click();
				const f = document.querySelector("#dm-attributes form"); f.elements.gt.value = ""; f.elements.unset.value = "gt"; f.querySelector("button").click();`)
			b.waitText("#dm-attributes-result", "-gt: 2.04", 20*time.Second)
			b.waitExact(`#dm-discover-links tr[data-path="/31024/10/1"] .attrs`, "pmax=60 pmin=5", 20*time.Second)
			b.screenshot(t, "write-attributes-unset", "#dm")
		}},
		{"read-composite", func(t *testing.T) {
			b.do(`const f = document.querySelector("#dm-read-composite form"); f.elements.paths.value = "/3/0/0, /31024/10/5 /31024/10/1"; f.querySelector("button").click();`)
			b.waitText(`#dm-read-composite-values tr[data-path="/3/0/0"]`, "Manufacturerm2mbearer", 20*time.Second)
			b.waitText(`#dm-read-composite-values tr[data-path="/31024/10/5"]`, "hello", time.Second)
			b.waitExact(`#dm-read-composite-values tr[data-path="/31024/10/1"] .val`, "1", time.Second)
			b.waitText("#dm-read-composite-result", "read-composite /3/0/0 /31024/10/5 /31024/10/1: 2.05", time.Second)
			b.screenshot(t, "read-composite", "#dm-read-composite")
		}},
		{"write-composite", func(t *testing.T) {
			b.do(`const f = document.querySelector("#dm-write-composite form");
				const rows = () => f.querySelectorAll("tbody tr");
				let r = rows()[0];
				r.querySelector("[name=path]").value = "/31024/10/1"; r.querySelector("[name=value]").value = "9"; r.querySelector("[name=type]").value = "Integer";
				[...f.querySelectorAll("button")].find(x => x.textContent === "+ resource").click();
				r = rows()[1];
				r.querySelector("[name=path]").value = "/31024/10/5"; r.querySelector("[name=value]").value = "from the UI"; r.querySelector("[name=type]").value = "String";
				[...f.querySelectorAll("button")].find(x => x.textContent === "Write").click();`)
			b.waitText("#dm-write-composite-result", "write-composite /31024/10/1=9 /31024/10/5=from the UI: 2.04", 20*time.Second)
			// The device holds it, and the last known values say it was written.
			if v, ok := tc.Get(path.Resource(31024, 10, 1)); !ok || v.Int() != 9 {
				t.Errorf("device holds %v", v)
			}
			row := b.waitText(`#lastvalues tr[data-path="/31024/10/5"]`, "from the UI", 10*time.Second)
			if !strings.Contains(row, "written (composite)") {
				t.Errorf("last value row %q does not say it was written", row)
			}
			b.waitText(`#lastvalues tr[data-path="/31024/10/1"]`, "9Integerwritten (composite)", time.Second)
			b.screenshot(t, "write-composite", "#device-section")
		}},
		{"observe-composite", func(t *testing.T) {
			b.do(`const f = document.querySelector("#dm-observe-composite form"); f.elements.paths.value = "/31024/10/1 /3/0/9"; f.querySelector("button").click();`)
			row := `#dm-observations tr[data-paths="/31024/10/1,/3/0/9"]`
			b.waitText(row, "/31024/10/1=9", 20*time.Second)
			// A change on the device arrives as a notification on the
			// event stream and updates the row.
			if err := tc.Set(path.Resource(31024, 10, 1), content.NewInt(11)); err != nil {
				t.Fatal(err)
			}
			b.waitText(row, "/31024/10/1=11", 20*time.Second)
			if n := b.waitText(row+" .count", "", time.Second); n == "0" {
				t.Errorf("notification count %q", n)
			}
			b.screenshot(t, "observe-composite", "#dm-observe-composite")
			// Cancel from the row: gone from the page and from the server.
			b.do(`document.querySelector('#dm-observations tr[data-paths="/31024/10/1,/3/0/9"] button').click();`)
			b.waitText("#dm-observations tbody", "no composite observation from this page", 20*time.Second)
			b.waitText("#dm-observe-composite-result", "cancel observe-composite /31024/10/1 /3/0/9: 2.05", time.Second)
			if code, v := a.do("DELETE", "/devices/tdev/composite/observe", `{"paths": ["/31024/10/1", "/3/0/9"]}`); code != 404 {
				t.Errorf("observation still on the server: %d %v", code, v)
			}
			b.screenshot(t, "observe-composite-cancelled", "#dm-observe-composite")
		}},
		{"last-values-sleeping", func(t *testing.T) {
			// While qdev is awake: a queued typed read and a queued write.
			if err := qc.Update(ctx, false); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct{ method, path, body string }{
				{"GET", "/devices/qdev/data/3/0?wait=30s", ""},
				{"GET", "/devices/qdev/data/31024/10/1?type=Integer&wait=30s", ""},
				{"PUT", "/devices/qdev/data/31024/10/5?wait=30s", `{"value": "queued write", "type": "String"}`},
			} {
				ok := t.Run(c.method+" "+c.path, func(t *testing.T) {
					a := apiClient{t, a.base}
					if code, v := a.do(c.method, c.path, c.body); code != 200 {
						t.Fatalf("%s %s: %d %v", c.method, c.path, code, v)
					}
				})
				if !ok {
					t.FailNow() // the page below shows what these requests did
				}
			}
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				if _, d := a.do("GET", "/devices/qdev", ""); d["awake"] == false {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("qdev never asleep")
				}
			}
			b.open(base + "/ui/#token=" + testToken + "&device=qdev")
			b.waitText("#device-info", "sleeping", 10*time.Second)
			b.waitText(`#lastvalues tr[data-path="/31024/10/5"]`, "queued writeStringwritten", 10*time.Second)
			b.waitText(`#lastvalues tr[data-path="/31024/10/1"]`, "1Integerqueued read", time.Second)
			age := b.waitText(`#lastvalues tr[data-path="/3/0/0"] .age`, "ago", time.Second)
			if !regexp.MustCompile(`^\d+ s ago$`).MatchString(age) {
				t.Errorf("age %q", age)
			}
			// The object tree of the sleeping device shows the same values,
			// with their source and age.
			cell := b.waitText("#v-3-0-0", "m2mbearer", time.Second)
			if !regexp.MustCompile(`^m2mbearer \(queued read, \d+ s ago\)$`).MatchString(cell) {
				t.Errorf("tree cell %q", cell)
			}
			b.waitText("#lastvalues-count", "resources", time.Second)
			b.waitText("#obj-31024-10 .nomodel", "object 31024 is not in the object model", time.Second)
			b.screenshot(t, "last-values-sleeping", "#device-section")
		}},
		{"read-at-next-wake-up", func(t *testing.T) {
			// The page says the device sleeps, what its values are, and
			// how a read reaches it (qdev has no SMS number).
			notice := b.waitText("#device-sleep", "Asleep", time.Second)
			for _, want := range []string{"last heard", "s ago", "the last the server saw", "Read at next wake-up",
				"queues a read of its 3 object instances", "cannot be woken by SMS"} {
				t.Run(want, func(t *testing.T) {
					if !strings.Contains(notice, want) {
						t.Errorf("notice %q lacks %q", notice, want)
					}
				})
			}
			if err := qc.Set(path.Resource(3, 0, 9), content.NewInt(77)); err != nil {
				t.Fatal(err)
			}
			b.do(`document.getElementById("read-next-wake").click();`)
			b.waitText("#device-sleep-result", "Queued 3 reads", 10*time.Second)
			b.waitText("#queue tbody", "read/3/0queued", 5*time.Second)
			if code, v := a.do("GET", "/jobs?endpoint=qdev", ""); code != 200 || v["count"] != float64(3) {
				t.Errorf("jobs of qdev: %d %v", code, v)
			}
			b.screenshot(t, "read-at-next-wake-up-queued", "#device-section")
			// The device wakes on its own: the reads go, and their values
			// reach the page (the "values" event) with their source.
			if err := qc.Update(ctx, false); err != nil {
				t.Fatal(err)
			}
			b.waitText(`#lastvalues tr[data-path="/3/0/9"]`, "77Integerqueued read", 20*time.Second)
			b.waitText("#v-3-0-9", "77 (queued read, ", 5*time.Second)
			b.waitText("#queue tbody", "no queued work", 10*time.Second)
			b.screenshot(t, "read-at-next-wake-up-answered", "#device-section")
		}},
	}
	for _, st := range steps {
		ok := t.Run(st.name, func(t *testing.T) {
			b.t = t // the helpers fail the subtest
			defer func() { b.t = parent }()
			st.run(t)
		})
		if !ok {
			break
		}
	}
	if errs := b.errors(); len(errs) > 0 {
		t.Errorf("the page reported errors:\n%s", strings.Join(errs, "\n"))
	}
}
