package firmware_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
)

// The gateway-only campaign benchmark. TestCampaignScale runs the gateway
// and the simulated lights in one process, so its CPU and memory figures
// are the sum of both. TestCampaignScaleGateway re-executes the test
// binary as a child (TestScaleLightsChild) that runs the simulated lights;
// they register with the gateway in this process over UDP loopback, and
// this process measures only its own CPU time (getrusage RUSAGE_SELF) and
// memory (runtime HeapInuse sampled every 100 ms, VmHWM from
// /proc/self/status). The control channel is the child's stdin and
// stdout: the parent writes "wake <endpoint>" (standing in for the SMS
// trigger of a queue-mode light) and "cpu"; the child answers lines
// prefixed "FWLIGHTS ".

const lightsPrefix = "FWLIGHTS "

// TestScaleLightsChild is the lights process of TestCampaignScaleGateway;
// it runs only when FW_LIGHTS_ADDR is set.
func TestScaleLightsChild(t *testing.T) {
	addr := os.Getenv("FW_LIGHTS_ADDR")
	if addr == "" {
		t.Skip("child of TestCampaignScaleGateway")
	}
	n, err := strconv.Atoi(os.Getenv("FW_LIGHTS_N"))
	if err != nil || n <= 0 {
		t.Fatalf("FW_LIGHTS_N: %q", os.Getenv("FW_LIGHTS_N"))
	}
	srvAddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var outMu sync.Mutex
	say := func(f string, a ...any) {
		outMu.Lock()
		fmt.Printf(lightsPrefix+f+"\n", a...)
		outMu.Unlock()
	}
	ls := &lights{}
	e := &env{addr: srvAddr}
	t0 := time.Now()
	fleet(t, e, ls, os.Getenv("FW_LIGHTS_PREFIX"), n)
	say("registered %d %d", n, time.Since(t0).Milliseconds())
	// Commands until the parent closes stdin.
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		switch cmd {
		case "wake":
			if err := ls.Wake(context.Background(), arg); err != nil {
				say("wakeerr %s %v", arg, err)
			}
		case "cpu":
			say("cpu %d", cpuSelf().Nanoseconds())
		case "applied":
			total, most := ls.applied()
			say("applied %d %d", total, most)
		}
	}
}

// cpuSelf is this process's user+system CPU time so far.
func cpuSelf() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procStatusKB reads a "Name:   123 kB" field of /proc/self/status; 0 if
// unavailable (not Linux).
func procStatusKB(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	return parseStatusKB(string(b), field)
}

func parseStatusKB(status, field string) int64 {
	for l := range strings.Lines(status) {
		v, ok := strings.CutPrefix(l, field+":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0
		}
		return n
	}
	return 0
}

func TestParseStatusKB(t *testing.T) {
	const st = "Name:\tfirmware.test\nVmPeak:\t 2345 kB\nVmHWM:\t   81234 kB\nVmRSS:\t   70000 kB\nThreads:\t9\n"
	for _, c := range []struct {
		field string
		want  int64
	}{{"VmHWM", 81234}, {"VmRSS", 70000}, {"VmPeak", 2345}, {"Threads", 9}, {"VmSwap", 0}, {"Name", 0}} {
		t.Run(c.field, func(t *testing.T) {
			if got := parseStatusKB(st, c.field); got != c.want {
				t.Errorf("%s: got %d want %d", c.field, got, c.want)
			}
		})
	}
}

// lightsProc is the running lights child process.
type lightsProc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex // serialises writes to in
	in    io.WriteCloser
	lines chan string
	wakes atomic.Int64
}

// Wake implements firmware.Waker: it asks the child to wake the light.
func (p *lightsProc) Wake(_ context.Context, ep string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.wakes.Add(1)
	if _, err := fmt.Fprintf(p.in, "wake %s\n", ep); err != nil {
		return fmt.Errorf("wake %s: %w", ep, err)
	}
	return nil
}

func (p *lightsProc) send(s string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := io.WriteString(p.in, s+"\n")
	return err
}

