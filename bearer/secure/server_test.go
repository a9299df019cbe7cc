package secure

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
)

const testWait = 20 * time.Second // generous: the test machine is loaded

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	t.Cleanup(cancel)
	return ctx
}

// startServer starts a Server on a memNet node "srv" and an echo loop that
// writes every datagram back prefixed with the peer's identity string.
func startServer(t *testing.T, n *memNet, cfg *Config) *Server {
	t.Helper()
	return startServerOn(t, n.attach("srv", memParams()), cfg)
}

// startServerOn is startServer on a given inner bearer.
func startServerOn(t *testing.T, inner bearer.Bearer, cfg *Config) *Server {
	t.Helper()
	s, err := NewServer(inner, cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			k, addr, err := s.ReadFrom(buf)
			if err != nil {
				return
			}
			reply := append([]byte(bearer.PeerIdentity(addr).String()+"|"), buf[:k]...)
			_, _ = s.WriteTo(reply, addr)
		}
	}()
	t.Cleanup(func() {
		_ = s.Close()
		<-done
	})
	return s
}

func dial(t *testing.T, n *memNet, name string, cfg *Config) (*Conn, error) {
	t.Helper()
	c, err := Dial(testCtx(t), n.attach(name, memParams()), memAddr("srv"), cfg)
	if err == nil {
		t.Cleanup(func() { _ = c.Close() })
	}
	return c, err
}

