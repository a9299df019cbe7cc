package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/redisstore"
	"github.com/m2mbearer/m2mbearer/redisstore/redistest"
)

// redisGateway starts a gateway whose state is in srv under prefix, with
// the demo fleet f.
func redisGateway(t *testing.T, srv *redistest.Server, prefix string, f config.Fleet, latency time.Duration) *Gateway {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Store, cfg.StorePrefix, cfg.Node = srv.URL(), prefix, "gw-a"
	cfg.API.Listen, cfg.LwM2M.UDP, cfg.LwM2M.DTLS, cfg.API.Token = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", testToken
	cfg.Simulator.Fleet = f
	cfg.Simulator.Latency, cfg.Simulator.SendTime = latency, 10*time.Millisecond
	return startValidGateway(t, cfg)
}

// startValidGateway validates cfg and starts a gateway on it, shut down
// when the test ends.
func startValidGateway(t *testing.T, cfg *config.Config) *Gateway {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	t.Cleanup(cancel)
	g, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, c := context.WithTimeout(context.Background(), 30*time.Second)
		defer c()
		if err := g.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return g
}

// redisDo runs one command on srv and returns its first line (":3").
func redisDo(t *testing.T, srv *redistest.Server, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := srv.Do(ctx, args...)
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return out
}

func waitJob(t *testing.T, a apiClient, id int) map[string]any {
	t.Helper()
	code, v := a.do("GET", "/jobs/"+itoa(id)+"?wait=60s", "")
	if code != 200 || v["state"] != "done" {
		t.Fatalf("job %d: %d %v", id, code, v)
	}
	return v
}

// TestRedisDemo runs the README's demo with store: redis://: the fleet
// registers (its registrations in Redis, with the node; the DTLS light's
// PSK looked up in the shared provisioning store), a queued read of
// the sleeping light completes after an SMS wake-up (the request, the SMS
// budget and the outbox in Redis), and a firmware campaign over the UDP
// light finishes (its record in Redis).
func TestRedisDemo(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{AOF: true})
	g := redisGateway(t, srv, "demo:", config.Fleet{UDP: 1, Queue: 1, SMS: 1, DTLS: 1, Awake: 3 * time.Second}, 20*time.Millisecond)
	if _, ok := g.regs.(*redisstore.Registry); !ok {
		t.Fatalf("registry is %T", g.regs)
	}
	a := apiClient{t, g.Info().API}
	waitFleet(t, a, 4)
	if got := redisDo(t, srv, "HLEN", "demo:reg"); got != ":4" {
		t.Fatalf("registrations in Redis: %s", got)
	}
	// The DTLS light's PSK and the SMS lights' numbers are bound in the
	// shared provisioning store; its handshake found the key there.
	if got := redisDo(t, srv, "HEXISTS", "demo:bind", "light-dtls-1"); got != ":1" {
		t.Fatalf("binding in Redis: %s", got)
	}
	if code, v := a.do("GET", "/devices/light-dtls-1/data/3/0/2", ""); code != 200 || !strings.Contains(toJSON(v), "light-dtls-1") {
		t.Fatalf("read over DTLS: %d %v", code, v)
	}
	if r, ok := g.regs.ByEndpoint("light-queue-1"); !ok || r.Node() != "gw-a" {
		t.Fatalf("node of the registration: %v", r)
	}

	// Queue mode: the request waits in Redis until the SMS-woken light
	// comes.
	waitAsleep(t, a, "light-queue-1")
	code, v := a.do("GET", "/devices/light-queue-1/data/3/0/2", "")
	job, _ := v["job"].(map[string]any)
	if code != 202 || job == nil {
		t.Fatalf("queued read: %d %v", code, v)
	}
	id := int(job["id"].(float64))
	if got := redisDo(t, srv, "HEXISTS", "demo:q", itoa(id)); got != ":1" {
		t.Fatalf("queued request in Redis: %s", got)
	}
	if v := waitJob(t, a, id); !strings.Contains(toJSON(v), "light-queue-1") {
		t.Fatalf("job result %v", v)
	}
	day := time.Now().UTC().Format(time.DateOnly)
	if got := redisDo(t, srv, "HGET", "demo:sms:budget:"+day, "*"); got == "$-1" {
		t.Fatal("no SMS budget spent in Redis for the wake-up")
	}

	// A firmware campaign.
	pkg, err := firmware.BuildPackage("2.0.0", bytes.Repeat([]byte("streetlight firmware "), 100))
	if err != nil {
		t.Fatal(err)
	}
	code, img := a.upload("name=main&version=2.0.0&sha256="+sum(pkg), pkg)
	if code != 201 {
		t.Fatalf("upload: %d %v", code, img)
	}
	if got := redisDo(t, srv, "HEXISTS", "demo:fw:img", img["id"].(string)); got != ":1" {
		t.Fatalf("image metadata in Redis: %s", got)
	}
	code, v = a.do("POST", "/campaigns", `{"image":"`+img["id"].(string)+`","prefix":"light-udp-"}`)
	if code != 201 {
		t.Fatalf("campaign: %d %v", code, v)
	}
	cid := v["id"].(string)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, v = a.do("GET", "/campaigns/"+cid+"?devices=1", "")
		c := v["campaign"].(map[string]any)
		if c["status"] == firmware.CampaignDone {
			if v["failed"] != float64(0) || !strings.Contains(toJSON(c), `"state":"done"`) {
				t.Fatalf("campaign report %v", v)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("campaign did not finish: %v", v)
		}
	}
	if got := redisDo(t, srv, "HEXISTS", "demo:fw:camp", cid); got != ":1" {
		t.Fatalf("campaign in Redis: %s", got)
	}
	if got := redisDo(t, srv, "HLEN", "demo:fw:camp:dev:"+cid); got != ":1" {
		t.Fatalf("campaign devices in Redis: %s", got)
	}
}