// wait returns the next child line with the given first word.
func (p *lightsProc) wait(ctx context.Context, word string) (string, error) {
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				return "", errors.New("lights process exited")
			}
			if strings.HasPrefix(l, word+" ") {
				return l, nil
			}
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for %q: %w", word, ctx.Err())
		}
	}
}

// childCPU asks the child for its CPU time so far.
func (p *lightsProc) childCPU(ctx context.Context) (time.Duration, error) {
	if err := p.send("cpu"); err != nil {
		return 0, err
	}
	l, err := p.wait(ctx, "cpu")
	if err != nil {
		return 0, err
	}
	ns, err := strconv.ParseInt(strings.TrimPrefix(l, "cpu "), 10, 64)
	return time.Duration(ns), err
}

// startLights re-executes the test binary as the lights process.
func startLights(t *testing.T, addr, prefix string, n int) *lightsProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestScaleLightsChild$", "-test.count=1", "-test.v", "-test.timeout=0")
	cmd.Env = append(os.Environ(), "FW_LIGHTS_ADDR="+addr, "FW_LIGHTS_N="+strconv.Itoa(n), "FW_LIGHTS_PREFIX="+prefix)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &lightsProc{cmd: cmd, in: in, lines: make(chan string, 64)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			l := sc.Text()
			if r, ok := strings.CutPrefix(l, lightsPrefix); ok {
				p.lines <- r
			} else if strings.HasPrefix(l, "--- FAIL") || strings.Contains(l, "_test.go:") {
				t.Log("lights: " + l)
			}
		}
		close(p.lines)
	}()
	// Closing stdin ends the child's command loop; it then closes its
	// lights and exits. Kill it if it does not within a minute.
	t.Cleanup(func() {
		_ = in.Close()
		done := make(chan struct{})
		go func() {
			for range p.lines { // drain so the child never blocks on stdout
			}
			_ = cmd.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return p
}

// TestCampaignScaleGateway is TestCampaignScale with the simulated lights
// in a child process, so the CPU and memory figures are the gateway's
// alone (LwM2M server, Updater, campaign Manager, CoAP package server).
// It runs only with FW_BENCH=1 and without -short:
//
//	FW_BENCH=1 go test -count=1 -run TestCampaignScaleGateway -v -timeout 30m ./lwm2m/firmware
//
// FW_BENCH_N, FW_BENCH_LINK_BPS, FW_BENCH_SIZE and FW_BENCH_CONC are as for
// TestCampaignScale; FW_BENCH_HEAPPROFILE=file writes the gateway's heap
// profile right after the campaign.
func TestCampaignScaleGateway(t *testing.T) {
	if testing.Short() || os.Getenv("FW_BENCH") != "1" || os.Getenv("FW_LIGHTS_ADDR") != "" {
		t.Skip("set FW_BENCH=1 (and no -short) to run the gateway campaign benchmark")
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
	var waker firmware.WakerFunc
	var p *lightsProc
	waker = func(ctx context.Context, ep string) error { return p.Wake(ctx, ep) }
	e := newEnv(t, waker)
	t0 := time.Now()
	p = startLights(t, e.addr.String(), "gl-", n)
	if _, err := p.wait(ctxT(t, 20*time.Minute), "registered"); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d lights (child process %d) registered in %v", n, p.cmd.Process.Pid, time.Since(t0).Round(time.Millisecond))
	img := image(t, e, "5.0", size)
	db := openDB(t, t.TempDir())
	defer db.Close()
	m, err := firmware.NewManager(db, e.upd)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	o := firmware.Options{PollInterval: 500 * time.Millisecond, DownloadTimeout: 5 * time.Minute,
		UpdateTimeout: 5 * time.Minute, WakeTimeout: time.Minute, AwakeWindow: 10 * time.Second}

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	hwm0, rss0 := procStatusKB("VmHWM"), procStatusKB("VmRSS")
	t.Logf("gateway before the campaign: heap in use %.0f MiB, VmRSS %.0f MiB, VmHWM %.0f MiB (registration of %d lights)",
		float64(base.HeapInuse)/(1<<20), float64(rss0)/1024, float64(hwm0)/1024, n)
	var peakHeap atomic.Uint64
	peakHeap.Store(base.HeapInuse)
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
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
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-sampled
	}()
	lcpu0, err := p.childCPU(ctxT(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	cpu0 := cpuSelf()
	t0 = time.Now()
	id, err := m.Create(t.Context(), firmware.Spec{Image: img.ID, Prefix: "gl-", Concurrency: conc, Backoff: time.Second, Options: o})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := m.Wait(ctxT(t, 25*time.Minute), id)
	wall := time.Since(t0)
	cpu := cpuSelf() - cpu0
	close(stop)
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	lcpu1, err := p.childCPU(ctxT(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	hwm := procStatusKB("VmHWM")
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if f := os.Getenv("FW_BENCH_HEAPPROFILE"); f != "" {
		writeHeapProfile(t, f)
	}
	bytes := float64(img.Size) * float64(n)
	ideal := time.Duration(bytes * 8 / link * float64(time.Second))
	t.Logf("campaign: %d lights, image %d bytes, concurrency %d: wall %v, counts %v, wakes %d",
		n, img.Size, conc, wall.Round(time.Millisecond), rep.Counts, p.wakes.Load())
	t.Logf("bytes %.1f MB need %v at %.0f bit/s: ratio wall/ideal %.2f", bytes/1e6, ideal.Round(time.Millisecond), link, wall.Seconds()/ideal.Seconds())
	t.Logf("gateway CPU %v = %.2f cores over the campaign (lights process: %v = %.2f cores, %d CPUs)",
		cpu.Round(time.Millisecond), cpu.Seconds()/wall.Seconds(), (lcpu1 - lcpu0).Round(time.Millisecond), (lcpu1-lcpu0).Seconds()/wall.Seconds(), runtime.NumCPU())
	t.Logf("gateway memory: peak heap in use %.0f MiB (before %.0f MiB, live after the campaign and a GC %.0f MiB); VmHWM %.0f MiB (process lifetime, before the campaign %.0f MiB)",
		float64(peakHeap.Load())/(1<<20), float64(base.HeapInuse)/(1<<20), float64(after.HeapInuse)/(1<<20), float64(hwm)/1024, float64(hwm0)/1024)
	if rep.Counts[firmware.DevDone] != n {
		t.Fatalf("not all lights updated: %v", rep.Counts)
	}
	// Duplicate executions: none on the gateway when no duplicate-cache
	// entry left before EXCHANGE_LIFETIME and every regenerated reply
	// matched; none on the lights when each applied the update once.
	if err := p.send("applied"); err != nil {
		t.Fatal(err)
	}
	l, err := p.wait(ctxT(t, time.Minute), "applied")
	if err != nil {
		t.Fatal(err)
	}
	var applied, most int
	if _, err := fmt.Sscanf(l, "applied %d %d", &applied, &most); err != nil {
		t.Fatal(err)
	}
	gm := e.met
	t.Logf("gateway duplicate cache: %d duplicates received, %d answered by regenerating a firmware block, %d regenerations differed, %d entries evicted early; lights: %d updates applied, at most %d by one light",
		gm.Get(bearer.EventDuplicate), gm.Get(bearer.EventDedupRegenerated), gm.Get(bearer.EventDedupRegenMismatch), gm.Get(bearer.EventDedupEvicted), applied, most)
	if gm.Get(bearer.EventDedupEvicted) != 0 || gm.Get(bearer.EventDedupRegenMismatch) != 0 || applied != n || most != 1 {
		t.Fatalf("duplicate executions possible: evicted %d, mismatches %d, applied %d (at most %d by one light)",
			gm.Get(bearer.EventDedupEvicted), gm.Get(bearer.EventDedupRegenMismatch), applied, most)
	}
}

// writeHeapProfile writes the gateway's heap profile (what is still
// retained right after the campaign) to file, for go tool pprof.
func writeHeapProfile(t *testing.T, file string) {
	t.Helper()
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		t.Fatal(err)
	}
	t.Logf("heap profile written to %s", file)
}
