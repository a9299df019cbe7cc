package queue

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const crashEnv = "M2M_QUEUE_CRASH_DB"

// crashDevices plays the ten devices across the crash: it runs each
// request once per attempt token, as a device's CoAP deduplication would.
type crashDevices struct {
	mu     sync.Mutex
	tokens map[string]bool
	runs   map[uint64]int
	dups   int
}

func (c *crashDevices) handle(id uint64, token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tokens[token] {
		c.dups++
		return
	}
	c.tokens[token] = true
	c.runs[id]++
}

// TestCrashChild is the child process of TestCrashExactlyOnce: it queues
// 100 requests for 10 sleeping devices in a bbolt store, wakes the devices
// and drains through an executor that asks the parent (the devices) over
// stdin/stdout. The parent kills it with SIGKILL mid-drain.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("child of TestCrashExactlyOnce")
	}
	store, err := OpenBoltStore(path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	in := bufio.NewReader(os.Stdin)
	var mu sync.Mutex
	exec := ExecutorFunc(func(ctx context.Context, ep string, req *Request) (*Result, error) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(os.Stdout, "EXEC %d %x\n", req.ID, req.Attempt.Token())
		line, err := in.ReadString('\n')
		if err != nil {
			return nil, err
		}
		return &Result{Code: 0x44, Payload: []byte(strings.TrimSpace(line))}, nil
	})
	m, err := New(Config{Store: store, Executor: exec, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		ep := fmt.Sprintf("lamp-%d", i%10)
		kind := []Kind{KindExecute, KindWrite, KindCreate, KindRead}[i%4]
		if _, err := m.Enqueue(context.Background(), Request{Endpoint: ep, Kind: kind, Paths: []string{"/3311/0/5850"}, Payload: []byte{1}}); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Fprintln(os.Stdout, "QUEUED")
	for d := range 10 {
		m.Seen(fmt.Sprintf("lamp-%d", d), time.Hour)
	}
	time.Sleep(time.Minute) // killed long before
	t.Fatal("child was not killed")
}

// A process with 100 requests queued for 10 sleeping devices is killed
// with SIGKILL mid-drain; after reopening the store, all 100 run exactly
// once on the devices.
func TestCrashExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	path := filepath.Join(t.TempDir(), "queue.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	devs := &crashDevices{tokens: map[string]bool{}, runs: map[uint64]int{}}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	const killAt = 40
	execs := 0
	timeout := time.After(60 * time.Second)
	queued := false
loop:
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("child exited early")
			}
			if line == "QUEUED" {
				queued = true
				continue
			}
			var id uint64
			var tok string
			if _, err := fmt.Sscanf(line, "EXEC %d %s", &id, &tok); err != nil {
				continue // test framework output
			}
			execs++
			devs.handle(id, tok)
			if execs == killAt {
				// The device ran it; the answer never reaches the server.
				break loop
			}
			if _, err := io.WriteString(stdin, "ok\n"); err != nil {
				t.Fatal(err)
			}
		case <-timeout:
			t.Fatalf("child stalled after %d executions", execs)
		}
	}
	if !queued {
		t.Fatal("drain began before all were queued")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed = true
	for range lines {
	}

	store, err := OpenBoltStore(path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var ids []uint64
	states := map[State]int{}
	if err := store.ForEach(func(r *Record) error {
		ids = append(ids, r.ID)
		states[r.State]++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 100 {
		t.Fatalf("%d records after the crash, want 100", len(ids))
	}
	if states[StateSending] == 0 {
		t.Fatalf("no request in flight at the crash: %v", states)
	}
	t.Logf("at the crash: %v, %d executions seen by the devices", states, execs)
	exec := ExecutorFunc(func(ctx context.Context, ep string, req *Request) (*Result, error) {
		devs.handle(req.ID, hex.EncodeToString(req.Attempt.Token()))
		return &Result{Code: 0x44}, nil
	})
	m, err := New(Config{Store: store, Executor: exec, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for d := range 10 {
		m.Seen("lamp-"+strconv.Itoa(d), time.Hour)
	}
	for _, id := range ids {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		rec, err := m.Wait(ctx, id)
		cancel()
		if err != nil || rec.State != StateDone {
			t.Fatalf("request %d: %v", id, err)
		}
	}
	devs.mu.Lock()
	defer devs.mu.Unlock()
	for _, id := range ids {
		if devs.runs[id] != 1 {
			t.Errorf("request %d ran %d times", id, devs.runs[id])
		}
	}
	if devs.dups == 0 {
		t.Error("the in-flight request was not re-sent with its attempt token")
	}
	t.Logf("all 100 ran exactly once; %d duplicate(s) answered by device dedup", devs.dups)
}
