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
// ordinary test: the harness works, nothing fails, and the pool spreads the
// load evenly. The ratio itself depends on the machine's load and is the
// benchmark's business, so it is only logged here.
func TestPoolThroughputSmall(t *testing.T) {
	ctx := context.Background()
	rig, err := poolbench.NewRig(ctx, 4, 30*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer rig.Close()
	rig.Senders = 4
	r := rig.Run(ctx, 40)
	t.Log(r)
	if r.Errors != 0 {
		t.Fatalf("%d sends failed", r.Errors)
	}
	for _, st := range rig.Pool.Status() {
		if st.Sent < 6 || st.Sent > 14 {
			t.Errorf("%s sent %d of 40: unbalanced (%+v)", st.MSISDN, st.Sent, rig.Pool.Status())
		}
	}
}
