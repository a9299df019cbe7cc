package gateway

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// TestGatewayPolicy: the configuration becomes the server's bindings: an
// SMS device registers only over SMS from its number (unless nosec: true
// and lwm2m.nosec allows it), a PSK-bound name only with its PSK, and
// lwm2m.nosec decides for the other names.
func TestGatewayPolicy(t *testing.T) {
	cfg := config.Default()
	cfg.LwM2M.NoSec = config.NoSec{Names: []string{"lamp-udp-*", "lamp-1", "lamp-2", "lamp-3"}}
	g := &Gateway{cfg: cfg, log: slog.New(slog.DiscardHandler),
		psk: map[string]config.PSK{
			"pole-7":    {Identity: "pole-7", Key: "000102030405060708090a0b0c0d0e0f", Endpoint: "pole-7"},
			"meter-psk": {Identity: "meter-psk", Key: "000102030405060708090a0b0c0d0e0f", Endpoint: "meter-psk"},
		},
		devices: map[string]config.SMSDevice{
			"lamp-1":    {Endpoint: "lamp-1", MSISDN: "+491710000001"},
			"lamp-2":    {Endpoint: "lamp-2", MSISDN: "00491710000002"}, // any form ParseMSISDN takes
			"lamp-3":    {Endpoint: "lamp-3", MSISDN: "+491710000003", NoSec: true},
			"lamp-4":    {Endpoint: "lamp-4", MSISDN: "+491710000004", Security: config.SMSNoSec},
			"meter-psk": {Endpoint: "meter-psk", MSISDN: "+491710000005", Security: config.SMSPSK},
		}}
	opts, err := g.policyOptions()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(new(registry.Memory), opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	num := func(s string) net.Addr {
		a, err := sms.ParseMSISDN(s)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	udpPeer := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5683}
	tests := []struct {
		name, ep, transport string
		peer                net.Addr
		want                codes.Code
	}{
		{"own number", "lamp-1", "sms", num("+491710000001"), codes.Created},
		{"other number form", "lamp-2", "sms", num("+491710000002"), codes.Created},
		{"lamp-1 as lamp-2", "lamp-2", "sms", num("+491710000001"), codes.Forbidden},
		{"bound number as an unknown endpoint", "lamp-9", "sms", num("+491710000001"), codes.Forbidden},
		{"SMS device over UDP", "lamp-1", "udp", udpPeer, codes.Forbidden},
		{"SMS device with nosec: true over UDP", "lamp-3", "udp", udpPeer, codes.Created},
		{"PSK-bound name over UDP", "pole-7", "udp", udpPeer, codes.Forbidden},
		{"unbound name in lwm2m.nosec", "lamp-udp-4", "udp", udpPeer, codes.Created},
		{"unbound name outside lwm2m.nosec", "meter-1", "udp", udpPeer, codes.Forbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := &codeRecorder{}
			srv.Handler(tc.transport).ServeCoAP(w, bearer.NewRequest(codes.POST, tc.peer, "/rd?ep="+tc.ep+"&b=US"))
			if w.code != tc.want {
				t.Fatalf("code %v, want %v (%s)", w.code, tc.want, w.payload)
			}
		})
	}
	// sms.devices[].security (dtlssms.go): NoSec over SMS only where
	// lwm2m.nosec allows the name; a DTLS device only with its identity.
	psk := func(id string) bearer.Identity { return bearer.Identity{Mode: "psk", PSKIdentity: []byte(id)} }
	for _, tc := range []struct {
		name, ep, number string
		id               bearer.Identity
		want             codes.Code
	}{
		{name: "nosec SMS device outside lwm2m.nosec", ep: "lamp-4", number: "+491710000004", want: codes.Forbidden},
		{name: "psk SMS device in plain", ep: "meter-psk", number: "+491710000005", want: codes.Forbidden},
		{name: "psk SMS device over DTLS", ep: "meter-psk", number: "+491710000005", id: psk("meter-psk"), want: codes.Created},
		{name: "psk SMS device with another's PSK", ep: "meter-psk", number: "+491710000005", id: psk("pole-7"), want: codes.Forbidden},
		{name: "psk SMS device with an OSCORE identity", ep: "meter-psk", number: "+491710000005",
			id: bearer.Identity{Mode: "oscore", OSCOREID: []byte{1}}, want: codes.Forbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &codeRecorder{}
			r := bearer.NewRequest(codes.POST, num(tc.number), "/rd?ep="+tc.ep+"&b=S")
			r.Identity = tc.id
			srv.Handler("sms").ServeCoAP(w, r)
			if w.code != tc.want {
				t.Fatalf("code %v, want %v (%s)", w.code, tc.want, w.payload)
			}
		})
	}
}

