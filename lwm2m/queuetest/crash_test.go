package queuetest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/modemlink"
	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
	"github.com/m2mbearer/m2mbearer/lwm2m/smswake"
	"github.com/m2mbearer/m2mbearer/modem"
	"github.com/m2mbearer/m2mbearer/modem/sim"
)

const (
	crashDevices = 10
	crashPerDev  = 10
)

// The LwM2M server runs in a child process (this test binary) on a bbolt
// registry and queue, with its SMS modem on a pty of the parent's
// simulated network and UDP on a fixed loopback port. With 100 requests
// queued for 10 sleeping lights it is killed with SIGKILL; a new server
// process on the same files wakes the lights by SMS and runs every
// request exactly once, counted on the lights.
func TestCrashRestartExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("child processes")
	}
	n, err := sim.NewNetwork(sim.WithSeed(9), sim.WithConditions(sim.Conditions{Latency: sim.Fixed(20 * time.Millisecond)}), sim.WithLogger(quiet()),
		sim.WithValidity(time.Hour, fastRetry))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	sm, err := n.AddModem(serverNum, sim.WithSendTime(2*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	pty, err := sm.OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udpAddr := pc.LocalAddr().(*net.UDPAddr)
	pc.Close()
	dir := t.TempDir()

	child := func(phase string) (*exec.Cmd, *bufio.Scanner) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
		cmd.Env = append(os.Environ(), "QUEUETEST_CHILD="+phase, "QUEUETEST_PTY="+pty,
			"QUEUETEST_UDP="+udpAddr.String(), "QUEUETEST_DIR="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd, bufio.NewScanner(out)
	}
	expect := func(sc *bufio.Scanner, prefix string, d time.Duration) string {
		t.Helper()
		got := make(chan string, 1)
		go func() {
			for sc.Scan() {
				if l := sc.Text(); strings.HasPrefix(l, prefix) {
					got <- l
					return
				}
			}
			close(got)
		}()
		select {
		case l, ok := <-got:
			if !ok {
				t.Fatalf("child ended before %q", prefix)
			}
			return l
		case <-time.After(d):
			t.Fatalf("no %q from the child within %v", prefix, d)
		}
		return ""
	}

	cmd1, out1 := child("enqueue")
	expect(out1, "READY", 60*time.Second)
	w := &world{t: t, net: n, udpAddr: udpAddr}
	lights := make([]*light, crashDevices)
	for i := range lights {
		lights[i] = w.newLight(lightConfig{name: fmt.Sprintf("crash-%02d", i), number: fmt.Sprintf("+4917400000%02d", i),
			version: "1.0", binding: "UQS", udp: true, awake: 500 * time.Millisecond})
	}
	for _, l := range lights {
		l.waitAsleep(t, 30*time.Second)
	}
	expect(out1, "QUEUED 100", 60*time.Second)
	if err := cmd1.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd1.Wait()

	start := time.Now()
	_, out2 := child("drain")
	line := expect(out2, "DONE", 120*time.Second)
	t.Logf("after restart: %s in %v", line, time.Since(start))
	if line != "DONE 100 done=100" {
		for _, l := range lights {
			wakes, refused := l.c.QueueModeStats()
			t.Logf("%s: awake %v wakes %d refused %d", l.c.Name(), l.c.Awake(), wakes, refused)
		}
		t.Logf("network %+v", n.Stats())
		t.Fatalf("child reported %q", line)
	}
	for i, l := range lights {
		for k := range crashPerDev {
			key := fmt.Sprintf("POST /3/0/4 0='%d'", i*crashPerDev+k)
			if got := l.count.get(key); got != 1 {
				t.Errorf("%s: %q ran %d times", l.c.Name(), key, got)
			}
		}
	}
}

// TestCrashChild is the server process of TestCrashRestartExactlyOnce.
func TestCrashChild(t *testing.T) {
	phase := os.Getenv("QUEUETEST_CHILD")
	if phase == "" {
		t.Skip("child process of TestCrashRestartExactlyOnce")
	}
	dir := os.Getenv("QUEUETEST_DIR")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	m, err := modem.Open(ctx, modem.Config{Device: os.Getenv("QUEUETEST_PTY"), MSISDN: serverNum, HealthInterval: -1,
		ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond}, modem.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	pool, err := modem.NewPool(modem.WithPoolLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	if err := pool.Add(m); err != nil {
		t.Fatal(err)
	}
	link, err := modemlink.New(pool)
	if err != nil {
		t.Fatal(err)
	}
	p := smsParams()
	smsB, err := sms.New(link, sms.Config{StateDir: filepath.Join(dir, "sms"), Params: &p, Logger: quiet(),
		Worker: outbox.WorkerConfig{Poll: 5 * time.Millisecond, BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.OpenBolt(filepath.Join(dir, "reg.db"), registry.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	qs, err := queue.OpenBoltStore(filepath.Join(dir, "queue.db"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(reg, server.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	uc, err := udp.Listen("udp", os.Getenv("QUEUETEST_UDP"))
	if err != nil {
		t.Fatal(err)
	}
	udpEP, err := bearer.NewEndpoint(uc, bearer.WithHandler(srv.Handler("udp")), bearer.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	smsEP, err := bearer.NewEndpoint(smsB, bearer.WithHandler(srv.Handler("sms")), bearer.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	srv.Attach("udp", udpEP)
	srv.Attach("sms", smsEP)
	// The provisioning store: crash-NN has number +4917400000NN (the
	// server wakes only configured numbers).
	device := func(r *registry.Registration) server.DeviceSettings {
		return server.DeviceSettings{MSISDN: "+4917400000" + strings.TrimPrefix(r.Endpoint, "crash-")}
	}
	qc := server.QueueConfig{Config: queue.Config{Store: qs,
		DefaultWindow: 300 * time.Millisecond, ExecTimeout: 3 * time.Second,
		Wake:        queue.WakePolicy{Timeout: 3 * time.Second, MaxTimeout: 8 * time.Second, MaxWakes: new(8), MinInterval: 50 * time.Millisecond, CallTimeout: 10 * time.Second},
		Concurrency: crashDevices}, Peers: smswake.Peers{Setter: smsB, Security: sms.ModeNoSec}, Device: device}
	if phase == "drain" {
		qc.Waker = smswake.New(smsB, smsB)
	}
	q, err := srv.EnableQueue(qc)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("READY")
	switch phase {
	case "enqueue":
		// Wait for the lights to register and sleep, then queue 100
		// Executes and wait for the SIGKILL.
		for {
			regs, asleep := 0, 0
			reg.Range(func(r *registry.Registration) bool {
				regs++
				if !q.Manager().Awake(r.Endpoint) {
					asleep++
				}
				return true
			})
			if regs == crashDevices && asleep == crashDevices {
				break
			}
			if ctx.Err() != nil {
				t.Fatal("lights never registered")
			}
			time.Sleep(20 * time.Millisecond)
		}
		for i := range crashDevices {
			for k := range crashPerDev {
				if _, err := q.Enqueue(ctx, queue.Request{Endpoint: fmt.Sprintf("crash-%02d", i), Kind: queue.KindExecute,
					Paths: []string{"/3/0/4"}, Payload: fmt.Appendf(nil, "0='%d'", i*crashPerDev+k), ContentFormat: 0}); err != nil {
					t.Fatal(err)
				}
			}
		}
		fmt.Println("QUEUED 100")
		<-ctx.Done()
	case "drain":
		var ids []uint64
		if err := qs.ForEach(func(r *queue.Record) error { ids = append(ids, r.ID); return nil }); err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, id := range ids {
			rec, err := q.Wait(ctx, id)
			if err == nil && rec.State == queue.StateDone && rec.Result != nil && rec.Result.Code == 0x44 {
				done++
			} else {
				fmt.Fprintf(os.Stderr, "request %d: %v\n", id, err)
			}
		}
		fmt.Printf("DONE %d done=%d\n", len(ids), done)
		q.Close()
		srv.Close()
	}
}
