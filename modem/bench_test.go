package modem_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/modem/internal/poolbench"
)

// BenchmarkPoolThroughput sends b.N messages through a pool of N simulated
// modems, each taking 40 ms per +CMGS, and reports SMS/s and the ratio to
// the physical limit N/T (goal ≥ 0.95). Run with e.g.
//
//	go test -run XXX -bench PoolThroughput -benchtime 800x ./modem/
func BenchmarkPoolThroughput(b *testing.B) {
	const sendTime = 40 * time.Millisecond
	for _, n := range []int{1, 4, 16, 32} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			ctx := context.Background()
			rig, err := poolbench.NewRig(ctx, n, sendTime)
			if err != nil {
				b.Fatal(err)
			}
			defer rig.Close()
			rig.Senders = 4
			rig.Run(ctx, n) // warm up
			b.ResetTimer()
			r := rig.Run(ctx, b.N)
			b.StopTimer()
			if r.Errors > 0 {
				b.Fatalf("%d sends failed", r.Errors)
			}
			b.ReportMetric(r.Rate(), "sms/s")
			b.ReportMetric(r.Ratio(), "ratio")
		})
	}
}

// TestPoolThroughputSmall runs the measurement at a small scale as an
// ordinary test: it checks the harness works and that a pool of 4 is not
// grossly unbalanced (ratio ≥ 0.5 even on a heavily loaded CI machine).
func TestPoolThroughputSmall(t *testing.T) {
	r, err := poolbench.Measure(context.Background(), 4, 30*time.Millisecond, 10, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r)
	if r.Errors != 0 || r.Ratio() < 0.5 {
		t.Fatalf("pool throughput %v", r)
	}
}
