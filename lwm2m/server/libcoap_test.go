package server

import (
	"context"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestLibcoapRegisterUpdate has libcoap's command-line client send a raw
// Register and an Update to the server over loopback UDP, both from one
// local port (a NoSec registration is updated only from its source), and
// an Update from another port, refused with 4.04.
func TestLibcoapRegisterUpdate(t *testing.T) {
	bin, err := exec.LookPath("coap-client-notls")
	if err != nil {
		t.Skip("coap-client-notls (Debian libcoap3-bin) not installed")
	}
	f := newFixture(t)
	sub := f.srv.Subscribe(8)
	run := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", bin, args, err, out)
		}
		return string(out)
	}
	base := "coap://" + f.addr.String()
	port := freeUDPPort(t)
	out := run("-v", "6", "-B", "20", "-p", port, "-m", "post", "-t", "40", "-e", "</1/0>,</3/0>", base+"/rd?ep=x&lt=300&lwm2m=1.1&b=U")
	t.Logf("register:\n%s", out)
	ev := waitEvent(t, sub, Registered)
	reg := ev.Registration
	if reg.Endpoint != "x" || reg.Lifetime != 300 || len(reg.Objects) != 2 {
		t.Fatalf("registration %+v", reg)
	}
	if !strings.Contains(out, "c:2.01") || !strings.Contains(out, "Location-Path:rd, Location-Path:"+reg.Location()[4:]+" ]") {
		t.Fatalf("coap-client did not show 2.01 with the location %s:\n%s", reg.Location(), out)
	}
	out = run("-v", "6", "-B", "20", "-p", freeUDPPort(t), "-m", "post", base+reg.Location()+"?lt=600")
	t.Logf("update from another port:\n%s", out)
	if !strings.Contains(out, "c:4.04") {
		t.Fatalf("coap-client did not show 4.04:\n%s", out)
	}
	out = run("-v", "6", "-B", "20", "-p", port, "-m", "post", base+reg.Location()+"?lt=600")
	t.Logf("update:\n%s", out)
	if !strings.Contains(out, "c:2.04") {
		t.Fatalf("coap-client did not show 2.04:\n%s", out)
	}
	ev = waitEvent(t, sub, Updated)
	if ev.Registration.Lifetime != 600 {
		t.Fatalf("updated %+v", ev.Registration)
	}
}

// freeUDPPort returns a loopback UDP port free a moment ago.
func freeUDPPort(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return strconv.Itoa(c.LocalAddr().(*net.UDPAddr).Port)
}
