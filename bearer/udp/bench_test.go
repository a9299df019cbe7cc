package udp_test

// Throughput of the m2mbearer Endpoint server on the UDP bearer against
// go-coap v3's own UDP server, measured with the same closed-loop load
// generator (internal/loadgen): K sockets, each with one outstanding CON
// GET /bench, answered with a piggybacked 2.05 Content carrying a small
// payload.
//
//	go test ./bearer/udp -run '^$' -bench 'Server(Ours|GoCoap)' -benchtime 20000x
//	M2M_THROUGHPUT=1 go test ./bearer/udp -run TestThroughputRatio -v

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/m2mbearer/m2mbearer/bearer/udp/internal/loadgen"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

const benchPath = "/bench"

var benchPayload = []byte("21.5 C, lamp on, 1187 h")

// benchWorkers is the number of concurrent client sockets (CoAP peers).
func benchWorkers() int {
	if n, err := strconv.Atoi(os.Getenv("M2M_THROUGHPUT_WORKERS")); err == nil && n > 0 {
		return n
	}
	return 16
}

// startOurs starts an Endpoint on the UDP bearer answering GET /bench.
func startOurs(tb testing.TB) (*net.UDPAddr, func()) {
	tb.Helper()
	c, err := udp.Listen("udp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	mux := bearer.NewServeMux()
	mux.HandleFunc(benchPath, func(w bearer.ResponseWriter, _ *bearer.Request) {
		w.SetOption(bearer.ContentFormatOption(message.TextPlain))
		_ = w.WriteResponse(codes.Content, benchPayload)
	})
	var m bearer.Counters
	ep, err := bearer.NewEndpoint(c, bearer.WithHandler(mux), bearer.WithMetrics(&m))
	if err != nil {
		tb.Fatal(err)
	}
	return c.LocalAddr().(*net.UDPAddr), func() {
		st := c.Stats()
		tb.Logf("ours: endpoint events %v; socket %+v", m.Snapshot(), st)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ep.Shutdown(ctx); err != nil {
			tb.Errorf("Shutdown: %v", err)
		}
		_ = c.Close()
	}
}

// startGoCoap starts go-coap v3's UDP server answering GET /bench the same way.
func startGoCoap(tb testing.TB) (*net.UDPAddr, func()) {
	tb.Helper()
	s, err := loadgen.StartGoCoap("127.0.0.1:0", benchPath, benchPayload)
	if err != nil {
		tb.Fatal(err)
	}
	return s.Addr, func() {
		if err := s.Stop(10 * time.Second); err != nil {
			tb.Errorf("go-coap Stop: %v", err)
		}
	}
}

func benchServer(b *testing.B, start func(testing.TB) (*net.UDPAddr, func())) {
	addr, stop := start(b)
	defer stop()
	ctx := context.Background()
	// Warm up: first contact creates per-peer state in both servers.
	if _, err := loadgen.Run(ctx, addr, loadgen.Config{Workers: benchWorkers(), Path: benchPath, Requests: 200}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	res, err := loadgen.Run(ctx, addr, loadgen.Config{Workers: benchWorkers(), Path: benchPath, Requests: b.N, Duration: 5 * time.Minute})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if res.Bad != 0 {
		b.Fatalf("bad responses: %v", res)
	}
	b.ReportMetric(res.PerSecond(), "req/s")
	b.ReportMetric(float64(res.Lost), "lost")
}

// BenchmarkServerOurs measures the Endpoint server on the UDP bearer.
func BenchmarkServerOurs(b *testing.B) { benchServer(b, startOurs) }

// BenchmarkServerGoCoap measures go-coap v3's UDP server.
func BenchmarkServerGoCoap(b *testing.B) { benchServer(b, startGoCoap) }

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil && d > 0 {
		return d
	}
	return def
}

// TestThroughputRatio runs both servers side by side, alternating rounds of
// the same load, and prints requests/s and the ratio ours / go-coap. Without
// M2M_THROUGHPUT it is a short check in the ordinary suite (one round of
// 300 ms with 4 workers: both servers answer every request correctly under
// load; the figures mean little then). With M2M_THROUGHPUT set it measures:
// M2M_THROUGHPUT_ROUNDS (default 5),
// M2M_THROUGHPUT_DURATION (per server and round, default 2s),
// M2M_THROUGHPUT_WORKERS (default 16) tune it, M2M_THROUGHPUT_FRESH=1
// starts both servers afresh for every round (empty duplicate-detection
// caches) instead of once, and M2M_THROUGHPUT_MIN (a ratio, e.g. 1.0) makes
// it fail below that ratio.
func TestThroughputRatio(t *testing.T) {
	measure := os.Getenv("M2M_THROUGHPUT") != ""
	rounds := 5
	if n, err := strconv.Atoi(os.Getenv("M2M_THROUGHPUT_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	dur := envDuration("M2M_THROUGHPUT_DURATION", 2*time.Second)
	workers := benchWorkers()
	if !measure {
		rounds, dur, workers = 1, 300*time.Millisecond, 4
	}

	fresh := os.Getenv("M2M_THROUGHPUT_FRESH") != ""
	ctx := context.Background()
	// start starts a server and warms it up (first contact creates per-peer
	// state in both servers).
	start := func(f func(testing.TB) (*net.UDPAddr, func())) (*net.UDPAddr, func()) {
		a, stop := f(t)
		if _, err := loadgen.Run(ctx, a, loadgen.Config{Workers: workers, Path: benchPath, Duration: 300 * time.Millisecond}); err != nil {
			stop()
			t.Fatal(err)
		}
		return a, stop
	}
	var oursAddr, theirsAddr *net.UDPAddr
	if !fresh {
		var stopOurs, stopTheirs func()
		oursAddr, stopOurs = start(startOurs)
		defer stopOurs()
		theirsAddr, stopTheirs = start(startGoCoap)
		defer stopTheirs()
	}
	var ours, theirs []float64
	var oursOK, theirsOK int64
	var oursTime, theirsTime time.Duration
	for r := range rounds {
		// Alternate which goes first to cancel drift in machine load.
		order := []bool{true, false}
		if r%2 == 1 {
			order = []bool{false, true}
		}
		for _, isOurs := range order {
			addr := theirsAddr
			if isOurs {
				addr = oursAddr
			}
			stop := func() {}
			if fresh {
				if isOurs {
					addr, stop = start(startOurs)
				} else {
					addr, stop = start(startGoCoap)
				}
			}
			res, err := loadgen.Run(ctx, addr, loadgen.Config{Workers: workers, Path: benchPath, Duration: dur})
			stop()
			if err != nil {
				t.Fatal(err)
			}
			if res.Bad != 0 || res.OK == 0 {
				t.Fatalf("bad or no responses: %v", res)
			}
			name := "go-coap"
			if isOurs {
				name = "ours"
				ours = append(ours, res.PerSecond())
				oursOK += res.OK
				oursTime += res.Elapsed
			} else {
				theirs = append(theirs, res.PerSecond())
				theirsOK += res.OK
				theirsTime += res.Elapsed
			}
			t.Logf("round %d %-8s %v", r+1, name, res)
		}
	}
	// Each round's ratio compares two runs made seconds apart, so it is the
	// figure least disturbed by the load of a shared machine.
	paired := make([]float64, len(ours))
	for i := range ours {
		paired[i] = ours[i] / theirs[i]
	}
	slices.Sort(paired)
	oursRate := float64(oursOK) / oursTime.Seconds()
	theirsRate := float64(theirsOK) / theirsTime.Seconds()
	ratio := oursRate / theirsRate
	slices.Sort(ours)
	slices.Sort(theirs)
	summary := fmt.Sprintf("workers=%d rounds=%d x %v fresh=%v: ours %.0f req/s (median %.0f), go-coap %.0f req/s (median %.0f), ratio ours/go-coap = %.2f (per-round ratios min %.2f median %.2f max %.2f)",
		workers, rounds, dur, fresh, oursRate, ours[len(ours)/2], theirsRate, theirs[len(theirs)/2], ratio,
		paired[0], paired[len(paired)/2], paired[len(paired)-1])
	t.Log(summary)
	if measure {
		fmt.Println(summary)
	}
	if min, err := strconv.ParseFloat(os.Getenv("M2M_THROUGHPUT_MIN"), 64); err == nil && ratio < min {
		t.Errorf("ratio %.2f below M2M_THROUGHPUT_MIN %.2f", ratio, min)
	}
}
