package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	goredis "github.com/redis/go-redis/v9"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/gateway"
	"github.com/m2mbearer/m2mbearer/modem/sim"
	"github.com/m2mbearer/m2mbearer/redisstore/redistest"
)

// TestClusterBenchmark (issue 15; M2M_CLUSTER_BENCH=1): registrations a
// second and queued reads a second through 1, 2 and 3 smsgw processes on
// one redis-server (AOF, appendfsync always: the production setting), side
// by side in one run, and Redis memory per registered device (INFO memory
// used_memory before and after the registrations through one node).
//
// Registrations: M2M_CLUSTER_BENCH_REGS (default 6000) distinct endpoints
// registered closed-loop by 128 workers over 32 client sockets, worker w at
// node w mod n. Queued reads: 60 queue-mode lights (always awake, so no
// SMS), light i registered at node i mod n; 1200 reads of /3/0/0 by 32
// workers, read k asked at node k mod n with ?wait=30s, so most are asked
// at a node that does not hold the light (queued in Redis, sent by the
// holder, the answer back through the queue's change stream).
func TestClusterBenchmark(t *testing.T) {
	if os.Getenv("M2M_CLUSTER_BENCH") == "" {
		t.Skip("set M2M_CLUSTER_BENCH=1 (runs several minutes)")
	}
	regs := 6000
	if s := os.Getenv("M2M_CLUSTER_BENCH_REGS"); s != "" {
		regs, _ = strconv.Atoi(s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := buildSmsgw(t, ".", filepath.Join(dir, "smsgw"))
	redis := redistest.Start(t, redistest.Options{AOF: true})
	simNet, err := sim.NewNetwork()
	if err != nil {
		t.Fatal(err)
	}
	defer simNet.Close()
	type row struct {
		nodes             int
		regRate, readRate float64
		regErr, readErr   int64
		memPerDevice      float64
	}
	var rows []row
	for n := 1; n <= 3; n++ {
		prefix := fmt.Sprintf("bench%d:", n)
		var ds []*daemon
		var udps []string
		lights := planLights(gateway.KindQueue, fmt.Sprintf("b%d", n), 60, 3000*n, 1)
		devYAML := devicesYAML(lights)
		for i := 0; i < n; i++ {
			cfg := filepath.Join(dir, fmt.Sprintf("n%d-%d.yaml", n, i))
			os.WriteFile(cfg, []byte(fmt.Sprintf(`store: %s
store_prefix: %q
node: %s
api: {listen: 127.0.0.1:0, token: %s}
lwm2m: {udp: 127.0.0.1:0, dtls: "", register_rate: -1, max_registrations: 1000000}
log: {level: warn}
sms:
  devices:
%s
queue: {awake_window: 1h, wake_max: 0}
simulator: {enabled: false}
`, redis.URL(), prefix, clusterNames[i], clusterToken, devYAML)), 0o600)
			d := startDaemon(t, ctx, bin, "-config", cfg, "-data", filepath.Join(dir, fmt.Sprintf("n%d-%d", n, i)))
			ds = append(ds, d)
			udps = append(udps, d.bannerAddr(`LwM2M UDP:\s+coap://(\S+)`))
		}
		used := func() float64 {
			c := goredis.NewClient(&goredis.Options{Addr: redis.Addr()})
			defer c.Close()
			out, err := c.Info(ctx, "memory").Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range strings.Split(out, "\n") {
				if v, ok := strings.CutPrefix(strings.TrimSpace(l), "used_memory:"); ok {
					f, _ := strconv.ParseFloat(v, 64)
					return f
				}
			}
			t.Fatalf("no used_memory in %q", out)
			return 0
		}
		before := used()
		r := row{nodes: n}
		r.regRate, r.regErr = benchRegister(t, ctx, udps, regs, fmt.Sprintf("r%d-", n))
		if n == 1 {
			r.memPerDevice = (used() - before) / float64(regs)
		}
		// The queue lights, light i at node i mod n.
		for i := 0; i < n; i++ {
			var mine []*gateway.Light
			for j, l := range lights {
				if j%n == i {
					mine = append(mine, l)
				}
			}
			at, _ := net.ResolveUDPAddr("udp", udps[i])
			f, err := gateway.StartFleet(ctx, gateway.FleetSpec{Awake: time.Hour, ServerUDP: at, Network: simNet,
				StateDir: filepath.Join(dir, "lights"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, mine)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
		}
		ds[0].waitFleet(regs+len(lights), 2*time.Minute)
		r.readRate, r.readErr = benchReads(t, ctx, ds, lights, 1200)
		rows = append(rows, r)
		for _, d := range ds {
			d.kill()
		}
	}
	base := rows[0]
	t.Logf("nodes  registrations/s (ratio)  queued reads/s (ratio)  errors (reg, read)")
	for _, r := range rows {
		t.Logf("%5d  %8.0f (%.2f)          %8.0f (%.2f)         %d, %d", r.nodes, r.regRate, r.regRate/base.regRate,
			r.readRate, r.readRate/base.readRate, r.regErr, r.readErr)
	}
	t.Logf("Redis memory per registered device (through one node, %d devices): %.0f B", regs, base.memPerDevice)
}

// benchRegister registers n endpoints (names prefix+i) closed-loop, worker
// w at node w mod len(udps); it returns registrations a second and errors.
func benchRegister(t *testing.T, ctx context.Context, udps []string, n int, prefix string) (float64, int64) {
	t.Helper()
	const workers, sockets = 128, 32
	p := bearer.UDPParams("udp")
	p.NStart = workers
	eps := make([]*bearer.Endpoint, sockets)
	for i := range eps {
		c, err := udp.Listen("udp", "127.0.0.1:0", udp.WithParams(p), udp.WithReadBuffer(4<<20))
		if err != nil {
			t.Fatal(err)
		}
		if eps[i], err = bearer.NewEndpoint(c); err != nil {
			t.Fatal(err)
		}
		defer eps[i].Close()
	}
	targets := make([]net.Addr, len(udps))
	for i, u := range udps {
		targets[i], _ = net.ResolveUDPAddr("udp", u)
	}
	var next, errs atomic.Int64
	var wg sync.WaitGroup
	payload := []byte("</1/0>,</3/0>,</4/0>,</5/0>,</3311/0>")
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ep, to := eps[w%sockets], targets[w%len(targets)]
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || ctx.Err() != nil {
					return
				}
				req := bearer.NewRequest(codes.POST, to, "/rd")
				req.AddOption(bearer.StringOption(message.URIQuery, "ep="+prefix+strconv.FormatInt(i, 10)))
				req.AddOption(bearer.StringOption(message.URIQuery, "lt=86400"))
				req.AddOption(bearer.StringOption(message.URIQuery, "lwm2m=1.1"))
				req.AddOption(bearer.StringOption(message.URIQuery, "b=U"))
				req.SetOption(bearer.ContentFormatOption(message.AppLinkFormat))
				req.Payload = payload
				rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				resp, err := ep.Do(rctx, req)
				cancel()
				if err != nil || resp.Code != codes.Created {
					errs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds(), errs.Load()
}

// benchReads runs n queued reads of /3/0/0 by 32 workers, read k asked at
// node k mod len(ds) for light k mod len(lights).
func benchReads(t *testing.T, ctx context.Context, ds []*daemon, lights []*gateway.Light, n int) (float64, int64) {
	t.Helper()
	var next, errs atomic.Int64
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	start := time.Now()
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := next.Add(1) - 1
				if k >= int64(n) || ctx.Err() != nil {
					return
				}
				d, l := ds[k%int64(len(ds))], lights[k%int64(len(lights))]
				req, _ := http.NewRequestWithContext(ctx, "GET", d.api+"/devices/"+l.Name+"/data/3/0/0?wait=30s", nil)
				req.Header.Set("Authorization", "Bearer "+clusterToken)
				resp, err := client.Do(req)
				if err != nil {
					errs.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds(), errs.Load()
}
