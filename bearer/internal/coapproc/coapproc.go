package coapproc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// StartTimeout bounds how long StartServer waits for a server to answer.
const StartTimeout = 15 * time.Second

// logLimit is how many bytes of a program's output are kept.
const logLimit = 64 << 10

// LookPath returns the path of the first of names found on PATH, or skips
// the test when none is installed.
func LookPath(t testing.TB, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	t.Skipf("none of %v installed (Debian package libcoap3-bin)", names)
	return ""
}

// FreeUDPPort returns a UDP port on host that was free a moment ago.
// libcoap's servers also bind the next port (port+1, their DTLS endpoint,
// even when no key is given), so StartServer uses freeUDPPortPair.
func FreeUDPPort(t testing.TB, host string) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("coapproc: no free UDP port on %s: %v", host, err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	_ = pc.Close()
	return port
}

// freeUDPPortPair returns a port p on host such that p and p+1 were both
// free a moment ago: coap-server-* binds p for CoAP and p+1 for CoAPS.
func freeUDPPortPair(host string) (int, error) {
	var lastErr error
	for range 20 {
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
		if err != nil {
			return 0, fmt.Errorf("no free UDP port on %s: %w", host, err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		next, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(port+1)))
		_ = pc.Close()
		if err != nil {
			lastErr = err
			continue
		}
		_ = next.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no free pair of UDP ports on %s: %w", host, lastErr)
}

// bindFailed reports whether a server's output says one of its endpoints
// could not bind (another process took the port between the choice and
// the start): its plain endpoint may still answer pings.
func bindFailed(out string) bool {
	return strings.Contains(out, "Address already in use") || strings.Contains(out, "cannot create")
}

// Log is a concurrency-safe buffer that keeps the last logLimit bytes
// written to it.
type Log struct {
	mu      sync.Mutex
	buf     []byte
	dropped int
}

// Write implements io.Writer.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if over := len(l.buf) - logLimit; over > 0 {
		l.dropped += over
		l.buf = append(l.buf[:0], l.buf[over:]...)
	}
	return len(p), nil
}

// String returns the kept output.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dropped > 0 {
		return fmt.Sprintf("[%d bytes dropped]\n%s", l.dropped, l.buf)
	}
	return string(l.buf)
}

// Server is a running libcoap server.
type Server struct {
	// Addr is the server's plain CoAP address.
	Addr *net.UDPAddr
	// Log holds the server's output.
	Log *Log
	// Pings is the number of CoAP pings StartServer sent that the server
	// may have received (it answers each with an RST); usually 1, more on
	// a slow machine. Informative: libcoap can lose a ping sent just after
	// it bound its port.
	Pings int

	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// StartServer starts binary (a coap-server-* program) on a free port of host
// ("127.0.0.1" or "::1") with the extra args, waits until it answers a CoAP
// ping, and stops it when the test ends. If the port is taken in between,
// it retries with another port a few times.
func StartServer(t testing.TB, binary, host string, args ...string) *Server {
	t.Helper()
	var lastErr error
	for range 3 {
		s, err := startServer(t, binary, host, args)
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("coapproc: %v", lastErr)
	return nil
}

func startServer(t testing.TB, binary, host string, args []string) (*Server, error) {
	port, err := freeUDPPortPair(host)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	full := append([]string{"-A", host, "-p", strconv.Itoa(port)}, args...)
	cmd := exec.CommandContext(ctx, binary, full...)
	s := &Server{
		Addr:   &net.UDPAddr{IP: net.ParseIP(host), Port: port},
		Log:    &Log{},
		cancel: cancel,
		done:   make(chan struct{}),
	}
	cmd.Stdout, cmd.Stderr = s.Log, s.Log
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	if err := s.waitReady(StartTimeout); err != nil {
		s.stop()
		return nil, fmt.Errorf("%s %v: %w\n%s", binary, full, err, s.Log)
	}
	if out := s.Log.String(); bindFailed(out) {
		s.stop()
		return nil, fmt.Errorf("%s %v: an endpoint could not bind\n%s", binary, full, out)
	}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", binary, s.Log)
		}
	})
	return s, nil
}

// stop kills the process and waits for it (bounded by cmd.WaitDelay).
func (s *Server) stop() {
	s.cancel()
	<-s.done
}

// Exited reports whether the server process has ended.
func (s *Server) Exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// waitReady pings the server from a connected socket until it answers with
// RST, the timeout passes or the process exits. Before the server binds its
// port a ping is refused at once (ICMP port unreachable, ECONNREFUSED) and
// sent again shortly; an unanswered ping is repeated every half second.
func (s *Server) waitReady(timeout time.Duration) error {
	conn, err := net.DialUDP("udp", nil, s.Addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 64)
	for mid := uint16(1); time.Now().Before(deadline); mid++ {
		if s.Exited() {
			return fmt.Errorf("exited before answering: %v", s.err)
		}
		ping := []byte{0x40, 0x00, 0, 0} // CON, empty, MID
		binary.BigEndian.PutUint16(ping[2:], mid)
		if _, err := conn.Write(ping); err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				time.Sleep(10 * time.Millisecond) // polling interval while the server starts
				continue
			}
			return err
		}
		_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			n, err := conn.Read(buf)
			if errors.Is(err, syscall.ECONNREFUSED) {
				time.Sleep(10 * time.Millisecond) // not bound yet
				break
			}
			if err != nil {
				s.Pings++ // timed out: it may have reached the server
				break
			}
			// RST (type 3), empty, answering this ping or a late one.
			if rmid := binary.BigEndian.Uint16(buf[2:4]); n == 4 && buf[0]>>4 == 0x7 && buf[1] == 0 && rmid >= 1 && rmid <= mid {
				s.Pings++
				return nil
			}
		}
	}
	return fmt.Errorf("no answer to CoAP ping within %v", timeout)
}

// Run runs binary (a coap-client-* program) with args, bounded by timeout,
// and returns its standard output and its combined output for messages.
// A non-zero exit is an error.
func Run(ctx context.Context, timeout time.Duration, binary string, args ...string) (stdout []byte, log string, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var out bytes.Buffer
	l := &Log{}
	cmd.Stdout = &out
	cmd.Stderr = l
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s %v: %w (%v)", binary, args, ctx.Err(), err)
	} else if err != nil {
		err = fmt.Errorf("%s %v: %w", binary, args, err)
	}
	return out.Bytes(), l.String(), err
}

// Start starts binary (a coap-client-* program, e.g. an observer) in the
// background. The returned wait function waits for it to exit (bounded by
// ctx) and returns its standard output; the process is killed when ctx ends
// or the test ends.
func Start(t testing.TB, ctx context.Context, binary string, args ...string) (wait func() ([]byte, error)) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(ctx, binary, args...)
	out := &Log{}
	l := &Log{}
	cmd.Stdout, cmd.Stderr = out, l
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("coapproc: start %s: %v", binary, err)
	}
	done := make(chan struct{})
	var werr error
	go func() {
		werr = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("%s %v stderr:\n%s", binary, args, l)
		}
	})
	return func() ([]byte, error) {
		<-done
		cancel()
		if werr != nil {
			return []byte(out.String()), fmt.Errorf("%s %v: %w\n%s", binary, args, werr, l)
		}
		return []byte(out.String()), nil
	}
}
