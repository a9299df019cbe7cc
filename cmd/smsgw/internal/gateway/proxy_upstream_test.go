package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// startExternal starts our own LwM2M server on a UDP loopback port to
// stand in for the external server of proxy mode, and returns its address.
func startExternal(t *testing.T) (*server.Server, string) {
	t.Helper()
	u, err := udp.Listen("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ext, err := server.New(new(registry.Memory))
	if err != nil {
		t.Fatal(err)
	}
	ep, err := bearer.NewEndpoint(u, bearer.WithHandler(ext.Handler("udp")))
	if err != nil {
		t.Fatal(err)
	}
	ext.Attach("udp", ep)
	t.Cleanup(func() { ext.Close(); ep.Close() })
	return ext, u.LocalAddr().String()
}

// startProxy starts a gateway in proxy mode with two SMS-only lights
// bridged to upstream (host:port).
func startProxy(t *testing.T, ctx context.Context, upstream string) *Gateway {
	t.Helper()
	cfg := config.Default()
	cfg.Mode = "proxy"
	cfg.Proxy.Server = upstream
	cfg.DataDir = t.TempDir()
	cfg.API.Listen, cfg.LwM2M.UDP, cfg.LwM2M.DTLS, cfg.API.Token = "127.0.0.1:0", "127.0.0.1:0", "", testToken
	cfg.Simulator.Fleet = config.Fleet{SMS: 2, Awake: 3 * time.Second}
	cfg.Simulator.Latency, cfg.Simulator.SendTime = 20*time.Millisecond, 10*time.Millisecond
	g, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Shutdown(context.Background()) })
	return g
}

// TestProxyUpstreamLifecycle (issue 20 item 5, with our server standing
// in for the external one): the binding the external server reads in
// /1/0/7 and /3/0/16 is the U it registered, not the lights' S; a Write of
// /1/0/7 keeps the light on SMS; Discover lists the executables; the
// proxy's counters are in /metrics; a gateway shutdown de-registers every
// light upstream.
func TestProxyUpstreamLifecycle(t *testing.T) {
	ext, extAddr := startExternal(t)
	sub := ext.Subscribe(64)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	g := startProxy(t, ctx, extAddr)
	for n := 0; n < 2; {
		select {
		case ev := <-sub.C:
			if ev.Kind == server.Registered {
				n++
			}
		case <-ctx.Done():
			t.Fatal("lights not registered upstream")
		}
	}
	read := func(p path.Path, opts ...server.RequestOption) []content.Record {
		t.Helper()
		recs, err := ext.ReadValues(ctx, "light-sms-1", p, opts...)
		if err != nil {
			t.Fatalf("read %v: %v", p, err)
		}
		return recs
	}
	binding := func(recs []content.Record, p path.Path) string {
		for _, r := range recs {
			if r.Path == p {
				return r.Value.Str()
			}
		}
		return "<absent>"
	}
	tests := []struct {
		name string
		read path.Path
		at   path.Path
		opts []server.RequestOption
	}{
		{"server binding, text", path.Resource(1, 0, 7), path.Resource(1, 0, 7), nil},
		{"supported bindings, text", path.Resource(3, 0, 16), path.Resource(3, 0, 16), nil},
		{"server instance, TLV", path.Instance(1, 0), path.Resource(1, 0, 7), []server.RequestOption{server.WithFormat(server.FormatTLV)}},
		{"device instance, SenML JSON", path.Instance(3, 0), path.Resource(3, 0, 16), []server.RequestOption{server.WithFormat(server.FormatSenMLJSON)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := binding(read(tc.read, tc.opts...), tc.at); got != "U" {
				t.Fatalf("%v reads %q upstream, the registration says U", tc.at, got)
			}
		})
	}
	// A Write of the binding the external server knows (U) keeps the
	// light on its SMS link.
	if err := ext.WriteValues(ctx, "light-sms-1", path.Resource(1, 0, 7), server.Replace,
		content.Record{Path: path.Resource(1, 0, 7), Value: content.NewString("U")}); err != nil {
		t.Fatal(err)
	}
	var light *Light
	for _, l := range g.fleet.Lights {
		if l.Name == "light-sms-1" {
			light = l
		}
	}
	if v, ok := light.c.Get(path.Resource(1, 0, 7)); !ok || v.Str() != "S" {
		t.Fatalf("light's own /1/0/7 after the upstream Write: %v", v)
	}
	links, err := ext.Discover(ctx, "light-sms-1", path.Instance(3, 0))
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, l := range links {
		targets = append(targets, l.Target)
	}
	if s := strings.Join(targets, " "); !strings.Contains(s, "/3/0/4 /3/0/5") {
		t.Fatalf("Discover /3/0 through the proxy: %s", s)
	}

	resp, err := http.Get(strings.TrimSuffix(g.Info().API, "/api/v1") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`smsgw_proxy_devices{state="registered"} 2`, `smsgw_proxy_devices{state="bridged"} 2`,
		`smsgw_proxy_total{what="binding_rewritten"}`, `smsgw_proxy_total{what="up"}`, `smsgw_lwm2m_server_total{what="lenient_binding"} 0`} {
		t.Run(want, func(t *testing.T) {
			if !strings.Contains(string(body), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		})
	}

	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	if err := g.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	gone := map[string]bool{}
	for len(gone) < 2 {
		select {
		case ev := <-sub.C:
			if ev.Kind == server.Deregistered {
				gone[ev.Registration.Endpoint] = true
			}
		case <-sctx.Done():
			t.Fatalf("de-registered upstream at shutdown: %v", gone)
		}
	}
	if st := g.proxy.stats(); st.Deregistered != 2 || st.Registered != 0 {
		t.Fatalf("proxy stats after shutdown: %+v", st)
	}
}
