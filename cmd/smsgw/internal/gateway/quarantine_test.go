package gateway

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A stored SMS the modem driver cannot read reaches the quarantine before
// it leaves the (simulated) SIM; GET /api/v1/sms/quarantine lists it,
// /metrics counts it, DELETE removes it.
func TestQuarantineAPI(t *testing.T) {
	g, api := startGateway(t)
	a := apiClient{t, api}
	sm := g.simModems[0]
	if _, err := sm.StoreRaw("SM", 0, 22, "ZZ-not-hex", true); err != nil {
		t.Fatal(err)
	}
	var entries []any
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, v := a.do("GET", "/sms/quarantine", "")
		if code != 200 {
			t.Fatalf("GET /sms/quarantine: %d %v", code, v)
		}
		entries, _ = v["entries"].([]any)
		if len(entries) == 1 && sm.Stats().Stored == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("quarantine %v, modem holds %d", v, sm.Stats().Stored)
		}
		time.Sleep(50 * time.Millisecond)
	}
	e := entries[0].(map[string]any)
	lines, _ := e["lines"].([]any)
	if e["modem"] != sm.MSISDN() || e["storage"] != "SM" || len(lines) < 2 || lines[len(lines)-1] != "ZZ-not-hex" || e["reason"] == "" {
		t.Fatalf("entry %v", e)
	}
	if code, _ := a.do("GET", "/sms/quarantine?limit=0", ""); code != 400 {
		t.Fatalf("limit=0: %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", strings.TrimSuffix(api, "/api/v1")+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`smsgw_sms_quarantine{what="entries"} 1`, `smsgw_sms_quarantine{what="put"} 1`,
		`smsgw_modem_events_total{modem="` + sm.MSISDN() + `",type="quarantined"} 1`} {
		t.Run(want, func(t *testing.T) {
			if !strings.Contains(string(body), want) {
				t.Errorf("metrics lack %s", want)
			}
		})
	}
	id := itoa(int(e["id"].(float64)))
	if code, v := a.do("DELETE", "/sms/quarantine/"+id, ""); code != 200 {
		t.Fatalf("DELETE: %d %v", code, v)
	}
	if code, _ := a.do("DELETE", "/sms/quarantine/"+id, ""); code != 404 {
		t.Fatalf("second DELETE: %d", code)
	}
	if _, v := a.do("GET", "/sms/quarantine", ""); len(v["entries"].([]any)) != 0 {
		t.Fatalf("after DELETE: %v", v)
	}
}