// TestRedisOutage: while Redis is down a queued request is refused with
// 503, Retry-After and the JSON error (nothing stored); once Redis is back
// (no restart of the gateway) the same request is accepted and completes.
func TestRedisOutage(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{AOF: true})
	g := redisGateway(t, srv, "out:", config.Fleet{Queue: 1, Awake: 2 * time.Second}, 20*time.Millisecond)
	a := apiClient{t, g.Info().API}
	waitFleet(t, a, 1)
	waitAsleep(t, a, "light-queue-1")
	srv.Kill()
	req, _ := http.NewRequest("GET", g.Info().API+"/devices/light-queue-1/data/3/0/2", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "5" || !strings.Contains(string(body), `"error": "state store unavailable`) {
		t.Fatalf("queued read while Redis is down: %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	srv.Restart()
	code, v := a.do("GET", "/devices/light-queue-1/data/3/0/2", "")
	job, _ := v["job"].(map[string]any)
	if code != 202 || job == nil {
		t.Fatalf("queued read after the outage: %d %v", code, v)
	}
	waitJob(t, a, int(job["id"].(float64)))
	if got := redisDo(t, srv, "HLEN", "out:q"); got != ":1" {
		t.Fatalf("requests in Redis: %s (the refused one must not be there)", got)
	}
}

// TestRedisRestartLosesNothing queues requests for a sleeping light over
// the API and registers devices over CoAP while redis-server is SIGKILLed
// and started again from its AOF (appendfsync always): every request the
// API accepted (202) is still there and completes, every registration
// answered 2.01 is still there, and what was refused in between got 503
// (HTTP) or 5.03 (CoAP), nothing else.
func TestRedisRestartLosesNothing(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{AOF: true})
	// The SMSC takes 3 s: requests pile up while the light sleeps.
	g := redisGateway(t, srv, "kill:", config.Fleet{Queue: 1, Awake: 2 * time.Second}, 3*time.Second)
	a := apiClient{t, g.Info().API}
	waitFleet(t, a, 1)
	waitAsleep(t, a, "light-queue-1")

	u, err := udp.Listen("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := bearer.NewEndpoint(u)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()

	const rounds = 40
	var (
		mu        sync.Mutex
		jobs      []int
		locs      []string
		refusedH  int
		refusedC  int
		unexpectd []string
	)
	queueOne := func() {
		req, _ := http.NewRequest("GET", g.Info().API+"/devices/light-queue-1/data/3/0/2", nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		defer resp.Body.Close()
		var v map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&v)
		mu.Lock()
		defer mu.Unlock()
		switch resp.StatusCode {
		case 202:
			jobs = append(jobs, int(v["job"].(map[string]any)["id"].(float64)))
		case 503:
			refusedH++
		default:
			unexpectd = append(unexpectd, fmt.Sprintf("HTTP %d %v", resp.StatusCode, v))
		}
	}
	registerOne := func(i int) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		req := bearer.NewRequest(codes.POST, g.udpEP.LocalAddr(), fmt.Sprintf("/rd?ep=kill-dev-%d&lt=600&lwm2m=1.1", i))
		req.Payload = []byte("</3/0>")
		resp, err := dev.Do(ctx, req)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil:
			unexpectd = append(unexpectd, fmt.Sprintf("register %d: %v", i, err))
		case resp.Code == codes.Created:
			locs = append(locs, resp.LocationPath())
		case resp.Code == codes.ServiceUnavailable:
			refusedC++
		default:
			unexpectd = append(unexpectd, fmt.Sprintf("register %d: %v %s", i, resp.Code, resp.Payload))
		}
	}
	for i := range rounds {
		switch i {
		case rounds / 2:
			srv.Kill()
		case rounds/2 + 5:
			srv.Restart()
		}
		var wg sync.WaitGroup
		wg.Go(queueOne)
		wg.Go(func() { registerOne(i) })
		wg.Wait()
	}
	if len(unexpectd) > 0 {
		t.Fatalf("answers other than success, 503 and 5.03: %v", unexpectd)
	}
	if refusedH == 0 || refusedC == 0 || len(jobs) < rounds/2 || len(locs) < rounds/2 {
		t.Fatalf("accepted %d requests and %d registrations, refused %d and %d: the outage did not happen mid-run",
			len(jobs), len(locs), refusedH, refusedC)
	}
	t.Logf("accepted %d queued requests and %d registrations; refused %d (503) and %d (5.03) while Redis was down",
		len(jobs), len(locs), refusedH, refusedC)
	for _, loc := range locs {
		id36 := strings.TrimPrefix(loc, "/rd/")
		if got := redisDo(t, srv, "HEXISTS", "kill:reg", id36); got != ":1" {
			t.Fatalf("registration %s lost", loc)
		}
		id, _ := registry.ParseID(id36)
		deadline := time.Now().Add(10 * time.Second)
		for _, ok := g.regs.Get(id); !ok; _, ok = g.regs.Get(id) {
			if time.Now().After(deadline) {
				t.Fatalf("registration %s not in the gateway's copy after the outage", loc)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, id := range jobs {
		if got := redisDo(t, srv, "HEXISTS", "kill:q", itoa(id)); got != ":1" {
			t.Fatalf("request %d lost", id)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for _, id := range jobs {
		rec, err := g.qm.Wait(ctx, uint64(id))
		// After a run of refused dials, go-redis answers its last dial
		// error without dialing until its background probe (once a
		// second) connects again: the gateway's store is back up to a
		// second after Redis is (within ctx).
		for errors.Is(err, redisstore.ErrUnavailable) && ctx.Err() == nil {
			time.Sleep(50 * time.Millisecond)
			rec, err = g.qm.Wait(ctx, uint64(id))
		}
		if err != nil || rec.State != queue.StateDone {
			t.Fatalf("request %d: %+v %v", id, rec, err)
		}
	}
	if got := redisDo(t, srv, "HLEN", "kill:q"); got != ":"+itoa(len(jobs)) {
		t.Fatalf("requests in Redis: %s, accepted %d (a refused one was stored)", got, len(jobs))
	}
}
