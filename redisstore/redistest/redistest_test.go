//go:build linux

package redistest

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRestartKeepsTheServersOwnPort: while the server is down after Kill,
// its port stays reserved (nobody can bind it; a connection is refused as
// with a free port) and Restart brings back the same server (its AOF data)
// on it.
func TestRestartKeepsTheServersOwnPort(t *testing.T) {
	srv := Start(t, Options{AOF: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if got, err := srv.Do(ctx, "SET", "owner", t.Name()); err != nil || got != "+OK" {
		t.Fatalf("SET: %q %v", got, err)
	}
	srv.Kill()

	t.Run("port reserved while down", func(t *testing.T) {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer syscall.Close(fd)
		err = syscall.Bind(fd, &syscall.SockaddrInet4{Port: srv.port, Addr: [4]byte{127, 0, 0, 1}})
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("bind 127.0.0.1:%d while the server is down: %v, want EADDRINUSE", srv.port, err)
		}
	})
	t.Run("connection refused while down", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", srv.Addr(), time.Second)
		if err == nil {
			c.Close()
			t.Fatal("dial succeeded with the server down")
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial: %v, want connection refused", err)
		}
	})
	srv.Restart()
	if got, err := srv.Do(ctx, "GET", "owner"); err != nil || got != "$"+strconv.Itoa(len(t.Name())) {
		t.Fatalf("GET after restart: %q %v (not the same server's data)", got, err)
	}
}

// TestStartRefusesAForeignServer: when another redis-server took the port
// (bound it by number while ours was down), the restart does not take its
// PING for ours: start fails naming the other process, and Restart works
// once the port is free again.
func TestStartRefusesAForeignServer(t *testing.T) {
	srv := Start(t, Options{})
	srv.Kill()
	foreign := &Server{t: t, bin: srv.bin, dir: t.TempDir(), port: srv.port, hold: -1,
		args: []string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no",
			"--daemonize", "no", "--loglevel", "warning"}}
	foreign.args = append(foreign.args, "--dir", foreign.dir)
	if err := foreign.start(); err != nil {
		t.Fatalf("foreign server on port %d: %v", srv.port, err)
	}
	t.Cleanup(foreign.Stop)
	err := srv.start()
	if err == nil || !strings.Contains(err.Error(), "not ours") {
		t.Fatalf("start with a foreign server on the port: %v, want a refusal naming it", err)
	}
	if srv.pid() != 0 {
		t.Fatal("the refused start left a process recorded")
	}
	foreign.Stop()
	srv.Restart()
	if err := srv.owned(srv.pid()); err != nil {
		t.Fatal(err)
	}
}
