package outbox

import (
	"bufio"
	"context"
	"fmt"
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

// logSender "sends" a TPDU by appending "id:seg" to a file and fsyncing it:
// the stand-in for a modem that accepted the segment.
type logSender struct {
	mu    sync.Mutex
	f     *os.File
	mr    uint8
	delay time.Duration
}

func (s *logSender) SendTPDU(ctx context.Context, from, to string, tpdu []byte) (string, uint8, error) {
	time.Sleep(s.delay)
	s.mu.Lock()
	defer s.mu.Unlock()
	// tpdu = "E<id>:<seg>" (see crashEntry)
	if _, err := fmt.Fprintf(s.f, "%s\n", tpdu[1:]); err != nil {
		return "", 0, err
	}
	if err := s.f.Sync(); err != nil {
		return "", 0, err
	}
	s.mr++
	return "+15559999", s.mr, nil
}

func crashEntry(n, segs int) *Entry {
	e := &Entry{To: fmt.Sprintf("+1555%04d", n%7)}
	for s := 0; s < segs; s++ {
		e.Segments = append(e.Segments, Segment{TPDU: []byte(fmt.Sprintf("E%d:%d", n, s))})
	}
	return e
}

// TestMain runs crashChild instead of the tests when the process is the
// child that TestKill9 starts (OUTBOX_CRASH_DIR set).
func TestMain(m *testing.M) {
	if dir := os.Getenv("OUTBOX_CRASH_DIR"); dir != "" {
		if err := crashChild(dir); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(2)
		}
	}
	os.Exit(m.Run())
}

// crashChild is the child process of TestKill9: it stores entries,
// printing each one's number once Enqueue returned, and sends them slowly
// until it is killed. It returns only on error.
func crashChild(dir string) error {
	ob, err := Open(filepath.Join(dir, "outbox.db"))
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, "sent.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	w, err := NewWorker(ob, &logSender{f: f, delay: 2 * time.Millisecond}, WorkerConfig{MaxInFlight: 4, Poll: 5 * time.Millisecond})
	if err != nil {
		return err
	}
	go w.Run(context.Background())
	for n := 0; n < 60; n++ {
		if _, err := ob.Enqueue(crashEntry(n, 3)); err != nil {
			return err
		}
		fmt.Printf("stored %d\n", n)
	}
	select {} // wait for SIGKILL
}

// TestKill9 kills a process that is sending from the outbox with SIGKILL,
// restarts from the same file, and checks that every entry the child
// acknowledged is sent, each segment exactly once apart from at most one
// segment per in-flight send at the moment of the kill (sent again with the
// same bytes, which a receiver's reassembler drops as a duplicate).
func TestKill9(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "OUTBOX_CRASH_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stored := map[int]bool{}
	sc := bufio.NewScanner(out)
	deadline := time.After(30 * time.Second)
	lines := make(chan string)
	go func() {
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	logPath := filepath.Join(dir, "sent.log")
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("child exited early")
			}
			if n, found := strings.CutPrefix(l, "stored "); found {
				v, _ := strconv.Atoi(n)
				stored[v] = true
			}
		case <-tick.C:
			// The child may have stored all it will before 20 segments
			// are out: the condition is polled, not only checked per line.
		case <-deadline:
			cmd.Process.Kill()
			t.Fatal("child too slow")
		}
		// Kill once some entries are stored and some segments are out,
		// so both stored-but-unsent and half-sent entries exist.
		if b, _ := os.ReadFile(logPath); len(stored) >= 30 && strings.Count(string(b), "\n") >= 20 {
			break wait
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	for range lines {
	}
	before, _ := os.ReadFile(logPath)
	sentBefore := strings.Count(string(before), "\n")

	ob, err := Open(filepath.Join(dir, "outbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	t.Logf("killed with %d entries acknowledged, %d segments sent; %d entries left (%+v)",
		len(stored), sentBefore, ob.Stats().Entries, ob.Stats())
	f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	runWorker(t, ob, &logSender{f: f}, WorkerConfig{MaxInFlight: 4}, func() bool { return ob.Stats().Entries == 0 })

	b, _ := os.ReadFile(logPath)
	count := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		count[l]++
	}
	dups := 0
	for n := range stored {
		for s := 0; s < 3; s++ {
			k := fmt.Sprintf("%d:%d", n, s)
			switch c := count[k]; {
			case c == 0:
				t.Errorf("acknowledged entry %d segment %d never sent", n, s)
			case c > 2:
				t.Errorf("segment %s sent %d times", k, c)
			case c == 2:
				dups++
			}
		}
	}
	if dups > 4 { // at most one per in-flight send (MaxInFlight 4)
		t.Errorf("%d segments sent twice; at most 4 were in flight at the kill", dups)
	}
	t.Logf("after restart: %d distinct segments sent, %d sent twice (in flight at the kill)", len(count), dups)
}
