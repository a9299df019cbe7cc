package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
	"github.com/m2mbearer/m2mbearer/lwm2m/client"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

// testObject is Wakaama's test object 31024 (examples/client object_test.c:
// 1 Integer 0..255, 2 executable, 3 Float, 5 String), which is in no
// model the gateway ships.
func testObject() *model.Object {
	return &model.Object{ID: 31024, Name: "Test object", Version: "1.0", Multiple: true, Resources: []model.Resource{
		{ID: 1, Name: "test", Operations: model.RW, Type: model.Integer, Range: "0..255"},
		{ID: 2, Name: "exec", Operations: model.E},
		{ID: 3, Name: "dec", Operations: model.RW, Type: model.Float},
		{ID: 5, Name: "str", Operations: model.RW, Type: model.String},
	}}
}

// startDMGateway starts a gateway with one demo UDP light, the object
// models of dir, and a LwM2M 1.1 client "tdev" of our own with object
// 31024 registered over UDP; tweaks change the configuration first.
func startDMGateway(t *testing.T, dataDir, modelsDir string, tweaks ...func(*config.Config)) (*Gateway, apiClient, *client.Client) {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = dataDir
	cfg.API.Listen, cfg.LwM2M.UDP, cfg.LwM2M.DTLS, cfg.API.Token = "127.0.0.1:0", "127.0.0.1:0", "", testToken
	cfg.LwM2M.Models = modelsDir
	cfg.Simulator.Fleet = config.Fleet{UDP: 1, Awake: 3 * time.Second}
	cfg.Simulator.Latency, cfg.Simulator.SendTime = 20*time.Millisecond, 10*time.Millisecond
	for _, tw := range tweaks {
		tw(cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	g, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Shutdown(context.Background()) })
	c := startTestClient(ctx, t, g, "tdev")
	return g, apiClient{t, g.Info().API}, c
}

