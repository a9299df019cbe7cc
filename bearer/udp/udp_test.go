package udp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"pgregory.net/rapid"
)

// testDeadline bounds every wait in these tests; generous for a loaded machine.
const testDeadline = 10 * time.Second

// stringAddr is a net.Addr that is not a *net.UDPAddr.
type stringAddr struct{ network, s string }

func (a stringAddr) Network() string { return a.network }
func (a stringAddr) String() string  { return a.s }

func listen(t *testing.T, network, address string, opts ...Option) *Conn {
	t.Helper()
	c, err := Listen(network, address, opts...)
	if err != nil {
		if strings.Contains(address, "::1") {
			t.Skipf("no IPv6 loopback: %v", err)
		}
		t.Fatalf("Listen(%s, %s): %v", network, address, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func readOne(t *testing.T, c *Conn) ([]byte, net.Addr) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(testDeadline)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, c.Params().MaxDatagram+1)
	n, from, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatalf("ReadFrom: %v", err)
	}
	return buf[:n], from
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name, network, address string
		// addrOf turns the server's address into what the client writes to.
		addrOf func(*net.UDPAddr) net.Addr
	}{
		{"ipv4 UDPAddr", "udp4", "127.0.0.1:0", func(a *net.UDPAddr) net.Addr { return a }},
		{"ipv4 on udp", "udp", "127.0.0.1:0", func(a *net.UDPAddr) net.Addr { return a }},
		{"ipv4 string addr", "udp4", "127.0.0.1:0", func(a *net.UDPAddr) net.Addr { return stringAddr{"udp", a.String()} }},
		{"ipv6 UDPAddr", "udp6", "[::1]:0", func(a *net.UDPAddr) net.Addr { return a }},
		{"ipv6 string addr", "udp6", "[::1]:0", func(a *net.UDPAddr) net.Addr { return stringAddr{"custom", a.String()} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := listen(t, tt.network, tt.address)
			cli := listen(t, tt.network, tt.address)
			to := tt.addrOf(srv.LocalAddr().(*net.UDPAddr))
			msg := []byte{0x40, 0x01, 0x12, 0x34} // CON GET, MID 0x1234
			if n, err := cli.WriteTo(msg, to); err != nil || n != len(msg) {
				t.Fatalf("WriteTo = %d, %v", n, err)
			}
			got, from := readOne(t, srv)
			if !bytes.Equal(got, msg) {
				t.Fatalf("got %x, want %x", got, msg)
			}
			fromUDP, ok := from.(*net.UDPAddr)
			if !ok {
				t.Fatalf("from is %T, want *net.UDPAddr", from)
			}
			if fromUDP.AddrPort() != cli.LocalAddr().(*net.UDPAddr).AddrPort() {
				t.Fatalf("from %v, want %v", from, cli.LocalAddr())
			}
			// Reply to the address ReadFrom returned.
			if _, err := srv.WriteTo([]byte("ack"), from); err != nil {
				t.Fatal(err)
			}
			if got, _ := readOne(t, cli); string(got) != "ack" {
				t.Fatalf("reply %q", got)
			}
			st := srv.Stats()
			if st.DatagramsIn != 1 || st.BytesIn != 4 || st.DatagramsOut != 1 || st.BytesOut != 3 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestDialOnlyPeer(t *testing.T) {
	srv := listen(t, "udp4", "127.0.0.1:0")
	stranger := listen(t, "udp4", "127.0.0.1:0")
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	cli, err := Dial(ctx, "udp", srv.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if cli.RemoteAddr().String() != srv.LocalAddr().String() {
		t.Fatalf("RemoteAddr %v", cli.RemoteAddr())
	}
	// A stranger's datagram is filtered by the kernel; the peer's arrives.
	if _, err := stranger.WriteTo([]byte("stranger"), cli.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.WriteTo([]byte("peer"), cli.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	got, from := readOne(t, cli)
	if string(got) != "peer" || from.String() != srv.LocalAddr().String() {
		t.Fatalf("got %q from %v", got, from)
	}
	// WriteTo the peer works with either address form; others are refused.
	if _, err := cli.WriteTo([]byte("a"), srv.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.WriteTo([]byte("b"), stringAddr{"udp", srv.LocalAddr().String()}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"a", "b"} {
		if got, _ := readOne(t, srv); string(got) != want {
			t.Fatalf("server got %q want %q", got, want)
		}
	}
	_, err = cli.WriteTo([]byte("c"), stranger.LocalAddr())
	if !errors.Is(err, ErrWrongPeer) {
		t.Fatalf("write to stranger: %v, want ErrWrongPeer", err)
	}
	if st := cli.Stats(); st.BadAddr != 1 || st.DatagramsOut != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDialRefusedIsSkipped(t *testing.T) {
	// A port nobody listens on: the kernel answers with ICMP port
	// unreachable, which a connected socket reports as ECONNREFUSED on the
	// next read. ReadFrom must absorb it and keep waiting for real data.
	dead := listen(t, "udp4", "127.0.0.1:0")
	deadAddr := dead.LocalAddr().String()
	_ = dead.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	cli, err := Dial(ctx, "udp4", deadAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.WriteTo([]byte("x"), cli.RemoteAddr()); err != nil {
		t.Fatal(err)
	}
	// Wait until the refusal has been seen (bounded), using a short read
	// deadline per attempt.
	deadline := time.Now().Add(testDeadline)
	buf := make([]byte, 64)
	for cli.Stats().Refused == 0 && time.Now().Before(deadline) {
		_ = cli.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, _, err := cli.ReadFrom(buf)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("ReadFrom: %v, want timeout", err)
		}
		if cli.Stats().Refused == 0 {
			_, _ = cli.WriteTo([]byte("x"), cli.RemoteAddr())
		}
	}
	if cli.Stats().Refused == 0 {
		t.Fatal("ECONNREFUSED never observed")
	}
}

func TestOversize(t *testing.T) {
	p := bearer.UDPParams("udp")
	p.MaxDatagram = 100
	p.PreferredDatagram = 100
	srv := listen(t, "udp4", "127.0.0.1:0")
	cli := listen(t, "udp4", "127.0.0.1:0", WithParams(p))
	if _, err := cli.WriteTo(make([]byte, 100), srv.LocalAddr()); err != nil {
		t.Fatalf("100 bytes: %v", err)
	}
	n, err := cli.WriteTo(make([]byte, 101), srv.LocalAddr())
	if !errors.Is(err, bearer.ErrTooLarge) || n != 0 {
		t.Fatalf("101 bytes: %d, %v; want ErrTooLarge", n, err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) {
		t.Fatalf("error %T is not *net.OpError", err)
	}
	// The default limit is the UDP maximum.
	_, err = srv.WriteTo(make([]byte, 65508), cli.LocalAddr())
	if !errors.Is(err, bearer.ErrTooLarge) {
		t.Fatalf("65508 bytes: %v", err)
	}
	if cli.Stats().TooLarge != 1 || srv.Stats().TooLarge != 1 {
		t.Fatalf("TooLarge counters %+v %+v", cli.Stats(), srv.Stats())
	}
}

func TestLargestDatagram(t *testing.T) {
	srv := listen(t, "udp4", "127.0.0.1:0")
	cli := listen(t, "udp4", "127.0.0.1:0")
	msg := bytes.Repeat([]byte{0xA5}, 65507)
	if _, err := cli.WriteTo(msg, srv.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	got, _ := readOne(t, srv)
	if !bytes.Equal(got, msg) {
		t.Fatalf("got %d bytes", len(got))
	}
}

func TestTruncatedDropped(t *testing.T) {
	srv := listen(t, "udp4", "127.0.0.1:0")
	cli := listen(t, "udp4", "127.0.0.1:0")
	if _, err := cli.WriteTo(make([]byte, 200), srv.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.WriteTo([]byte("small"), srv.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	_ = srv.SetReadDeadline(time.Now().Add(testDeadline))
	buf := make([]byte, 100)
	n, _, err := srv.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if string(buf[:n]) != "small" {
		t.Fatalf("got %q, want the datagram that fits", buf[:n])
	}
	if msgTrunc != 0 && srv.Stats().Truncated != 1 {
		t.Fatalf("Truncated = %d", srv.Stats().Truncated)
	}
}

func TestBadAddr(t *testing.T) {
	c := listen(t, "udp4", "127.0.0.1:0")
	for _, a := range []net.Addr{
		nil,
		(*net.UDPAddr)(nil),
		&net.UDPAddr{Port: 5683},
		stringAddr{"sms", "+15551234567"},
		stringAddr{"udp", "localhost:5683"},
		stringAddr{"udp", "127.0.0.1"},
	} {
		t.Run(fmt.Sprintf("%T/%v", a, a), func(t *testing.T) {
			_, err := c.WriteTo([]byte("x"), a)
			if !errors.Is(err, ErrBadAddr) {
				t.Errorf("WriteTo(%#v) = %v, want ErrBadAddr", a, err)
			}
		})
	}
}

func TestDeadline(t *testing.T) {
	c := listen(t, "udp4", "127.0.0.1:0")
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	start := time.Now()
	_, _, err := c.ReadFrom(make([]byte, 10))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadFrom after deadline: %v", err)
	}
	if time.Since(start) > testDeadline {
		t.Fatal("deadline not honoured")
	}
	// SetDeadline in the past fails reads at once.
	_ = c.SetDeadline(time.Now().Add(-time.Second))
	if _, _, err := c.ReadFrom(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("past deadline: %v", err)
	}
	_ = c.SetWriteDeadline(time.Now().Add(-time.Second))
	if _, err := c.WriteTo([]byte("x"), c.LocalAddr()); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("past write deadline: %v", err)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	c, err := Listen("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, _, err := c.ReadFrom(make([]byte, 10))
		errc <- err
	}()
	// Close while the read is (very likely) blocked; either way it must end.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("ReadFrom after Close: %v", err)
		}
	case <-time.After(testDeadline):
		t.Fatal("ReadFrom not unblocked by Close")
	}
	if _, err := c.WriteTo([]byte("x"), c.LocalAddr()); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("WriteTo after Close: %v", err)
	}
}

func TestOptionsAndErrors(t *testing.T) {
	if _, err := Listen("tcp", "127.0.0.1:0"); err == nil {
		t.Error("tcp accepted")
	}
	if _, err := Dial(context.Background(), "ip4", "127.0.0.1:1"); err == nil {
		t.Error("ip4 accepted")
	}
	bad := bearer.UDPParams("udp")
	bad.MaxRetransmit = -1
	if _, err := Listen("udp", "127.0.0.1:0", WithParams(bad)); !errors.Is(err, bearer.ErrInvalidParams) || !errors.Is(err, ErrInvalidOption) {
		t.Errorf("bad params: %v", err)
	}
	if _, err := Listen("udp", "127.0.0.1:0", WithReadBuffer(-1)); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("negative buffer: %v", err)
	}
	if _, err := Listen("udp", "256.0.0.1:0"); err == nil {
		t.Error("bad address accepted")
	}
	if _, err := New(nil); err == nil {
		t.Error("New(nil) accepted")
	}

	p := bearer.UDPParams("udp-custom")
	p.MaxRetransmit = 2
	c := listen(t, "udp", "127.0.0.1:0", WithParams(p), WithReadBuffer(256<<10), WithWriteBuffer(128<<10), nil)
	if c.Params() != p {
		t.Errorf("Params = %+v", c.Params())
	}
	if c.RemoteAddr() != nil {
		t.Errorf("listening RemoteAddr = %v", c.RemoteAddr())
	}
	r, w := c.BufferSizes()
	t.Logf("requested 256 KiB / 128 KiB, kernel granted SO_RCVBUF=%d SO_SNDBUF=%d", r, w)
	if msgTrunc != 0 && (r < 256<<10 || w < 128<<10) {
		// Linux grants double the request up to rmem_max; anything below
		// the request means the option was not applied.
		if r == 0 || w == 0 {
			t.Errorf("buffer sizes not reported: %d %d", r, w)
		}
	}
	def := listen(t, "udp", "127.0.0.1:0")
	r, w = def.BufferSizes()
	t.Logf("default request %d, kernel granted SO_RCVBUF=%d SO_SNDBUF=%d", DefaultBufferSize, r, w)
	if _, err := def.SyscallConn(); err != nil {
		t.Error(err)
	}
	if def.Params() != bearer.UDPParams("udp") {
		t.Errorf("default params %+v", def.Params())
	}

	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := New(uc, WithReadBuffer(0), WithWriteBuffer(0))
	if err != nil {
		t.Fatal(err)
	}
	if wrapped.RemoteAddr() != nil || wrapped.LocalAddr() != uc.LocalAddr() {
		t.Error("New did not wrap the conn")
	}
	_ = wrapped.Close()
}

func TestDualStackToIPv4(t *testing.T) {
	// A "udp" socket on [::] talks to IPv4 peers through mapped addresses;
	// ReadFrom reports them as plain IPv4 and WriteTo accepts plain IPv4.
	srv, err := Listen("udp", "[::]:0")
	if err != nil {
		t.Skipf("no dual-stack socket: %v", err)
	}
	defer srv.Close()
	port := srv.LocalAddr().(*net.UDPAddr).Port
	cli := listen(t, "udp4", "127.0.0.1:0")
	if _, err := cli.WriteTo([]byte("v4"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}); err != nil {
		t.Fatal(err)
	}
	_, from := readOne(t, srv)
	ap := from.(*net.UDPAddr).AddrPort()
	if !ap.Addr().Is4() {
		t.Fatalf("from %v is not plain IPv4", from)
	}
	if _, err := srv.WriteTo([]byte("back"), stringAddr{"udp", from.String()}); err != nil {
		t.Fatal(err)
	}
	if got, _ := readOne(t, cli); string(got) != "back" {
		t.Fatalf("got %q", got)
	}
}

func TestConcurrentWriters(t *testing.T) {
	srv := listen(t, "udp4", "127.0.0.1:0")
	cli := listen(t, "udp4", "127.0.0.1:0")
	const writers, each = 4, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := cli.WriteTo([]byte{byte(w), byte(i)}, srv.LocalAddr()); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	seen := map[[2]byte]bool{}
	for len(seen) < writers*each {
		got, _ := readOne(t, srv)
		if len(got) != 2 {
			t.Fatalf("got %x", got)
		}
		seen[[2]byte{got[0], got[1]}] = true
	}
	if cli.Stats().DatagramsOut != writers*each {
		t.Fatalf("DatagramsOut %d", cli.Stats().DatagramsOut)
	}
}

func TestAddrPortProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var ip netip.Addr
		if rapid.Bool().Draw(t, "v6") {
			ip = netip.AddrFrom16([16]byte(rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(t, "ip6")))
		} else {
			ip = netip.AddrFrom4([4]byte(rapid.SliceOfN(rapid.Byte(), 4, 4).Draw(t, "ip4")))
		}
		want := netip.AddrPortFrom(ip, rapid.Uint16().Draw(t, "port"))
		if want.Addr().Is4In6() {
			want = netip.AddrPortFrom(want.Addr().Unmap(), want.Port())
		}
		for _, a := range []net.Addr{
			net.UDPAddrFromAddrPort(want),
			stringAddr{"x", want.String()},
			net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom16(want.Addr().As16()), want.Port())),
		} {
			got, err := AddrPort(a)
			if err != nil {
				t.Fatalf("AddrPort(%v): %v", a, err)
			}
			if got != want {
				t.Fatalf("AddrPort(%v) = %v, want %v", a, got, want)
			}
		}
	})
}

func FuzzAddrPort(f *testing.F) {
	for _, s := range []string{
		"127.0.0.1:5683", "[::1]:5684", "[fe80::1%eth0]:1", "[::ffff:10.0.0.1]:5683",
		"+15551234567", "localhost:5683", "", ":", "[::1]", "1.2.3.4:65536", "1.2.3.4:-1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ap, err := AddrPort(stringAddr{"udp", s})
		if err != nil {
			if !errors.Is(err, ErrBadAddr) {
				t.Fatalf("error %v does not wrap ErrBadAddr", err)
			}
			return
		}
		if !ap.IsValid() || ap.Addr().Is4In6() {
			t.Fatalf("AddrPort(%q) = %v", s, ap)
		}
		// What was accepted converts back to the same *net.UDPAddr form.
		again, err := AddrPort(net.UDPAddrFromAddrPort(ap))
		if err != nil || again != ap {
			t.Fatalf("round trip of %v: %v, %v", ap, again, err)
		}
	})
}

func TestForceBuffers(t *testing.T) {
	const want = 16 << 20
	plain := listen(t, "udp", "127.0.0.1:0", WithReadBuffer(want), WithWriteBuffer(want))
	forced := listen(t, "udp", "127.0.0.1:0", WithReadBuffer(want), WithWriteBuffer(want), WithForceBuffers())
	pr, pw := plain.BufferSizes()
	fr, fw := forced.BufferSizes()
	t.Logf("requested %d: plain SO_RCVBUF=%d SO_SNDBUF=%d, forced SO_RCVBUF=%d SO_SNDBUF=%d", want, pr, pw, fr, fw)
	if fr < pr || fw < pw {
		t.Fatalf("forcing shrank the buffers")
	}
	if hasNetAdmin(t) && (fr < want || fw < want) {
		t.Fatalf("with CAP_NET_ADMIN the forced sizes %d/%d are below the request %d", fr, fw, want)
	}
}

// hasNetAdmin reports whether the process has CAP_NET_ADMIN (bit 12 of
// CapEff in /proc/self/status, Linux only).
func hasNetAdmin(t *testing.T) bool {
	if runtime.GOOS != "linux" {
		return false
	}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatalf("CapEff %q: %v", v, err)
			}
			return caps&(1<<12) != 0
		}
	}
	return false
}
