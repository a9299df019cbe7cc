package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
)

// upload posts a raw image body and returns the status and answer.
func (a apiClient) upload(q string, body []byte) (int, map[string]any) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", a.base+"/firmware?"+q, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		a.t.Fatalf("upload: HTTP %d, not JSON: %v", resp.StatusCode, err)
	}
	return resp.StatusCode, v
}

func waitFWJob(a apiClient, id string) map[string]any {
	a.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, v := a.do("GET", "/firmware-jobs/"+id, "")
		if v["state"] != "running" {
			return v
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("update did not finish: %v", v)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

// TestFirmwareAPI uploads images over the API, updates a UDP light (pull
// over CoAP Block2) confirmed by /3/0/3, plans an SMS-only light (refused
// without allow_sms_push, costed with it), and runs a campaign over the UDP
// lights with a corrupt package that each device refuses with Update
// Result 5.
func TestFirmwareAPI(t *testing.T) {
	g, base := startGateway(t)
	a := apiClient{t, base}
	waitFleet(t, a, 4)

	pkg, err := firmware.BuildPackage("2.0.0", bytes.Repeat([]byte("streetlight firmware "), 200))
	if err != nil {
		t.Fatal(err)
	}
	// Wrong checksum: 400 with a clear message, nothing stored.
	if code, v := a.upload("version=2.0.0&sha256="+strings.Repeat("0", 64), pkg); code != 400 || !strings.Contains(fmt.Sprint(v["error"]), "checksum mismatch") {
		t.Fatalf("bad checksum: %d %v", code, v)
	}
	if code, v := a.upload("version=2.0.0", pkg); code != 400 || !strings.Contains(fmt.Sprint(v["error"]), "sha256 is required") {
		t.Fatalf("no checksum: %d %v", code, v)
	}
	code, img := a.upload("name=main&version=2.0.0&sha256="+sum(pkg), pkg)
	if code != 201 {
		t.Fatalf("upload: %d %v", code, img)
	}
	id := img["id"].(string)
	if code, v := a.do("GET", "/firmware", ""); code != 200 || v["count"] != float64(1) {
		t.Fatalf("list: %d %v", code, v)
	}
	// The HTTP Package URI server serves the same bytes, without a token.
	resp, err := http.Get(strings.TrimSuffix(base, "/api/v1") + "/fw/" + id)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, pkg) {
		t.Fatalf("http package: %d bytes, want %d", len(got), len(pkg))
	}
	if code, v := a.do("POST", "/devices/light-udp-1/firmware", `{"image":"nope"}`); code != 404 {
		t.Fatalf("unknown image: %d %v", code, v)
	}

	// One UDP light: dry run, then the update, polled until done.
	code, v := a.do("POST", "/devices/light-udp-1/firmware", `{"image":"`+id+`","dry_run":true}`)
	if code != 200 || v["plan"].(map[string]any)["method"] != "pull" {
		t.Fatalf("dry run: %d %v", code, v)
	}
	code, v = a.do("POST", "/devices/light-udp-1/firmware", `{"image":"`+id+`"}`)
	if code != 202 {
		t.Fatalf("update: %d %v", code, v)
	}
	v = waitFWJob(a, v["id"].(string))
	if v["state"] != "done" || v["version"] != "2.0.0" {
		t.Fatalf("update: %v", v)
	}
	if code, r := a.do("GET", "/devices/light-udp-1/data/3/0/3", ""); code != 200 || !strings.Contains(fmt.Sprint(r), "2.0.0") {
		t.Fatalf("/3/0/3 after update: %d %v", code, r)
	}
	if n := g.fleet.Lights[0].FirmwareApplied(); n != 1 {
		t.Fatalf("light-udp-1 applied %d updates, want 1", n)
	}

	// The DTLS light takes a push (block-wise Write of /5/0/0 over DTLS).
	code, v = a.do("POST", "/devices/light-dtls-1/firmware", `{"image":"`+id+`"}`)
	if code != 202 || v["plan"].(map[string]any)["method"] != "push" {
		t.Fatalf("dtls update: %d %v", code, v)
	}
	if j := waitFWJob(a, v["id"].(string)); j["state"] != "done" || j["version"] != "2.0.0" {
		t.Fatalf("dtls update: %v", j)
	}

	// Multipart upload, with a wrong checksum then the right one.
	mp := func(sha string) (int, map[string]any) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		mw.WriteField("version", "2.0.9")
		mw.WriteField("sha256", sha)
		fw, _ := mw.CreateFormFile("file", "sl.bin")
		fw.Write([]byte("multipart image"))
		mw.Close()
		req, _ := http.NewRequest("POST", base+"/firmware", &buf)
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v
	}
	if code, v := mp(sum([]byte("other"))); code != 400 || !strings.Contains(fmt.Sprint(v["error"]), "checksum mismatch") {
		t.Fatalf("multipart bad checksum: %d %v", code, v)
	}
	code, v = mp(sum([]byte("multipart image")))
	if code != 201 || v["version"] != "2.0.9" || v["size"] != float64(15) {
		t.Fatalf("multipart: %d %v", code, v)
	}
	if code, v := a.do("DELETE", "/firmware/"+v["id"].(string), ""); code != 200 {
		t.Fatalf("delete: %d %v", code, v)
	}

	// SMS-only light: refused without allow_sms_push, costed with it.
	if code, v := a.do("POST", "/devices/light-sms-1/firmware", `{"image":"`+id+`","dry_run":true,"allow_sms_push":false}`); code != 422 {
		t.Fatalf("sms without allow: %d %v", code, v)
	}
	code, v = a.do("POST", "/devices/light-sms-1/firmware", `{"image":"`+id+`","dry_run":true,"allow_sms_push":true}`)
	if code != 200 {
		t.Fatalf("sms dry run: %d %v", code, v)
	}
	if p := v["plan"].(map[string]any); p["method"] != "push" || p["sms"].(float64) < 2 {
		t.Fatalf("sms plan: %v", p)
	}

	// A corrupt package (payload does not match its inner checksum): the
	// light reports Update Result 5 and the campaign says so.
	bad := bytes.Clone(pkg)
	bad[len(bad)-1] ^= 0xff
	code, img = a.upload("name=corrupt&version=3.0.0&sha256="+sum(bad), bad)
	if code != 201 {
		t.Fatalf("upload corrupt: %d %v", code, img)
	}
	if code, v := a.do("POST", "/campaigns", `{"image":"`+img["id"].(string)+`"}`); code != 400 {
		t.Fatalf("campaign without target: %d %v", code, v)
	}
	if code, v := a.do("POST", "/campaigns", `{"image":"`+img["id"].(string)+`","filter":{"colour":"red"}}`); code != 400 {
		t.Fatalf("campaign bad filter: %d %v", code, v)
	}
	code, v = a.do("POST", "/campaigns", `{"image":"`+img["id"].(string)+`","prefix":"light-udp-","retries":0}`)
	if code != 201 {
		t.Fatalf("campaign: %d %v", code, v)
	}
	cid := v["id"].(string)
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, v = a.do("GET", "/campaigns/"+cid+"?devices=1", "")
		c := v["campaign"].(map[string]any)
		if c["status"] == firmware.CampaignDone {
			devs := c["devices"].([]any)
			if len(devs) != 1 || v["failed"] != float64(1) {
				t.Fatalf("campaign report: %v", v)
			}
			d := devs[0].(map[string]any)
			if d["state"] != firmware.DevFailed || d["result"] != float64(firmware.ResultIntegrity) {
				t.Fatalf("device: %v", d)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("campaign did not finish: %v", v)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, v := a.do("POST", "/campaigns/"+cid+"/pause", ""); code != 409 {
		t.Fatalf("pause a finished campaign: %d %v", code, v)
	}
	if code, v := a.do("GET", "/campaigns/nope", ""); code != 404 {
		t.Fatalf("unknown campaign: %d %v", code, v)
	}
	// Metrics.
	resp, err = http.Get(strings.TrimSuffix(base, "/api/v1") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`smsgw_firmware_campaigns{state="done"} 1`, `smsgw_firmware_devices_total{outcome="failed"} 1`,
		fmt.Sprintf(`smsgw_firmware_served_bytes_total{server="coap+udp"} %d`+"\n", 2*len(pkg)), `smsgw_firmware_store{gauge="images"} 2`, `smsgw_firmware_served_bytes_total{server="http"}`} {
		t.Run(want, func(t *testing.T) {
			if !strings.Contains(string(m), want) {
				t.Errorf("metrics lack %s", want)
			}
		})
	}
}

// TestFirmwareWebUI renders the firmware page in headless Chromium after a
// campaign with a corrupt image: the image list, the campaign with its
// progress bar and failure count, and each device's state and Update Result.
func TestFirmwareWebUI(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		t.Skip("no " + chromium + " (Debian package chromium)")
	}
	_, base := startGateway(t)
	a := apiClient{t, base}
	waitFleet(t, a, 4)
	pkg, _ := firmware.BuildPackage("2.5.0", bytes.Repeat([]byte("x"), 3000))
	pkg[len(pkg)-1] ^= 1 // corrupt: each light reports Update Result 5
	code, img := a.upload("name=ui-image&version=2.5.0&sha256="+sum(pkg), pkg)
	if code != 201 {
		t.Fatalf("upload: %d %v", code, img)
	}
	code, c := a.do("POST", "/campaigns", `{"name":"ui-test","image":"`+img["id"].(string)+`","endpoints":["light-udp-1"]}`)
	if code != 201 {
		t.Fatalf("campaign: %d %v", code, c)
	}
	cid := c["id"].(string)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, v := a.do("GET", "/campaigns/"+cid, ""); v["campaign"].(map[string]any)["status"] == firmware.CampaignDone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("campaign not done")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--no-first-run", "--user-data-dir="+t.TempDir(), "--virtual-time-budget=15000", "--dump-dom",
		strings.TrimSuffix(base, "/api/v1")+"/ui/#token="+testToken+"&campaign="+cid).Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	dom := string(out)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`<body data-ready="1"`),
		regexp.MustCompile(`data-image="` + img["id"].(string) + `">.*?<td>ui-image</td><td>2\.5\.0</td>`),
		regexp.MustCompile(`data-campaign="` + cid + `" class="sel">.*?<td>ui-test</td><td>2\.5\.0</td><td class="campaign-done">done</td><td><progress max="1" value="1"></progress> 1/1 \(100%\)</td>` +
			`.*?<td class="count count-done">0</td>.*?<td class="count count-failed err">1</td>`),
		regexp.MustCompile(`id="campaign-name">` + cid + ` → 2\.5\.0: done, 1 failed<`),
		regexp.MustCompile(`<tr data-endpoint="light-udp-1"[^>]*><td>light-udp-1</td><td class="dev-failed">failed</td>.*?<td>5</td><td class="reason"></td><td class="err">[^<]*integrity`),
	} {
		t.Run(want.String(), func(t *testing.T) {
			if !want.MatchString(dom) {
				t.Errorf("page lacks %s", want)
			}
		})
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}
}
