package firmware_test

import (
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
)

// TestCampaignScale is the campaign benchmark: FW_BENCH_N simulated
// streetlights (default 10,000; a third pull over CoAP, a third push-only,
// a third sleeping in queue mode, woken by the test waker) on UDP
// loopback in this process, one campaign over all of them. It runs only
// with FW_BENCH=1 and without -short:
//
//	FW_BENCH=1 go test -run TestCampaignScale -v -timeout 30m ./lwm2m/firmware
//
// It reports the campaign's wall time, the time the package bytes need at
// FW_BENCH_LINK_BPS (bits/s of the gateway's link, default 10 Mbit/s),
// their ratio, the process CPU time (gateway and simulated devices
// together: they share the process) and the peak heap and RSS.
func TestCampaignScale(t *testing.T) {
	if testing.Short() || os.Getenv("FW_BENCH") != "1" {
		t.Skip("set FW_BENCH=1 (and no -short) to run the campaign benchmark")
	}
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("FW_BENCH_N")); err == nil && v > 0 {
		n = v
	}
	link := 10e6
	if v, err := strconv.ParseFloat(os.Getenv("FW_BENCH_LINK_BPS"), 64); err == nil && v > 0 {
		link = v
	}
	size := 16 << 10
	if v, err := strconv.Atoi(os.Getenv("FW_BENCH_SIZE")); err == nil && v > 0 {
		size = v
	}
	conc := 200
	if v, err := strconv.Atoi(os.Getenv("FW_BENCH_CONC")); err == nil && v > 0 {
		conc = v
	}
	ls := &lights{}
	e := newEnv(t, ls)
	t0 := time.Now()
	fleet(t, e, ls, "bl-", n)
	t.Logf("%d lights registered in %v", n, time.Since(t0))
	img := image(t, e, "5.0", size)
	m := newManager(t, e.upd)
	o := firmware.Options{PollInterval: 500 * time.Millisecond, DownloadTimeout: 5 * time.Minute,
		UpdateTimeout: 5 * time.Minute, WakeTimeout: time.Minute, AwakeWindow: 10 * time.Second}

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	t.Logf("heap in use with %d registered lights, before the campaign: %.0f MiB", n, float64(base.HeapInuse)/(1<<20))
	var peakHeap atomic.Uint64
	stop := make(chan struct{})
	go func() {
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peakHeap.Load() {
					peakHeap.Store(ms.HeapInuse)
				}
			}
		}
	}()
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	t0 = time.Now()
	id, err := m.Create(t.Context(), firmware.Spec{Image: img.ID, Prefix: "bl-", Concurrency: conc, Backoff: time.Second, Options: o})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := m.Wait(ctxT(t, 25*time.Minute), id)
	wall := time.Since(t0)
	close(stop)
	if err != nil {
		t.Fatal(err)
	}
	var ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration((ru1.Utime.Nano()+ru1.Stime.Nano())-(ru0.Utime.Nano()+ru0.Stime.Nano())) * time.Nanosecond
	bytes := float64(img.Size) * float64(n)
	ideal := time.Duration(bytes * 8 / link * float64(time.Second))
	t.Logf("campaign: %d lights, image %d bytes, concurrency %d: wall %v, counts %v", n, img.Size, conc, wall.Round(time.Millisecond), rep.Counts)
	t.Logf("bytes %.1f MB need %v at %.0f bit/s: ratio wall/ideal %.2f", bytes/1e6, ideal.Round(time.Millisecond), link, wall.Seconds()/ideal.Seconds())
	t.Logf("CPU (gateway + simulated lights in one process) %v = %.2f cores over the campaign; peak heap in use %.0f MiB; max RSS %.0f MiB",
		cpu.Round(time.Millisecond), cpu.Seconds()/wall.Seconds(), float64(peakHeap.Load())/(1<<20), float64(ru1.Maxrss)/1024)
	if rep.Counts[firmware.DevDone] != n {
		t.Fatalf("not all lights updated: %v", rep.Counts)
	}
}