// startTestClient registers a LwM2M 1.1 client of our own named name with
// object 31024 (instance 10) to g over UDP; opts add to its options (e.g.
// client.WithQueueMode()).
func startTestClient(ctx context.Context, t *testing.T, g *Gateway, name string, opts ...client.Option) *client.Client {
	t.Helper()
	defs := model.DefaultRegistry()
	if err := defs.Put(testObject()); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(name, append([]client.Option{client.WithVersion("1.1"), client.WithModel(defs), client.WithLifetime(300)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.AddServer(client.Server{ShortID: 101, Lifetime: 300, Binding: "U"}))
	must(c.AddDevice(client.Device{Manufacturer: "m2mbearer", Model: name}))
	must(c.AddObject(31024, client.Handlers{}))
	must(c.Set(path.Resource(31024, 10, 1), content.NewInt(1)))
	must(c.Set(path.Resource(31024, 10, 3), content.NewFloat(0.5)))
	must(c.Set(path.Resource(31024, 10, 5), content.NewString("hello")))
	u, err := udp.Listen("udp", "127.0.0.1:0")
	must(err)
	ep, err := bearer.NewEndpoint(u, bearer.WithHandler(c))
	must(err)
	t.Cleanup(func() { c.Close(); ep.Close() })
	must(c.Start(ctx, ep, g.udpEP.LocalAddr()))
	return c
}

// TestDeviceManagementAPI: the routes the API lacked (issue 20 item 4):
// the model directory listed, writes and reads of a resource outside any
// model with an explicit type, Discover (executables included),
// Write-Attributes, Read-, Write- and Observe-Composite, Send events with
// their values, and the last known values.
func TestDeviceManagementAPI(t *testing.T) {
	models := t.TempDir()
	ddf, err := model.MarshalDDF(&model.Object{ID: 33001, Name: "Lamp Energy Meter", Version: "1.1", Multiple: true,
		Resources: []model.Resource{{ID: 1, Name: "Energy", Operations: model.R, Type: model.Float, Units: "Wh"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(models, "33001.xml"), ddf, 0o600); err != nil {
		t.Fatal(err)
	}
	g, a, c := startDMGateway(t, t.TempDir(), models)
	sse, ok := g.hub.subscribe()
	if !ok {
		t.Fatal("no event subscription")
	}
	defer g.hub.unsubscribe(sse)

	steps := []struct {
		name, method, path, body string
		code                     int
		want                     []string
	}{
		{"models listed", "GET", "/objects", "", 200, []string{`"id":33001,"multiple":true,"name":"Lamp Energy Meter","resources":1,"source":"33001.xml"`, `"id":3311`, `"source":"built-in"`}},
		{"model object", "GET", "/objects/33001", "", 200, []string{`"name":"Energy"`}},
		{"write outside the model needs a type", "PUT", "/devices/tdev/data/31024/10/1", `{"value": 42}`, 400, []string{"not in the object model; give its type"}},
		{"write outside the model with a type", "PUT", "/devices/tdev/data/31024/10/1", `{"value": 42, "type": "Integer"}`, 200, []string{`"code":"2.04"`}},
		{"type checked against the model", "PUT", "/devices/tdev/data/3/0/0", `{"value": "x", "type": "Integer"}`, 400, []string{"is String in the object model"}},
		{"read outside the model raw", "GET", "/devices/tdev/data/31024/10/1", "", 200, []string{`"path":"/31024/10/1"`}},
		{"read outside the model typed", "GET", "/devices/tdev/data/31024/10/1?type=Integer", "", 200, []string{`"path":"/31024/10/1","value":42`}},
		{"bad type", "GET", "/devices/tdev/data/31024/10/1?type=Number", "", 400, []string{`type \"Number\"`}},
		{"write instance with types", "POST", "/devices/tdev/data/31024/10", `{"values": {"3": 2.5, "5": "wakaama"}, "types": {"3": "Float", "5": "String"}}`, 200, nil},
		{"discover lists executables", "GET", "/devices/tdev/discover/3/0", "", 200, []string{`{"name":"Reboot","operations":"E","path":"/3/0/4"}`, `{"name":"Factory Reset","operations":"E","path":"/3/0/5"}`}},
		{"discover object outside the model", "GET", "/devices/tdev/discover/31024", "", 200, []string{`"path":"/31024/10/2"`, `"path":"/31024/10/5"`}},
		{"write attributes", "PUT", "/devices/tdev/attributes/31024/10/1", `{"set": {"pmin": 5, "pmax": 60, "gt": 50}}`, 200, nil},
		{"attributes show in discover", "GET", "/devices/tdev/discover/31024/10/1", "", 200, []string{`"gt":"50"`, `"pmax":"60"`, `"pmin":"5"`}},
		{"unset attribute", "PUT", "/devices/tdev/attributes/31024/10/1", `{"unset": ["gt"]}`, 200, nil},
		{"bad attribute", "PUT", "/devices/tdev/attributes/31024/10/1", `{"set": {"pmin": 60, "pmax": 5}}`, 400, nil},
		{"read composite", "POST", "/devices/tdev/composite/read", `{"paths": ["/3/0/0", "/31024/10/5"]}`, 200, []string{`"path":"/3/0/0","value":"m2mbearer"`, `"path":"/31024/10/5","value":"wakaama"`}},
		{"write composite", "POST", "/devices/tdev/composite/write", `{"values": {"/31024/10/1": 7, "/31024/10/5": "x"}, "types": {"/31024/10/1": "Integer", "/31024/10/5": "String"}}`, 200, []string{`"code":"2.04"`}},
		{"observe composite", "POST", "/devices/tdev/composite/observe", `{"paths": ["/31024/10/1", "/3/0/9"]}`, 200, []string{`"path":"/31024/10/1","value":7`}},
		{"cancel observe composite", "DELETE", "/devices/tdev/composite/observe", `{"paths": ["/31024/10/1", "/3/0/9"]}`, 200, nil},
		{"cancel it again", "DELETE", "/devices/tdev/composite/observe", `{"paths": ["/31024/10/1", "/3/0/9"]}`, 404, nil},
		{"composite without paths", "POST", "/devices/tdev/composite/read", `{}`, 400, nil},
		{"discover the root", "GET", "/devices/tdev/discover/", "", 400, nil},
		{"unknown device", "GET", "/devices/nobody/discover/3", "", 404, nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			code, v := a.do(st.method, st.path, st.body)
			got := toJSON(v)
			if code != st.code {
				t.Fatalf("%s %s: HTTP %d, want %d: %s", st.method, st.path, code, st.code, got)
			}
			for _, w := range st.want {
				if !strings.Contains(got, w) {
					t.Errorf("%s %s: %s lacks %s", st.method, st.path, got, w)
				}
			}
		})
	}
	// The device really holds what was written raw.
	if recs, err := g.srv.ReadValues(context.Background(), "tdev", path.Resource(31024, 10, 1)); err != nil || len(recs) != 1 {
		t.Fatalf("read back: %v %v", recs, err)
	}

	// Send: the event carries the values.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Set(path.Resource(31024, 10, 3), content.NewFloat(9.25)); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, path.Resource(31024, 10, 3), path.Resource(3, 0, 0)); err != nil {
		t.Fatal(err)
	}
	for sent := false; !sent; {
		select {
		case ev := <-sse:
			if ev.kind == "send" {
				if !strings.Contains(string(ev.data), `"path":"/31024/10/3","value":9.25`) || !strings.Contains(string(ev.data), `"endpoint":"tdev"`) {
					t.Fatalf("send event without its values: %s", ev.data)
				}
				sent = true
			}
		case <-ctx.Done():
			t.Fatal("no send event")
		}
	}

	// Last known values: from the reads, the composite ones and the Send.
	code, v := a.do("GET", "/devices/tdev/values", "")
	got := toJSON(v)
	for _, w := range []string{`{"path":"/31024/10/3","source":"send","text":"9.25","time":"`, `"type":"Float","value":9.25}`,
		`{"path":"/31024/10/5","source":"write-composite","text":"x"`, `{"path":"/3/0/0","source":"send"`} {
		t.Run(w, func(t *testing.T) {
			if code != 200 || !strings.Contains(got, w) {
				t.Errorf("values: %d %s lacks %s", code, got, w)
			}
		})
	}
}

// TestLastValuesSurviveRestart: the last known values are kept in a
// snapshot at shutdown and are there after a restart, for a device that
// has not said anything since.
func TestLastValuesSurviveRestart(t *testing.T) {
	data := t.TempDir()
	g, a, _ := startDMGateway(t, data, "")
	if code, v := a.do("GET", "/devices/tdev/data/3/0/0", ""); code != 200 {
		t.Fatalf("read: %d %v", code, v)
	}
	if err := g.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.DataDir = data
	cfg.API.Listen, cfg.LwM2M.UDP, cfg.LwM2M.DTLS, cfg.API.Token = "127.0.0.1:0", "127.0.0.1:0", "", testToken
	cfg.Simulator.Enabled = false
	g2, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Shutdown(context.Background())
	a2 := apiClient{t, g2.Info().API}
	code, v := a2.do("GET", "/devices/tdev/values", "")
	if got := toJSON(v); code != 200 || !strings.Contains(got, `{"path":"/3/0/0","source":"read","text":"m2mbearer"`) {
		t.Fatalf("values after restart: %d %s", code, got)
	}
}

func TestOpenAPIDocumentsDMRoutes(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/api/v1/devices/{ep}/discover/{path}", "/api/v1/devices/{ep}/attributes/{path}",
		"/api/v1/devices/{ep}/composite/read", "/api/v1/devices/{ep}/composite/write", "/api/v1/devices/{ep}/composite/observe",
		"/api/v1/devices/{ep}/values", "/api/v1/objects", "/api/v1/devices/{ep}/sms"} {
		t.Run(p, func(t *testing.T) {
			if doc.Paths[p] == nil {
				t.Errorf("openapi.json lacks %s", p)
			}
		})
	}
}

// TestCompositeUnsupportedByDevice: a device that acknowledges a FETCH
// or iPATCH with an empty ACK and never answers (Wakaama's lwm2mclient,
// which knows neither method) gets a 504 that says so when ?wait= ends,
// not the "did not answer" of a device that is gone.
func TestCompositeUnsupportedByDevice(t *testing.T) {
	g, a, _ := startDMGateway(t, t.TempDir(), "")
	release := make(chan struct{})
	mux := bearer.NewServeMux()
	mux.HandleFunc("/", func(w bearer.ResponseWriter, r *bearer.Request) {
		// Late handler: the endpoint sends the empty ACK; the response
		// comes only when the test ends.
		<-release
		w.WriteResponse(codes.MethodNotAllowed, nil)
	})
	u, err := udp.Listen("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := bearer.NewEndpoint(u, bearer.WithHandler(mux), bearer.WithLimits(bearer.Limits{SeparateAfter: 50 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(release); dev.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	reg := bearer.NewRequest(codes.POST, g.udpEP.LocalAddr(), "/rd?ep=nofetch&lwm2m=1.1&b=U")
	reg.SetOption(bearer.ContentFormatOption(message.AppLinkFormat))
	reg.Payload = []byte("</3/0>,</31024/10>")
	if resp, err := dev.Do(ctx, reg); err != nil || resp.Code != codes.Created {
		t.Fatalf("register: %v %v", resp, err)
	}
	tests := []struct{ name, path, body string }{
		{"read composite", "/composite/read", `{"paths": ["/3/0/0"]}`},
		{"write composite", "/composite/write", `{"values": {"/31024/10/1": 9}, "types": {"/31024/10/1": "Integer"}}`},
		{"observe composite", "/composite/observe", `{"paths": ["/3/0/0"]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, v := a.do("POST", "/devices/nofetch"+tc.path+"?wait=1s", tc.body)
			if msg, _ := v["error"].(string); code != 504 || !strings.Contains(msg, "acknowledged") || !strings.Contains(msg, "(empty ACK) but sent no response within 1s") {
				t.Fatalf("HTTP %d %v", code, v)
			}
		})
	}
}
