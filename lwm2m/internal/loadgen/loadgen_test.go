package loadgen

import (
	"context"
	"testing"
	"time"
)

func TestRunSmall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	res, err := Run(ctx, Config{N: 3000, Sockets: 4, Workers: 32, Checkpoints: []int{1000, 3000}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.N != 3000 || res.Rate <= 0 || len(res.Checkpoints) != 2 || res.Checkpoints[1].Rate <= 0 {
		t.Fatalf("result %+v", res)
	}
	t.Logf("%.0f registrations/s, %.0f heap bytes/device", res.Rate, res.HeapPerDevice)
}

func TestStateBytes(t *testing.T) {
	b, err := StateBytes(20000, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("registration state: %.0f bytes/device", b)
	// Generous bound so a loaded machine or GC noise does not fail the
	// test; the figure itself is reported by the command.
	if b <= 0 || b > 2048 {
		t.Fatalf("state bytes per device = %.0f", b)
	}
}

// BenchmarkRegisterUDP registers b.N devices over loopback UDP.
func BenchmarkRegisterUDP(b *testing.B) {
	res, err := Run(context.Background(), Config{N: max(b.N, 1), Checkpoints: []int{max(b.N, 1)}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(res.Rate, "registrations/s")
	b.ReportMetric(res.HeapPerDevice, "heapB/device")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkRegisterHandler measures the registration path without sockets.
func BenchmarkRegisterHandler(b *testing.B) {
	b.ReportAllocs()
	v, err := StateBytes(max(b.N, 1), "")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(v, "stateB/device")
}
