package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
)

const testToken = "t0ken"

func startGateway(t *testing.T) (*Gateway, string) {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.API.Listen, cfg.LwM2M.UDP, cfg.LwM2M.DTLS, cfg.API.Token = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", testToken
	cfg.Simulator.Fleet = config.Fleet{UDP: 1, Queue: 1, SMS: 1, DTLS: 1, Awake: 3 * time.Second}
	cfg.Simulator.Latency, cfg.Simulator.SendTime = 20*time.Millisecond, 10*time.Millisecond
	g := runGateway(t, cfg)
	return g, g.Info().API
}

type apiClient struct {
	t    *testing.T
	base string
}

func (a apiClient) do(method, path, body string) (int, map[string]any) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		a.t.Fatalf("%s %s: HTTP %d, body not JSON: %v", method, path, resp.StatusCode, err)
	}
	return resp.StatusCode, v
}

func waitFleet(t *testing.T, a apiClient, n int) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		code, v := a.do("GET", "/devices", "")
		if code == 200 && v["count"] == float64(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("fleet: %d %v", code, v)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestGatewayAPI runs the daemon in-process (under -race in CI) and drives
// every API route once.
func TestGatewayAPI(t *testing.T) {
	g, api := startGateway(t)
	a := apiClient{t, api}
	waitFleet(t, a, 4)

	// Server-sent events: subscribe before acting.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", api+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("events: %v %v", err, resp)
	}
	defer resp.Body.Close()
	events := make(chan string, 256)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			select {
			case events <- sc.Text():
			default:
			}
		}
	}()

	// Filters.
	if _, v := a.do("GET", "/devices?transport=sms", ""); v["count"] != float64(1) {
		t.Fatalf("sms filter: %v", v)
	}
	if _, v := a.do("GET", "/devices?queue=true", ""); v["count"] != float64(1) {
		t.Fatalf("queue filter: %v", v)
	}
	if code, _ := a.do("GET", "/devices?binding=X", ""); code != 400 {
		t.Fatalf("bad binding filter: %d", code)
	}
	if code, v := a.do("GET", "/devices/light-dtls-1/data/3/0/2", ""); code != 200 || !strings.Contains(toJSON(v), `"value":"light-dtls-1"`) {
		t.Fatalf("read over DTLS: %d %v", code, v)
	}
	if code, v := a.do("GET", "/devices/light-dtls-1", ""); code != 200 || v["transport"] != "dtls" {
		t.Fatalf("dtls device: %d %v", code, v)
	}
	if code, v := a.do("GET", "/devices/light-sms-1", ""); code != 200 || v["transport"] != "sms" || v["address"] != "+491720000002" {
		t.Fatalf("device: %d %v", code, v)
	}

	// Observe the dimmer of the UDP light, change it, get the notification.
	if code, v := a.do("POST", "/devices/light-udp-1/observe/3311/0/5851", ""); code != 200 {
		t.Fatalf("observe: %d %v", code, v)
	}
	if code, v := a.do("PUT", "/devices/light-udp-1/data/3311/0/5851", `{"value": 33}`); code != 200 {
		t.Fatalf("write: %d %v", code, v)
	}
	deadline := time.After(30 * time.Second)
	for notified := false; !notified; {
		select {
		case l := <-events:
			notified = strings.HasPrefix(l, "data:") && strings.Contains(l, `"path":"/3311/0/5851"`) && strings.Contains(l, `"value":33`)
		case <-deadline:
			t.Fatal("no notification event")
		}
	}
	if code, _ := a.do("DELETE", "/devices/light-udp-1/observe/3311/0/5851", ""); code != 200 {
		t.Fatalf("cancel observe: %d", code)
	}

	// Partial write on an instance, create and delete refused by the
	// client's object (3311 instance 0 exists), execute.
	if code, v := a.do("POST", "/devices/light-udp-1/data/3311/0", `{"values": {"5850": false, "5851": 10}}`); code != 200 {
		t.Fatalf("partial write: %d %v", code, v)
	}
	if code, v := a.do("GET", "/devices/light-udp-1/data/3311/0/5850", ""); code != 200 || !strings.Contains(toJSON(v), `"value":false`) {
		t.Fatalf("read back: %d %v", code, v)
	}
	if code, v := a.do("POST", "/devices/light-udp-1/create/3311", `{"instance": 1, "values": {"5850": true}}`); code != 200 || v["location"] != "/3311/1" {
		t.Fatalf("create: %d %v", code, v)
	}
	if code, v := a.do("DELETE", "/devices/light-udp-1/data/3311/1", ""); code != 200 {
		t.Fatalf("delete: %d %v", code, v)
	}
	if code, _ := a.do("DELETE", "/devices/light-udp-1/data/3311/0/5850", ""); code != 400 {
		t.Fatalf("delete of a resource: %d", code)
	}
	if code, _ := a.do("GET", "/devices/light-udp-1/data/3/0/4", ""); code != 405 {
		t.Fatalf("read of an executable: %d", code)
	}

	// Queue mode: wait until the light sleeps, queue a read without
	// waiting (202 + job), then wait on the job.
	for asleep := time.Now().Add(40 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, d := a.do("GET", "/devices/light-queue-1", ""); d["awake"] == false {
			break
		}
		if time.Now().After(asleep) {
			t.Fatal("queue-mode light never asleep")
		}
	}
	code, v := a.do("GET", "/devices/light-queue-1/data/3311/0", "")
	job, _ := v["job"].(map[string]any)
	if code != 202 || job == nil {
		t.Fatalf("queued read: %d %v", code, v)
	}
	id := int(job["id"].(float64))
	code, v = a.do("GET", "/jobs/"+itoa(id)+"?wait=40s", "")
	if code != 200 || v["state"] != "done" || !strings.Contains(toJSON(v), "/3311/0/5851") {
		t.Fatalf("job: %d %v", code, v)
	}
	if code, _ := a.do("GET", "/jobs/999999", ""); code != 404 {
		t.Fatalf("unknown job: %d", code)
	}
	if code, _ := a.do("DELETE", "/jobs/999999", ""); code != 404 {
		t.Fatalf("cancel unknown job: %d", code)
	}
	if code, v := a.do("GET", "/jobs", ""); code != 200 || v["jobs"] == nil {
		t.Fatalf("jobs: %d %v", code, v)
	}

	// Modems and SMS statistics.
	code, v = a.do("GET", "/modems", "")
	mods, _ := v["modems"].([]any)
	if code != 200 || len(mods) != 2 || !strings.Contains(toJSON(v), `"pty":"/dev/pts/`) || !strings.Contains(toJSON(v), `"ready":true`) {
		t.Fatalf("modems: %d %v", code, v)
	}
	code, v = a.do("GET", "/sms", "")
	if code != 200 || v["enabled"] != true {
		t.Fatalf("sms: %d %v", code, v)
	}
	if g.Info().PTYs["+491710000001"] == "" {
		t.Fatal("no pty in Info")
	}

	// Metrics: every advertised family is there.
	mresp, err := http.Get(strings.TrimSuffix(api, "/api/v1") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, want := range []string{
		`smsgw_dtls_handshakes_total{result="ok"} 1`,
		`smsgw_api_request_seconds_count{code="2xx",route="/api/v1/devices"}`,
		`smsgw_registration_events_total{event="registered"} 4`,
		`smsgw_sms_total{what="reassembly_expired"} 0`,
		`smsgw_sms_total{what="segments_received"}`,
		`smsgw_sms_state{what="outbox_entries"}`,
		`smsgw_modem_sms_total{modem="+491710000001",what="sent"}`,
		`smsgw_modem_state{modem="+491710000001",what="ready"} 1`,
		`smsgw_queue{gauge="depth"} 0`,
		`smsgw_sms_wakeups_total 1`,
		`smsgw_coap_events_total{event=`,
		`smsgw_lwm2m_operation_seconds_count{op="read",outcome="ok"}`,
		`smsgw_modem_commands_total{`,
	} {
		t.Run(want, func(t *testing.T) {
			if !strings.Contains(string(body), want) {
				t.Errorf("metrics lack %s", want)
			}
		})
	}

	// The event stream takes the token as access_token for browsers.
	sreq, _ := http.NewRequestWithContext(ctx, "GET", api+"/events?access_token="+testToken, nil)
	sresp, err := http.DefaultClient.Do(sreq)
	if err != nil || sresp.StatusCode != 200 {
		t.Fatalf("events with access_token: %v %v", err, sresp)
	}
	sresp.Body.Close()
	sreq, _ = http.NewRequestWithContext(ctx, "GET", api+"/devices?access_token="+testToken, nil)
	if sresp, err = http.DefaultClient.Do(sreq); err != nil || sresp.StatusCode != 401 {
		t.Fatalf("access_token outside the event stream: %v %v", err, sresp)
	}
	sresp.Body.Close()
}

