//go:build linux

package redistest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
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

// Server is a redis-server process owned by a test.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	hold int // fd of the socket reserving port (bound, never listening)
	args []string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Options configure Start.
type Options struct {
	// AOF turns on the append-only file with appendfsync always (the
	// production setting of deploy/redis.conf); off: no persistence at all.
	AOF bool
	// Extra are more redis-server arguments ("--maxmemory", "10mb").
	Extra []string
}

// Start starts redis-server on 127.0.0.1 and a free port, in a temporary
// directory, and stops it (SIGTERM, then SIGKILL) when the test ends. It
// skips the test when redis-server is not installed.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed (Debian package redis-server; .ci/run installs it)")
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir(), hold: -1}
	s.args = []string{"--bind", "127.0.0.1", "--dir", s.dir, "--save", "", "--protected-mode", "no",
		"--daemonize", "no", "--loglevel", "warning", "--logfile", filepath.Join(s.dir, "redis.log")}
	if o.AOF {
		s.args = append(s.args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		s.args = append(s.args, "--appendonly", "no")
	}
	s.args = append(s.args, o.Extra...)
	var lastErr error
	for range 5 {
		if s.hold, s.port, err = reservePort(); err != nil {
			t.Fatal(err)
		}
		if lastErr = s.start(); lastErr == nil {
			t.Cleanup(s.release)
			t.Cleanup(s.Stop) // runs first: the port is held until the server is gone
			return s
		}
		s.release()
	}
	t.Fatalf("redistest: redis-server did not start: %v", lastErr)
	return nil
}

// reservePort binds a TCP socket to 127.0.0.1 and a port the kernel picks,
// with SO_REUSEADDR, and never listens on it. It holds the port for the
// Server's whole life, across Kill and Restart: the kernel hands a port
// with a bound socket to no one asking for "port 0" (another test's
// server, any client's connect), while redis-server, which sets
// SO_REUSEADDR too, may still bind and listen on it (Linux allows that
// beside a non-listening socket). A connection to the port while the
// server is down is refused, as with a free port. Without it, a port
// freed by Kill could be handed to another test's redis-server, which
// then answered the restart's PING (TestRedisRestartLosesNothing's flake).
func reservePort() (fd, port int, err error) {
	fd, err = syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, 0, fmt.Errorf("redistest: reserve a port: %w", err)
	}
	if err = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err == nil {
		err = syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}})
	}
	var sa syscall.Sockaddr
	if err == nil {
		sa, err = syscall.Getsockname(fd)
	}
	if err != nil {
		_ = syscall.Close(fd)
		return -1, 0, fmt.Errorf("redistest: reserve a port: %w", err)
	}
	return fd, sa.(*syscall.SockaddrInet4).Port, nil
}

// release closes the socket reserving the port.
func (s *Server) release() {
	if s.hold >= 0 {
		_ = syscall.Close(s.hold)
		s.hold = -1
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	args := append([]string{"--port", strconv.Itoa(s.port)}, s.args...)
	cmd := exec.Command(s.bin, args...)
	// Pdeathsig: a test binary killed by its timeout takes the server along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("redis-server exited: %v; log: %s", err, s.logTail())
		default:
		}
		if s.pingLocked() == nil {
			// PING proves a server answers, not that it is ours: check
			// its process id.
			if err := s.owned(cmd.Process.Pid); err != nil {
				_ = cmd.Process.Kill()
				<-exited
				return err
			}
			s.cmd = cmd // the goroutine above reaps it
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-exited
	return fmt.Errorf("redis-server not answering on port %d; log: %s", s.port, s.logTail())
}

// pingLocked sends PING and waits for +PONG (a server loading its AOF
// answers -LOADING).
func (s *Server) pingLocked() error {
	c, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// owned checks that the server answering on the port is process pid
// (INFO server's process_id), not another one that took the port.
func (s *Server) owned(pid int) error {
	c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("INFO server\r\n")); err != nil {
		return err
	}
	r := bufio.NewReader(c)
	head, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(head, "$")))
	if !strings.HasPrefix(head, "$") || err != nil || n < 0 || n > 1<<16 {
		return fmt.Errorf("redistest: INFO server answered %q", strings.TrimSpace(head))
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return err
	}
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			if v != strconv.Itoa(pid) {
				return fmt.Errorf("redistest: port %d is answered by redis-server pid %s, not ours (pid %d); log: %s",
					s.port, v, pid, s.logTail())
			}
			return nil
		}
	}
	return fmt.Errorf("redistest: INFO server has no process_id")
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL is redis://127.0.0.1:port/0.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Dir is the server's working directory (its AOF and log).
func (s *Server) Dir() string { return s.dir }

// pid returns the running process, or 0.
func (s *Server) pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Kill SIGKILLs the server (no shutdown, no final fsync) and waits until
// its port is closed.
func (s *Server) Kill() {
	s.signal(syscall.SIGKILL)
}

func (s *Server) signal(sig syscall.Signal) {
	pid := s.pid()
	if pid == 0 {
		return
	}
	_ = syscall.Kill(pid, sig)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.mu.Lock()
	s.cmd = nil
	s.mu.Unlock()
}

// Restart starts the server again on the same port and directory (after
// Kill or Stop), waiting until it answers PING (its AOF loaded) and checking
// the server answering is the one it started. The port stayed reserved
// (reservePort) while the server was down.
func (s *Server) Restart() {
	s.t.Helper()
	var err error
	for range 50 {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond) // the port may linger a moment
	}
	s.t.Fatalf("redistest: restart: %v", err)
}

// Stop ends the server: SIGTERM, then SIGKILL after 5 s.
func (s *Server) Stop() {
	pid := s.pid()
	if pid == 0 {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			s.mu.Lock()
			s.cmd = nil
			s.mu.Unlock()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.Kill()
}

// Do sends one command (inline form, arguments without spaces) and returns
// the first line of the answer: a small client for tests that must not
// depend on the code under test (CONFIG, INFO, FLUSHALL, DEBUG).
func (s *Server) Do(ctx context.Context, args ...string) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", s.Addr())
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(strings.Join(args, " ") + "\r\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}