// roundTrip sends msg and returns the echo.
func roundTrip(t *testing.T, c *Conn, msg string) string {
	t.Helper()
	if _, err := c.WriteTo([]byte(msg), memAddr("srv")); err != nil {
		t.Fatalf("write: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(testWait))
	buf := make([]byte, 2048)
	k, addr, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if addr.String() != "srv" || addr.Network() != "mem" {
		t.Fatalf("reply from %v", addr)
	}
	return string(buf[:k])
}

func TestModes(t *testing.T) {
	pki := newPKI(t)
	devKey, srvKey := newKey(t), newKey(t)
	devRPK, err := NewRawKeyCertificate(devKey)
	if err != nil {
		t.Fatal(err)
	}
	srvRPK, err := NewRawKeyCertificate(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	devSPKI, _ := PublicKeyInfo(devKey.Public())
	srvSPKI, _ := PublicKeyInfo(srvKey.Public())

	tests := []struct {
		name      string
		srv, cli  *Config
		wantID    string // identity string the server sees
		wantSuite string
		srvMode   string // identity mode the client sees
	}{
		{
			name:      "psk",
			srv:       &Config{PSKLookup: pskLookup},
			cli:       &Config{PSKIdentity: []byte("dev-1"), PSKKey: testPSKs["dev-1"]},
			wantID:    "psk:dev-1",
			wantSuite: "TLS_PSK_WITH_AES_128_CCM_8",
			srvMode:   "psk",
		},
		{
			name:      "x509",
			srv:       &Config{Certificate: &pki.server, RootCAs: pki.pool},
			cli:       &Config{Certificate: &pki.client, RootCAs: pki.pool, ServerName: "lwm2m.example"},
			wantID:    "x509:91-byte key",
			wantSuite: "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8",
			srvMode:   "x509",
		},
		{
			name:      "rpk",
			srv:       &Config{Certificate: &srvRPK, VerifyRawKey: TrustKeys(devSPKI)},
			cli:       &Config{Certificate: &devRPK, VerifyRawKey: TrustKeys(srvSPKI)},
			wantID:    "rpk:91-byte key",
			wantSuite: "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8",
			srvMode:   "rpk",
		},
		{
			name:      "psk and certificates on one server, psk client",
			srv:       &Config{PSKLookup: pskLookup, Certificate: &pki.server, RootCAs: pki.pool},
			cli:       &Config{PSKIdentity: []byte("dev-2"), PSKKey: testPSKs["dev-2"]},
			wantID:    "psk:dev-2",
			wantSuite: "TLS_PSK_WITH_AES_128_CCM_8",
			srvMode:   "psk",
		},
		{
			name:      "psk and certificates on one server, x509 client",
			srv:       &Config{PSKLookup: pskLookup, Certificate: &pki.server, RootCAs: pki.pool},
			cli:       &Config{Certificate: &pki.client, RootCAs: pki.pool},
			wantID:    "x509:91-byte key",
			wantSuite: "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8",
			srvMode:   "x509",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newMemNet()
			s := startServer(t, n, tc.srv)
			c, err := dial(t, n, "dev", tc.cli)
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			if got := c.CipherSuite(); got != tc.wantSuite {
				t.Errorf("suite %s, want %s", got, tc.wantSuite)
			}
			if got := c.Identity().Mode; got != tc.srvMode {
				t.Errorf("client sees server mode %q, want %q", got, tc.srvMode)
			}
			if got, want := roundTrip(t, c, "hello"), tc.wantID+"|hello"; got != want {
				t.Errorf("echo %q, want %q", got, want)
			}
			id, ok := s.Identity(memAddr("dev"))
			if !ok || id.String() != tc.wantID {
				t.Errorf("Server.Identity = %v, %v", id, ok)
			}
			switch tc.srvMode {
			case "rpk":
				if !bytes.Equal(id.PublicKey, devSPKI) || id.Certificates != nil {
					t.Errorf("rpk identity key mismatch or certificates set")
				}
				if !bytes.Equal(c.Identity().PublicKey, srvSPKI) {
					t.Errorf("client: server key mismatch")
				}
			case "x509":
				if len(id.Certificates) != 1 || !bytes.Equal(id.Certificates[0], pki.client.Certificate[0]) {
					t.Errorf("x509 identity chain mismatch")
				}
			}
			st := s.Stats()
			if st.HandshakesOK != 1 || st.Sessions != 1 || st.Handshaking != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestParams(t *testing.T) {
	n := newMemNet()
	s := startServer(t, n, &Config{PSKLookup: pskLookup})
	p := s.Params()
	inner := memParams()
	// 13 header + 8 explicit nonce + 8 CCM_8 tag + 6 CID + 1 inner type.
	if p.Name != "dtls+mem" || p.MaxDatagram != inner.MaxDatagram-36 || p.PreferredDatagram != inner.PreferredDatagram-36 {
		t.Errorf("params %+v", p)
	}
	for _, tc := range []struct {
		cfg  *Config
		want int
	}{
		{&Config{PSKLookup: pskLookup, CIDLength: new(0)}, 29},
		{&Config{PSKLookup: pskLookup, CIDLength: new(4)}, 34},
		{nil, 36},
		{&Config{PSKLookup: pskLookup, CIDLength: new(0), CipherSuites: []CipherSuiteID{0xC0AE}}, 29}, // ECDHE_ECDSA_CCM_8
		{&Config{PSKLookup: pskLookup, CIDLength: new(0), CipherSuites: []CipherSuiteID{0xC02B}}, 37}, // ECDHE_ECDSA_AES_128_GCM
		{&Config{PSKLookup: pskLookup, CIDLength: new(0), CipherSuites: []CipherSuiteID{0xC00A}}, 77}, // ECDHE_ECDSA_AES_256_CBC_SHA
	} {
		t.Run(fmt.Sprintf("overhead %d", tc.want), func(t *testing.T) {
			if got := Overhead(tc.cfg, true); got != tc.want {
				t.Errorf("Overhead(%+v) = %d, want %d", tc.cfg, got, tc.want)
			}
		})
	}
	if p.AckTimeout != inner.AckTimeout || p.MaxRetransmit != inner.MaxRetransmit {
		t.Errorf("transmission parameters changed: %+v", p)
	}
	c, err := dial(t, n, "dev", &Config{PSKIdentity: []byte("dev-1"), PSKKey: testPSKs["dev-1"]})
	if err != nil {
		t.Fatal(err)
	}
	// The real record overhead must not exceed what Params promises.
	big := bytes.Repeat([]byte{'x'}, c.Params().MaxDatagram)
	if _, err := c.WriteTo(big, memAddr("srv")); err != nil {
		t.Fatalf("max-size write: %v", err)
	}
	if _, err := c.WriteTo(append(big, 'y'), memAddr("srv")); !errors.Is(err, bearer.ErrTooLarge) {
		t.Fatalf("oversize write: %v", err)
	}
	// The server's echo adds the identity prefix: too large, refused.
	buf := make([]byte, 2048)
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, _, err := c.ReadFrom(buf); err == nil {
		t.Fatalf("unexpected echo of oversize reply")
	}
	if got := roundTrip(t, c, "ok"); got != "psk:dev-1|ok" {
		t.Fatalf("echo %q", got)
	}
	if _, err := s.WriteTo([]byte("x"), memAddr("nobody")); !errors.Is(err, ErrNoSession) {
		t.Fatalf("write to unknown peer: %v", err)
	}
	if _, err := c.WriteTo([]byte("x"), memAddr("elsewhere")); !errors.Is(err, ErrNoSession) {
		t.Fatalf("client write to other peer: %v", err)
	}
}

func TestWrongCredentials(t *testing.T) {
	pki := newPKI(t)
	other := newPKI(t)
	tests := []struct {
		name     string
		srv, cli *Config
	}{
		{"wrong psk", &Config{PSKLookup: pskLookup}, &Config{PSKIdentity: []byte("dev-1"), PSKKey: []byte("not the right key")}},
		{"unknown identity", &Config{PSKLookup: pskLookup}, &Config{PSKIdentity: []byte("dev-9"), PSKKey: testPSKs["dev-1"]}},
		{"client cert from other CA", &Config{Certificate: &pki.server, RootCAs: pki.pool},
			&Config{Certificate: &other.client, RootCAs: pki.pool}},
		{"server cert from other CA", &Config{Certificate: &other.server, RootCAs: other.pool},
			&Config{Certificate: &other.client, RootCAs: pki.pool}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newMemNet()
			tc.srv.HandshakeTimeout = 2 * time.Second
			s := startServer(t, n, tc.srv)
			tc.cli.HandshakeTimeout = 2 * time.Second
			start := time.Now()
			_, err := dial(t, n, "dev", tc.cli)
			if !errors.Is(err, ErrHandshake) {
				t.Fatalf("Dial error %v, want ErrHandshake", err)
			}
			if el := time.Since(start); el > 3*time.Second {
				t.Errorf("failure took %v, beyond the handshake timeout", el)
			}
			t.Logf("error: %v (after %v)", err, time.Since(start).Round(time.Millisecond))
			if tc.name == "wrong psk" && !strings.Contains(err.Error(), "wrong PSK key") {
				t.Errorf("unclear error for a wrong key: %v", err)
			}
			if tc.name == "server cert from other CA" && !errors.Is(err, ErrPeerNotTrusted) {
				t.Errorf("error does not say the server is not trusted: %v", err)
			}
			waitFor(t, "server counts the failure", func() bool {
				st := s.Stats()
				return st.HandshakesFailed == 1 && st.Sessions == 0
			})
		})
	}
}

// waitFor polls cond until it holds or testWait passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSessionLimit(t *testing.T) {
	n := newMemNet()
	s := startServer(t, n, &Config{PSKLookup: pskLookup, MaxSessions: 1})
	cli := &Config{PSKIdentity: []byte("dev-1"), PSKKey: testPSKs["dev-1"]}
	c1, err := dial(t, n, "dev-a", cli)
	if err != nil {
		t.Fatal(err)
	}
	short := *cli
	short.HandshakeTimeout = 1500 * time.Millisecond
	if _, err := dial(t, n, "dev-b", &short); !errors.Is(err, ErrHandshake) {
		t.Fatalf("second session: %v, want ErrHandshake", err)
	}
	if st := s.Stats(); st.Refused == 0 || st.Sessions != 1 {
		t.Fatalf("stats %+v", st)
	}
	if got := roundTrip(t, c1, "still here"); got != "psk:dev-1|still here" {
		t.Fatalf("echo %q", got)
	}
	// Closing the first frees the slot.
	_ = c1.Close()
	waitFor(t, "slot freed", func() bool { return s.Stats().Sessions == 0 })
	c3, err := dial(t, n, "dev-c", cli)
	if err != nil {
		t.Fatalf("after close: %v", err)
	}
	if got := roundTrip(t, c3, "x"); got != "psk:dev-1|x" {
		t.Fatalf("echo %q", got)
	}
}

func TestIdleExpiry(t *testing.T) {
	n := newMemNet()
	s := startServer(t, n, &Config{PSKLookup: pskLookup, IdleTimeout: 300 * time.Millisecond})
	c, err := dial(t, n, "dev", &Config{PSKIdentity: []byte("dev-1"), PSKKey: testPSKs["dev-1"]})
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c, "a")
	waitFor(t, "idle session expired", func() bool { st := s.Stats(); return st.Expired == 1 && st.Sessions == 0 })
	if _, err := s.WriteTo([]byte("late"), memAddr("dev")); !errors.Is(err, ErrNoSession) {
		t.Fatalf("write after expiry: %v", err)
	}
	// The server said close_notify: the client's reads end.
	_ = c.SetReadDeadline(time.Now().Add(testWait))
	if _, _, err := c.ReadFrom(make([]byte, 64)); err == nil || isTimeout(err) {
		t.Fatalf("client read after close_notify: %v", err)
	}
}

// TestWriteToEndingSession: a write to a session that is ending fails with
// ErrNoSession, never with the DTLS conn's "conn is closed" error, so a
// caller (an LwM2M server) can tell "wait for the device or wake it" from
// a transport failure. TestEndpointSessionExpiry flaked on this: the
// janitor counted a session as expired while it was still in the session
// table, and a write in that window reached its closing conn.
func TestWriteToEndingSession(t *testing.T) {
	cli := &Config{PSKIdentity: []byte("dev-1"), PSKKey: testPSKs["dev-1"]}
	t.Run("expired", func(t *testing.T) {
		n := newMemNet()
		s := startServer(t, n, &Config{PSKLookup: pskLookup, IdleTimeout: 100 * time.Millisecond})
		c, err := dial(t, n, "dev", cli)
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c, "a")
		// Write the moment Expired counts the session, not later: no
		// sleep in this poll, so a window between counting and removal
		// would be hit.
		deadline := time.Now().Add(testWait)
		for s.Stats().Expired == 0 {
			if time.Now().After(deadline) {
				t.Fatal("timed out waiting for the session to expire")
			}
			runtime.Gosched()
		}
		if _, err := s.WriteTo([]byte("late"), memAddr("dev")); !errors.Is(err, ErrNoSession) {
			t.Fatalf("write right after expiry: %v, want ErrNoSession", err)
		}
		if st := s.Stats(); st.Sessions != 0 {
			t.Fatalf("expired session still counted: %+v", st)
		}
	})
	t.Run("CloseSession", func(t *testing.T) {
		n := newMemNet()
		s := startServer(t, n, &Config{PSKLookup: pskLookup})
		c, err := dial(t, n, "dev", cli)
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c, "a")
		if !s.CloseSession(memAddr("dev")) {
			t.Fatal("CloseSession found no session")
		}
		if _, err := s.WriteTo([]byte("late"), memAddr("dev")); !errors.Is(err, ErrNoSession) {
			t.Fatalf("write right after CloseSession: %v, want ErrNoSession", err)
		}
		if s.CloseSession(memAddr("dev")) {
			t.Fatal("second CloseSession found a session")
		}
	})
	t.Run("conn closed before cleanup", func(t *testing.T) {
		// The peer's close_notify or a fatal alert makes pion close the
		// conn; the session leaves the table only when its reader sees
		// that. A write in between must also be ErrNoSession.
		n := newMemNet()
		s := startServer(t, n, &Config{PSKLookup: pskLookup})
		c, err := dial(t, n, "dev", cli)
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c, "a")
		s.mu.Lock()
		ss := s.byAddr[bearer.AddrKey(memAddr("dev"))]
		s.mu.Unlock()
		if ss == nil {
			t.Fatal("no session")
		}
		_ = ss.conn.Close()
		if _, err := s.WriteTo([]byte("late"), memAddr("dev")); !errors.Is(err, ErrNoSession) {
			t.Fatalf("write on a closed conn: %v, want ErrNoSession", err)
		}
	})
	t.Run("server closed", func(t *testing.T) {
		n := newMemNet()
		s := startServer(t, n, &Config{PSKLookup: pskLookup})
		c, err := dial(t, n, "dev", cli)
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c, "a")
		_ = s.Close()
		if _, err := s.WriteTo([]byte("late"), memAddr("dev")); !errors.Is(err, ErrClosed) {
			t.Fatalf("write after Close: %v, want ErrClosed", err)
		}
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestCIDRebinding: a client whose address changes (NAT rebinding) keeps its
// session because its records carry the server-issued connection ID, and
// the server's replies follow it to the new address.
func TestCIDRebinding(t *testing.T) {
	n := newMemNet()
	s := startServer(t, n, &Config{PSKLookup: pskLookup})
	inner := n.attach("10.0.0.1:4000", memParams())
	c, err := Dial(testCtx(t), inner, memAddr("srv"), &Config{PSKIdentity: []byte("dev-1"), PSKKey: testPSKs["dev-1"]})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := roundTrip(t, c, "before"); got != "psk:dev-1|before" {
		t.Fatalf("echo %q", got)
	}
	inner.rebind("10.0.0.1:4999")
	if got := roundTrip(t, c, "after"); got != "psk:dev-1|after" {
		t.Fatalf("echo after rebinding %q", got)
	}
	st := s.Stats()
	if st.Rebinds != 1 || st.HandshakesOK != 1 || st.Sessions != 1 {
		t.Fatalf("stats %+v", st)
	}
	if _, ok := s.Identity(memAddr("10.0.0.1:4999")); !ok {
		t.Fatalf("session not found at the new address")
	}
	if _, ok := s.Identity(memAddr("10.0.0.1:4000")); ok {
		t.Fatalf("session still at the old address")
	}
}

// TestNoCIDNoRebinding: without connection IDs, a moved client is an
// unknown peer: its records are dropped and counted.
func TestNoCIDNoRebinding(t *testing.T) {
	n := newMemNet()
	s := startServer(t, n, &Config{PSKLookup: pskLookup, CIDLength: new(0)})
	inner := n.attach("a", memParams())
	c, err := Dial(testCtx(t), inner, memAddr("srv"), &Config{PSKIdentity: []byte("dev-1"), PSKKey: testPSKs["dev-1"]})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Params().MaxDatagram != memParams().MaxDatagram-29 {
		t.Errorf("client params %+v", c.Params())
	}
	roundTrip(t, c, "x")
	inner.rebind("b")
	if _, err := c.WriteTo([]byte("lost"), memAddr("srv")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "unknown peer counted", func() bool { return s.Stats().UnknownPeer == 1 })
}

// TestReconnect: a device that reboots and handshakes again from the same
// address gets a new session that replaces the old one (RFC 6347 §4.2.8).
func TestReconnect(t *testing.T) {
	n := newMemNet()
	s := startServer(t, n, &Config{PSKLookup: pskLookup})
	old := n.attach("dev", memParams())
	c1, err := Dial(testCtx(t), old, memAddr("srv"), &Config{PSKIdentity: []byte("dev-1"), PSKKey: testPSKs["dev-1"]})
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c1, "one")
	_ = old.Close() // reboot: no close_notify reaches the server
	c2, err := dial(t, n, "dev", &Config{PSKIdentity: []byte("dev-2"), PSKKey: testPSKs["dev-2"]})
	if err != nil {
		t.Fatalf("re-handshake: %v", err)
	}
	if got := roundTrip(t, c2, "two"); got != "psk:dev-2|two" {
		t.Fatalf("echo %q", got)
	}
	waitFor(t, "old session replaced", func() bool {
		st := s.Stats()
		return st.Sessions == 1 && st.HandshakesOK == 2
	})
	_ = c1.Close()
}

func TestGarbageDropped(t *testing.T) {
	n := newMemNet()
	s := startServer(t, n, &Config{PSKLookup: pskLookup})
	atk := n.attach("attacker", memParams())
	defer atk.Close()
	for _, d := range [][]byte{
		nil, {0}, []byte("GET /"), bytes.Repeat([]byte{0xff}, 40),
		{22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 1, 0},                // length beyond datagram
		{23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 0, 2, 0xaa, 0xbb},          // app data, unknown peer
		{25, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 0, 1, 0}, // unknown CID
	} {
		if _, err := atk.WriteTo(d, memAddr("srv")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "drops counted", func() bool {
		st := s.Stats()
		return st.Garbage == 5 && st.UnknownPeer == 2
	})
	if st := s.Stats(); st.Sessions != 0 {
		t.Fatalf("garbage started a session: %+v", st)
	}
	// A real client still gets through.
	c, err := dial(t, n, "dev", &Config{PSKIdentity: []byte("dev-1"), PSKKey: testPSKs["dev-1"]})
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c, "fine")
}

func TestConfigErrors(t *testing.T) {
	n := newMemNet()
	pki := newPKI(t)
	for _, tc := range []struct {
		name   string
		server bool
		cfg    *Config
	}{
		{"nil", true, nil},
		{"server without credentials", true, &Config{}},
		{"server cert without trust", true, &Config{Certificate: &pki.server}},
		{"client without credentials", false, &Config{}},
		{"client psk without key", false, &Config{PSKIdentity: []byte("a")}},
		{"client cert without trust", false, &Config{Certificate: &pki.client}},
		{"cid too long", true, &Config{PSKLookup: pskLookup, CIDLength: new(256)}},
		{"cid negative", true, &Config{PSKLookup: pskLookup, CIDLength: new(-1)}},
		{"client cid negative", false, &Config{PSKIdentity: []byte("dev-1"), PSKKey: testPSKs["dev-1"], CIDLength: new(-1)}},
		{"unknown suite", true, &Config{PSKLookup: pskLookup, CipherSuites: []CipherSuiteID{0x1234}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.server {
				_, err = NewServer(n.attach("s", memParams()), tc.cfg)
			} else {
				inner := n.attach("c", memParams())
				_, err = Dial(testCtx(t), inner, memAddr("s"), tc.cfg)
				select {
				case <-inner.closed: // Dial's doc: on error inner is closed too
				default:
					t.Errorf("Dial refused the config (%v) and left inner open", err)
				}
			}
			if !errors.Is(err, ErrInvalidOption) {
				t.Fatalf("err %v, want ErrInvalidOption", err)
			}
			if !strings.HasPrefix(err.Error(), "secure:") {
				t.Errorf("error not prefixed: %v", err)
			}
		})
	}
	// An inner bearer too small for the record overhead is refused.
	p := memParams()
	p.MaxDatagram, p.PreferredDatagram = 40, 40
	if _, err := NewServer(n.attach("tiny", p), &Config{PSKLookup: pskLookup}); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("tiny bearer: %v", err)
	}
}