func TestOpenAPIDocument(t *testing.T) {
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}
	for _, p := range []string{"/api/v1/devices", "/api/v1/devices/{ep}/data/{path}", "/api/v1/jobs/{id}", "/api/v1/modems", "/api/v1/events", "/metrics",
		"/api/v1/firmware", "/api/v1/firmware/{id}", "/api/v1/devices/{ep}/firmware", "/api/v1/firmware-jobs/{id}",
		"/api/v1/campaigns", "/api/v1/campaigns/{id}", "/api/v1/campaigns/{id}/{action}", "/fw/{id}",
		"/api/v1/sms/quarantine", "/api/v1/sms/quarantine/{id}"} {
		t.Run(p, func(t *testing.T) {
			if doc.Paths[p] == nil {
				t.Errorf("openapi.json lacks %s", p)
			}
		})
	}
}

func TestParseWait(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{{"", 0, true}, {"30s", 30 * time.Second, true}, {"5", 5 * time.Second, true}, {"-1s", 0, false}, {"1h", 0, false}, {"soon", 0, false}} {
		t.Run(c.in, func(t *testing.T) {
			d, err := parseWait(c.in, 0)
			if (err == nil) != c.ok || (c.ok && d != c.want) {
				t.Errorf("parseWait(%q) = %v, %v", c.in, d, err)
			}
		})
	}
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}
