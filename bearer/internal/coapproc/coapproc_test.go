package coapproc

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestLogKeepsTail(t *testing.T) {
	var l Log
	chunk := bytes.Repeat([]byte("a"), 1000)
	for range 100 {
		_, _ = l.Write(chunk)
	}
	_, _ = l.Write([]byte("END"))
	s := l.String()
	if !strings.HasSuffix(s, "END") || !strings.HasPrefix(s, "[") {
		t.Fatalf("log does not keep the tail with a drop marker: %.40q...", s)
	}
	if len(s) > logLimit+64 {
		t.Fatalf("log holds %d bytes, limit %d", len(s), logLimit)
	}
}

func TestServerAndClient(t *testing.T) {
	server := LookPath(t, "coap-server-notls")
	client := LookPath(t, "coap-client-notls")
	s := StartServer(t, server, "127.0.0.1")
	if s.Pings < 1 {
		t.Errorf("server ready after %d pings", s.Pings)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// coap-server answers GET / with its banner.
	out, log, err := Run(ctx, 10*time.Second, client, "-B", "5", "coap://"+s.Addr.String()+"/")
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	if !bytes.Contains(out, []byte("libcoap")) {
		t.Fatalf("GET / = %q", out)
	}
	wait := Start(t, ctx, client, "-B", "5", "coap://"+s.Addr.String()+"/")
	if out, err := wait(); err != nil || !bytes.Contains(out, []byte("libcoap")) {
		t.Fatalf("background GET / = %q, %v", out, err)
	}
	s.stop()
	if !s.Exited() {
		t.Fatal("server still running after stop")
	}
}

func TestLookPathSkips(t *testing.T) {
	ok := t.Run("absent", func(t *testing.T) {
		LookPath(t, "no-such-coap-program-xyz")
		t.Error("LookPath did not skip")
	})
	if !ok {
		t.Fatal("subtest failed")
	}
}
