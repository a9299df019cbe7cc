package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// nodeLibVersion is the npm package of the independent LwM2M server the
// proxy is tested against (Telefonica's lwm2m-node-lib).
const nodeLibVersion = "lwm2m-node-lib@1.4.0"

// installNodeLib installs lwm2m-node-lib with npm into a cache directory
// (reused by later runs) and returns its node_modules. It skips the test
// only when node or npm are not installed.
func installNodeLib(t *testing.T) (node, modules string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed (Debian package nodejs)")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm not installed (Debian package npm)")
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "m2mbearer", strings.ReplaceAll(nodeLibVersion, "@", "-"))
	modules = filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "lwm2m-node-lib", "package.json")); err == nil {
		return node, modules
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--no-save", "--prefix", dir, nodeLibVersion)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install %s: %v\n%s", nodeLibVersion, err, out)
	}
	return node, modules
}

// nodeServer is lwm2m-node-lib's server run by testdata/nodelib/server.js.
type nodeServer struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  interface{ Write([]byte) (int, error) }
	mu     sync.Mutex
	events []map[string]any
	answer map[float64]chan map[string]any
	notify chan map[string]any
	nextID float64
}

func startNodeServer(t *testing.T, ctx context.Context) (*nodeServer, int) {
	node, modules := installNodeLib(t)
	script, err := filepath.Abs("testdata/nodelib/server.js")
	if err != nil {
		t.Fatal(err)
	}
	// lwm2m-node-lib sends its requests through its own CoAP proxy at
	// 127.0.0.1:<its configured port>, so it needs a real port number.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	cmd := exec.CommandContext(ctx, node, "--no-warnings", script, strconv.Itoa(port))
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &nodeServer{t: t, cmd: cmd, stdin: stdin, answer: map[float64]chan map[string]any{}, notify: make(chan map[string]any, 64)}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("lwm2m-node-lib server stderr:\n%s", stderr.String())
		}
	})
	started := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			if ev, ok := m["event"].(string); ok {
				switch ev {
				case "started":
					started <- int(m["port"].(float64))
				case "notify":
					select {
					case s.notify <- m:
					default:
					}
				}
				s.mu.Lock()
				s.events = append(s.events, m)
				s.mu.Unlock()
				continue
			}
			id, _ := m["id"].(float64)
			s.mu.Lock()
			c := s.answer[id]
			s.mu.Unlock()
			if c != nil {
				c <- m
			}
		}
	}()
	select {
	case port := <-started:
		return s, port
	case <-time.After(60 * time.Second):
		t.Fatalf("lwm2m-node-lib server did not start: %s", stderr.String())
	}
	return nil, 0
}

// do sends one command and waits for its answer.
func (s *nodeServer) do(t *testing.T, op, ep, p, value string) (string, error) {
	t.Helper()
	s.mu.Lock()
	s.nextID++
	id := s.nextID
	c := make(chan map[string]any, 1)
	s.answer[id] = c
	s.mu.Unlock()
	b, _ := json.Marshal(map[string]any{"id": id, "op": op, "ep": ep, "path": p, "value": value})
	if _, err := s.stdin.Write(append(b, '\n')); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-c:
		if m["ok"] != true {
			return "", fmt.Errorf("%s %s %s: %v", op, ep, p, m["error"])
		}
		v, _ := m["value"].(string)
		return v, nil
	case <-time.After(60 * time.Second):
		t.Fatalf("no answer to %s %s %s", op, ep, p)
	}
	return "", nil
}

// waitEvent waits for an event of kind for ep.
func (s *nodeServer) waitEvent(kind, ep string, timeout time.Duration) map[string]any {
	s.t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		s.mu.Lock()
		for _, e := range s.events {
			if e["event"] == kind && e["ep"] == ep {
				s.mu.Unlock()
				return e
			}
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.t.Fatalf("no %s event for %s from lwm2m-node-lib; events: %v", kind, ep, s.events)
	return nil
}

// TestProxyAgainstNodeLib runs the proxy against an independent LwM2M
// server, Telefonica's lwm2m-node-lib (npm, installed at test time): the
// SMS-only lights register through the proxy as UDP clients, and the
// external server reads, writes, executes, observes and discovers them;
// a gateway shutdown de-registers them there.
func TestProxyAgainstNodeLib(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	ns, port := startNodeServer(t, ctx)
	g := startProxy(t, ctx, fmt.Sprintf("127.0.0.1:%d", port))
	for _, ep := range []string{"light-sms-1", "light-sms-2"} {
		reg := ns.waitEvent("registration", ep, 60*time.Second)
		if reg["binding"] != "U" {
			t.Fatalf("%s registered upstream with binding %v, want U", ep, reg["binding"])
		}
	}
	steps := []struct {
		name, op, ep, path, value, want string
	}{
		{"read", "read", "light-sms-1", "/3/0/2", "", "light-sms-1"},
		{"read the other light", "read", "light-sms-2", "/3/0/2", "", "light-sms-2"},
		{"read binding", "read", "light-sms-1", "/1/0/7", "", "U"},
		{"write", "write", "light-sms-1", "/3311/0/5851", "40", ""},
		{"read back", "read", "light-sms-1", "/3311/0/5851", "", "40"},
		{"execute", "execute", "light-sms-1", "/3/0/4", "", ""},
		{"discover", "discover", "light-sms-1", "/3/0", "", "</3/0/4>"},
		{"observe", "observe", "light-sms-1", "/3311/0/5851", "", "40"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			got, err := ns.do(t, st.op, st.ep, st.path, st.value)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(got, st.want) {
				t.Fatalf("%s %s: %q, want %q", st.op, st.path, got, st.want)
			}
		})
	}
	// A change of the observed dimmer is notified through the proxy.
	if _, err := ns.do(t, "write", "light-sms-1", "/3311/0/5851", "55"); err != nil {
		t.Fatal(err)
	}
	for notified := false; !notified; {
		select {
		case n := <-ns.notify:
			notified = n["path"] == "/3311/0/5851" && n["value"] == "55"
		case <-time.After(60 * time.Second):
			t.Fatal("no notification of /3311/0/5851 = 55")
		}
	}
	if st := g.proxy.stats(); st.Registered != 2 {
		t.Fatalf("proxy knows %d lights registered upstream: %+v", st.Registered, st)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	if err := g.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	for _, ep := range []string{"light-sms-1", "light-sms-2"} {
		ns.waitEvent("unregistration", ep, 15*time.Second)
	}
}
