package firmware_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// TestCrashChild is the gateway process of TestCampaignCrashResume: it
// runs only when FW_CHILD_DIR is set. It prints "FWCHILD <what>" lines.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("FW_CHILD_DIR")
	if dir == "" {
		t.Skip("child of TestCampaignCrashResume")
	}
	n, _ := strconv.Atoi(os.Getenv("FW_CHILD_N"))
	say := func(f string, a ...any) { fmt.Printf("FWCHILD "+f+"\n", a...) }
	reg, err := registry.OpenBolt(filepath.Join(dir, "reg.db"), registry.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := udp.Listen("udp", os.Getenv("FW_CHILD_ADDR"))
	if err != nil {
		t.Fatal(err)
	}
	mux := bearer.NewServeMux()
	mux.Handle("/", srv.Handler("udp"))
	ep, err := bearer.NewEndpoint(b, bearer.WithHandler(mux))
	if err != nil {
		t.Fatal(err)
	}
	store, err := firmware.OpenStore(filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/fw/", firmware.NewCoAPHandler(store, "/fw/", ep.BlockSize(), nil))
	srv.Attach("udp", ep)
	upd, err := firmware.NewUpdater(firmware.Config{Server: srv, Store: store, Endpoints: map[string]*bearer.Endpoint{"udp": ep},
		Pull: firmware.PullURIs{CoAP: "coap://" + b.LocalAddr().String() + "/fw/"}})
	if err != nil {
		t.Fatal(err)
	}
	pkg, _ := firmware.BuildPackage("9.0", []byte(strings.Repeat("crash-test firmware ", 200)))
	info, err := store.PutBytes(context.Background(), "crash", "9.0", pkg)
	if err != nil {
		t.Fatal(err)
	}
	db := openDB(t, dir)
	m, err := firmware.NewManager(db, upd, firmware.WithCampaignHook(func(ev firmware.CampaignEvent) {
		say("%s %s", ev.Device.State, ev.Device.Endpoint)
	}))
	if err != nil {
		t.Fatal(err)
	}
	say("ready")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var id string
	if l := m.List(); len(l) > 0 {
		id = l[0].ID
		say("resumed %s", id)
	} else {
		tick := time.NewTicker(20 * time.Millisecond)
		for reg.Len() < n {
			select {
			case <-ctx.Done():
				t.Fatal("devices did not register")
			case <-tick.C:
			}
		}
		tick.Stop()
		o := firmware.Options{PollInterval: 100 * time.Millisecond, DownloadTimeout: 20 * time.Second, UpdateTimeout: 20 * time.Second}
		if id, err = m.Create(ctx, firmware.Spec{Image: info.ID, Prefix: "crash-", Concurrency: 3, Backoff: 50 * time.Millisecond, Options: o}); err != nil {
			t.Fatal(err)
		}
		say("created %s", id)
	}
	rep, err := m.Wait(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	say("finished %d %d", rep.Counts[firmware.DevDone], rep.Counts[firmware.DevFailed])
	for _, d := range rep.Devices {
		if d.State != firmware.DevDone {
			say("notdone %s %s %s", d.Endpoint, d.State, d.Error)
		}
	}
	m.Close()
	upd.Close()
	srv.Close()
	ep.Close()
	db.Close()
}

// TestCampaignCrashResume runs the gateway in a child process, SIGKILLs it
// mid-campaign, restarts it on the same state, and checks that the
// campaign completes and no light was updated twice.
func TestCampaignCrashResume(t *testing.T) {
	if os.Getenv("FW_CHILD_DIR") != "" {
		t.Skip("in child")
	}
	const n = 30
	dir := t.TempDir()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	type child struct {
		cmd   *exec.Cmd
		lines chan string
	}
	start := func() *child {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "FW_CHILD_DIR="+dir, "FW_CHILD_ADDR="+addr, "FW_CHILD_N="+strconv.Itoa(n))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		c := &child{cmd: cmd, lines: make(chan string, 1000)}
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if l, ok := strings.CutPrefix(sc.Text(), "FWCHILD "); ok {
					c.lines <- l
				}
			}
			close(c.lines)
		}()
		return c
	}
	waitLine := func(c *child, pred func(string) bool) string {
		t.Helper()
		deadline := time.After(90 * time.Second)
		for {
			select {
			case l, ok := <-c.lines:
				if !ok {
					t.Fatal("child exited")
				}
				if pred(l) {
					return l
				}
			case <-deadline:
				t.Fatal("child timed out")
			}
		}
	}
	c1 := start()
	t.Cleanup(func() { _ = c1.cmd.Process.Kill(); _ = c1.cmd.Wait() })
	waitLine(c1, func(l string) bool { return l == "ready" })
	srvAddr, _ := net.ResolveUDPAddr("udp", addr)
	e := &env{addr: srvAddr}
	lights := make([]*light, n)
	for i := range n {
		o := lightOpts{}
		if i%2 == 1 {
			o.pushOnly = true
		}
		lights[i] = newLight(t, e, fmt.Sprintf("crash-%02d", i), o)
	}
	done := 0
	waitLine(c1, func(l string) bool {
		if strings.HasPrefix(l, "done ") {
			done++
		}
		return done >= n/3
	})
	if err := c1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = c1.cmd.Wait()
	t.Logf("killed the gateway after %d of %d lights were done", done, n)

	c2 := start()
	t.Cleanup(func() { _ = c2.cmd.Process.Kill(); _ = c2.cmd.Wait() })
	waitLine(c2, func(l string) bool { return strings.HasPrefix(l, "resumed ") })
	fin := waitLine(c2, func(l string) bool { return strings.HasPrefix(l, "finished ") })
	var okN, failN int
	fmt.Sscanf(fin, "finished %d %d", &okN, &failN)
	t.Logf("after restart: %d done, %d failed", okN, failN)
	if err := c2.cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	updated := 0
	for _, l := range lights {
		if a := l.dev.Applied(); a > 1 {
			t.Fatalf("%s updated %d times", l.c.Name(), a)
		} else if a == 1 {
			updated++
			if v, _ := l.c.Get(path.Resource(3, 0, 3)); v.Str() != "9.0" {
				t.Fatalf("%s reports %q", l.c.Name(), v.Str())
			}
		}
	}
	// A light whose Execute may have been lost in the crash is reported
	// failed, never updated again; at most Concurrency of them.
	if okN+failN != n || failN > 3 || updated < okN {
		t.Fatalf("done %d failed %d updated %d", okN, failN, updated)
	}
}