// TestHandshakeFlood: spoofed ClientHellos (their HelloVerifyRequests go
// nowhere) fill the handshake slots, yet a real client still gets in: the
// oldest handshake that never echoed a cookie is evicted for it.
func TestHandshakeFlood(t *testing.T) {
	n := newMemNet()
	s := startServer(t, n, &Config{PSKLookup: pskLookup, MaxHandshakes: 4, Logger: discardLogger()})
	hellos := captureClientFlight(t)
	if len(hellos) == 0 {
		t.Fatal("no ClientHello captured")
	}
	atk := n.attach("attacker", memParams())
	defer atk.Close()
	for i := 0; i < 20; i++ {
		// The attacker's node forges source addresses by calling route
		// directly, as a spoofing host would on UDP.
		s.route(append([]byte(nil), hellos[0]...), memAddr(fmt.Sprintf("spoofed-%d", i)))
	}
	if st := s.Stats(); st.Handshaking != 4 || st.Evicted != 16 {
		t.Fatalf("after flood: %+v", st)
	}
	c, err := dial(t, n, "dev", &Config{PSKIdentity: []byte("dev-1"), PSKKey: testPSKs["dev-1"]})
	if err != nil {
		t.Fatalf("real client locked out: %v", err)
	}
	if got := roundTrip(t, c, "in"); got != "psk:dev-1|in" {
		t.Fatalf("echo %q", got)
	}
	if st := s.Stats(); st.HandshakesOK != 1 || st.Evicted != 17 || st.Refused != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestClientCloseErrors(t *testing.T) {
	n := newMemNet()
	startServer(t, n, &Config{PSKLookup: pskLookup})
	c, err := dial(t, n, "dev", &Config{PSKIdentity: []byte("dev-1"), PSKKey: testPSKs["dev-1"]})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, _, err := c.ReadFrom(make([]byte, 64))
		errc <- err
	}()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) || !errors.Is(err, net.ErrClosed) {
			t.Fatalf("pending read after Close: %v", err)
		}
	case <-time.After(testWait):
		t.Fatal("pending read not released by Close")
	}
	if _, err := c.WriteTo([]byte("x"), memAddr("srv")); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestServerCloseErrors(t *testing.T) {
	n := newMemNet()
	s, err := NewServer(n.attach("srv", memParams()), &Config{PSKLookup: pskLookup})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, _, err := s.ReadFrom(make([]byte, 64)); !isTimeout(err) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read deadline: %v", err)
	}
	_ = s.SetReadDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() {
		_, _, err := s.ReadFrom(make([]byte, 64))
		errc <- err
	}()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("pending read after Close: %v", err)
		}
	case <-time.After(testWait):
		t.Fatal("pending read not released by Close")
	}
	if _, err := s.WriteTo([]byte("x"), memAddr("dev")); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after Close: %v", err)
	}
}