type codeRecorder struct {
	code    codes.Code
	payload []byte
}

func (r *codeRecorder) SetOption(message.Option) {}
func (r *codeRecorder) AddOption(message.Option) {}
func (r *codeRecorder) WriteResponse(c codes.Code, p []byte) error {
	r.code, r.payload = c, p
	return nil
}
func (r *codeRecorder) Observe() (*bearer.Observer, error) { return nil, bearer.ErrNotObservable }

// TestMetricsAuth: with api.metrics_auth, /metrics needs the API token;
// /healthz and /openapi.json stay open.
func TestMetricsAuth(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.API.Listen, cfg.LwM2M.UDP, cfg.LwM2M.DTLS, cfg.API.Token = "127.0.0.1:0", "127.0.0.1:0", "", testToken
	cfg.API.MetricsAuth = true
	cfg.Simulator.Enabled = false
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Shutdown(context.Background())
	root := strings.TrimSuffix(g.Info().API, "/api/v1")
	get := func(p, token string) (int, string) {
		resp, b := rawCall(t, ctx, "GET", root+p, token)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/metrics", ""); code != http.StatusUnauthorized {
		t.Fatalf("/metrics without token: %d", code)
	}
	if code, _ := get("/metrics", "wrong"); code != http.StatusUnauthorized {
		t.Fatalf("/metrics with a wrong token: %d", code)
	}
	if code, body := get("/metrics", testToken); code != 200 || !strings.Contains(body, "smsgw_") {
		t.Fatalf("/metrics with the token: %d", code)
	}
	for _, p := range []string{"/healthz", "/openapi.json"} {
		t.Run(p, func(t *testing.T) {
			if resp, _ := rawCall(t, ctx, "GET", root+p, ""); resp.StatusCode != 200 {
				t.Fatalf("%s: %d", p, resp.StatusCode)
			}
		})
	}
}

// TestCampaignRetriesZero: an operator's retries 0 (request or config)
// means no retries (firmware.Spec read 0 as its default of 2: zero value
// and explicit choice meant different things, and a campaign asked for no
// retries made 2 per device; Spec.Retries is a *int now, nil the default).
func TestCampaignRetriesZero(t *testing.T) {
	zero, three := 0, 3
	fc := config.Default().Firmware
	tests := []struct {
		name    string
		cfg     int
		request *int
		want    int
	}{
		{"request 0", 2, &zero, 0},
		{"config 0, request silent", 0, nil, 0},
		{"request 3", 0, &three, 3},
		{"config 2", 2, nil, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fc.Retries = tc.cfg
			spec, err := campaignSpec(fc, CampaignBody{Image: "x", Prefix: "p", Retries: tc.request})
			if err != nil || spec.Retries == nil || *spec.Retries != tc.want {
				t.Fatalf("Retries %v (%v), want %d", spec.Retries, err, tc.want)
			}
		})
	}
}

// TestWakeMaxZero: queue.wake_max 0 means no wake-up SMS (queue.WakePolicy
// read a MaxWakes of 0 as its default of 4; it is a *int now, nil the
// default).
func TestWakeMaxZero(t *testing.T) {
	cfg := config.Default()
	g := &Gateway{cfg: cfg, smsB: &sms.Bearer{}}
	cfg.Queue.WakeMax = 0
	if w := g.queueWaker(); w != nil {
		t.Fatalf("wake_max 0 gave a waker %T", w)
	}
	cfg.Queue.WakeMax = 4
	if g.queueWaker() == nil {
		t.Fatal("wake_max 4 gave no waker")
	}
}
