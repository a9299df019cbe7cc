package secure

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/pion/dtls/v3"
)

func testSession(id byte) dtls.Session {
	return dtls.Session{ID: bytes.Repeat([]byte{id}, 32), Secret: bytes.Repeat([]byte{id}, 48), Version: 1,
		CipherSuiteID: TLS_PSK_WITH_AES_128_CCM_8, IdentityHint: []byte{'d', id}}
}

func TestSessionCache(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	t.Run("set get del", func(t *testing.T) {
		c, err := NewSessionCache(WithSessionClock(clock))
		if err != nil {
			t.Fatal(err)
		}
		if s, err := c.Get([]byte("k")); err != nil || len(s.ID) != 0 {
			t.Fatalf("empty cache: %v %v", s, err)
		}
		if err := c.Set([]byte("k"), testSession(1)); err != nil {
			t.Fatal(err)
		}
		s, _ := c.Get([]byte("k"))
		if !bytes.Equal(s.Secret, testSession(1).Secret) || string(s.IdentityHint) != "d\x01" {
			t.Fatalf("got %+v", s)
		}
		s.Secret[0] = 0xff // the caller's copy
		if s2, _ := c.Get([]byte("k")); s2.Secret[0] != 1 {
			t.Fatal("Get returned the cache's own slice")
		}
		_ = c.Del([]byte("k"))
		if s, _ := c.Get([]byte("k")); len(s.ID) != 0 {
			t.Fatal("deleted session still there")
		}
		if st := c.Stats(); st.Hits != 2 || st.Misses != 2 || st.Stored != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("bound evicts least recently used", func(t *testing.T) {
		c, _ := NewSessionCache(WithMaxEntries(2), WithSessionClock(clock))
		_ = c.Set([]byte("a"), testSession(1))
		_ = c.Set([]byte("b"), testSession(2))
		_, _ = c.Get([]byte("a")) // a is now the most recent
		_ = c.Set([]byte("c"), testSession(3))
		if s, _ := c.Get([]byte("b")); len(s.ID) != 0 {
			t.Fatal("b should have been evicted")
		}
		if s, _ := c.Get([]byte("a")); len(s.ID) == 0 {
			t.Fatal("a evicted")
		}
		if st := c.Stats(); st.Entries != 2 || st.Evicted != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("ttl from the full handshake", func(t *testing.T) {
		now := now
		c, _ := NewSessionCache(WithSessionTTL(time.Hour), WithSessionClock(func() time.Time { return now }))
		_ = c.Set([]byte("a"), testSession(1))
		now = now.Add(50 * time.Minute)
		_ = c.Set([]byte("a"), testSession(1)) // stored again after a resumption: same secret, same age
		now = now.Add(11 * time.Minute)
		if s, _ := c.Get([]byte("a")); len(s.ID) != 0 {
			t.Fatal("a session older than its TTL was resumable")
		}
		_ = c.Set([]byte("a"), testSession(2)) // a new full handshake: a new secret, a new age
		now = now.Add(50 * time.Minute)
		if s, _ := c.Get([]byte("a")); len(s.ID) == 0 {
			t.Fatal("fresh session expired")
		}
		if st := c.Stats(); st.Expired != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("file survives a restart", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "sessions.db")
		now := now
		clk := WithSessionClock(func() time.Time { return now })
		c, err := OpenSessionCache(path, WithMaxEntries(2), WithSessionTTL(time.Hour), clk)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.Set([]byte("old"), testSession(1))
		now = now.Add(30 * time.Minute)
		_ = c.Set([]byte("a"), testSession(2))
		_ = c.Set([]byte("b"), testSession(3)) // evicts old, from the file too
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("file mode: %v %v", fi.Mode(), err)
		}
		now = now.Add(20 * time.Minute)
		c, err = OpenSessionCache(path, WithMaxEntries(2), WithSessionTTL(time.Hour), clk)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if c.Len() != 2 {
			t.Fatalf("%d sessions after reopening, want 2", c.Len())
		}
		if s, _ := c.Get([]byte("a")); !bytes.Equal(s.Secret, testSession(2).Secret) || s.CipherSuiteID != TLS_PSK_WITH_AES_128_CCM_8 {
			t.Fatalf("a after reopening: %+v", s)
		}
		if s, _ := c.Get([]byte("old")); len(s.ID) != 0 {
			t.Fatal("evicted session came back from the file")
		}
	})
	t.Run("options refuse nonsense", func(t *testing.T) {
		for name, o := range map[string]SessionCacheOption{
			"ttl 0": WithSessionTTL(0), "size 0": WithMaxEntries(0), "nil clock": WithSessionClock(nil),
		} {
			t.Run(name, func(t *testing.T) {
				if _, err := NewSessionCache(o); err == nil {
					t.Errorf("%s accepted", name)
				}
			})
		}
		if _, err := OpenSessionCache(filepath.Join(t.TempDir(), "no", "such", "dir", "x.db")); err == nil {
			t.Error("unopenable file accepted")
		}
	})
}

// holdFinished delays the client's ChangeCipherSpec datagram (its last
// handshake flight) until after the next datagram it sends: the network
// reorders the Finished and the first request.
type holdFinished struct {
	bearer.Bearer
	mu    sync.Mutex
	armed bool
	held  []byte
	to    net.Addr
	hvr   int // HelloVerifyRequests received
}

func (h *holdFinished) ReadFrom(p []byte) (int, net.Addr, error) {
	n, a, err := h.Bearer.ReadFrom(p)
	if err == nil && n > recordHeaderLen && p[0] == contentHandshake && p[recordHeaderLen] == 3 {
		h.mu.Lock()
		h.hvr++
		h.mu.Unlock()
	}
	return n, a, err
}

func (h *holdFinished) WriteTo(p []byte, addr net.Addr) (int, error) {
	h.mu.Lock()
	if h.armed && hasRecord(p, contentChangeCipherSpec) && h.held == nil {
		h.held, h.to = bytes.Clone(p), addr
		h.mu.Unlock()
		return len(p), nil
	}
	held, to := h.held, h.to
	if held != nil && !hasRecord(p, contentChangeCipherSpec) {
		h.held, h.armed = nil, false
	} else {
		held = nil
	}
	h.mu.Unlock()
	n, err := h.Bearer.WriteTo(p, addr)
	if held != nil {
		_, _ = h.Bearer.WriteTo(held, to)
	}
	return n, err
}

// roundTripWithin is roundTrip with a shorter read deadline.
func roundTripWithin(c *Conn, msg string, d time.Duration) (string, error) {
	if _, err := c.WriteTo([]byte(msg), memAddr("srv")); err != nil {
		return "", err
	}
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 2048)
	k, _, err := c.ReadFrom(buf)
	return string(buf[:k]), err
}

// TestResumption: a device that reboots without a close_notify (its old
// session still established at the server) comes back with an
// abbreviated handshake: fewer datagrams, the same identity, the old
// session replaced without an alert. Its first request may overtake its
// Finished on the network (SMS reorders freely) and is still answered.
func TestResumption(t *testing.T) {
	cases := []struct {
		name    string
		reorder bool // the request overtakes the Finished
		forget  bool // the server lost its sessions: full handshake
		skipHVR bool
		cid     int // the client's own CID length; the server issues 6-byte CIDs then
	}{
		{name: "abbreviated"},
		{name: "request overtakes the Finished", reorder: true},
		{name: "server forgot the session", forget: true},
		{name: "no cookie exchange", skipHVR: true, reorder: true},
		{name: "client with a CID of its own", cid: 4, reorder: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := newMemNet()
			scache, _ := NewSessionCache()
			scid, ccid := new(0), (*int)(nil)
			if tc.cid > 0 {
				scid, ccid = new(6), new(tc.cid)
			}
			s := startServer(t, n, &Config{PSKLookup: pskLookup, Sessions: scache, CIDLength: scid,
				SkipHelloVerify: tc.skipHVR, Logger: discardLogger()})
			ccache, _ := NewSessionCache()
			cli := &Config{PSKIdentity: []byte("dev-1"), PSKKey: testPSKs["dev-1"], Sessions: ccache, CIDLength: ccid, Logger: discardLogger()}
			old := n.attach("dev", memParams())
			c1, err := Dial(testCtx(t), old, memAddr("srv"), cli)
			if err != nil {
				t.Fatal(err)
			}
			if c1.Resumed() {
				t.Fatal("first handshake reported as resumed")
			}
			fullSent, fullRecv := old.sentN.Load(), old.recvN.Load()
			roundTrip(t, c1, "one")
			_ = old.Close() // reboot: no close_notify reaches the server
			if tc.forget {
				if err := scache.Del(ccache.peek("srv_")); err != nil {
					t.Fatal(err)
				}
			}
			mb := n.attach("dev", memParams())
			inner := &holdFinished{Bearer: mb, armed: tc.reorder}
			c2, err := Dial(testCtx(t), inner, memAddr("srv"), cli)
			if err != nil {
				t.Fatalf("second handshake: %v", err)
			}
			defer c2.Close()
			sent, recv := mb.sentN.Load(), mb.recvN.Load()
			got, err := roundTripWithin(c2, "two", 5*time.Second)
			if err != nil {
				t.Fatalf("first request after the second handshake: %v", err)
			}
			if got != "psk:dev-1|two" {
				t.Fatalf("echo %q", got)
			}
			waitFor(t, "old session replaced", func() bool { st := s.Stats(); return st.HandshakesOK == 2 && st.Sessions == 1 })
			st := s.Stats()
			t.Logf("full handshake: device sent %d, received %d datagrams; second: sent %d, received %d (resumed %v)",
				fullSent, fullRecv, sent, recv, c2.Resumed())
			if c2.Resumed() == tc.forget || (st.Resumed == 1) == tc.forget {
				t.Fatalf("resumed: client %v, server %d; want %v", c2.Resumed(), st.Resumed, !tc.forget)
			}
			if st.Replaced != 1 {
				t.Fatalf("replaced %d, want 1", st.Replaced)
			}
			if id, _ := s.Identity(memAddr("dev")); id.String() != "psk:dev-1" {
				t.Fatalf("identity %s", id)
			}
			if !tc.forget && sent+recv >= fullSent+fullRecv {
				t.Fatalf("abbreviated handshake took %d datagrams, the full one %d", sent+recv, fullSent+fullRecv)
			}
			inner.mu.Lock()
			hvr := inner.hvr
			inner.mu.Unlock()
			if want := map[bool]int{true: 0, false: 1}[tc.skipHVR]; hvr != want {
				t.Fatalf("%d HelloVerifyRequests, want %d", hvr, want)
			}
		})
	}
}

// TestReplacedSessionIsQuiet: the server sends nothing on the session a
// new handshake replaced, and with QuietClose nothing when a session
// expires or the server closes.
func TestReplacedSessionIsQuiet(t *testing.T) {
	n := newMemNet()
	sb := n.attach("srv", memParams())
	s, err := NewServer(sb, &Config{PSKLookup: pskLookup, QuietClose: true, IdleTimeout: 400 * time.Millisecond, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	echo := func() {
		buf := make([]byte, 2048)
		for {
			k, addr, err := s.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = s.WriteTo(buf[:k], addr)
		}
	}
	go echo()
	cli := &Config{PSKIdentity: []byte("dev-1"), PSKKey: testPSKs["dev-1"], Logger: discardLogger()}
	old := n.attach("dev", memParams())
	c1, err := Dial(testCtx(t), old, memAddr("srv"), cli)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := roundTripWithin(c1, "x", testWait); err != nil || got != "x" {
		t.Fatalf("echo %q %v", got, err)
	}
	_ = old.Close()
	c2, err := dial(t, n, "dev", cli)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := roundTripWithin(c2, "y", testWait); err != nil || got != "y" {
		t.Fatalf("echo %q %v", got, err)
	}
	waitFor(t, "replaced", func() bool { return s.Stats().Replaced == 1 })
	time.Sleep(50 * time.Millisecond)
	base := sb.sentN.Load()
	waitFor(t, "expired", func() bool { return s.Stats().Expired == 1 })
	_ = s.Close()
	if d := sb.sentN.Load() - base; d != 0 {
		t.Fatalf("server sent %d datagrams after the echo (close_notify on a replaced, expired or closed session)", d)
	}
}

// TestSessionKeyAcrossServers: a device that moves from one bearer to
// another (two servers sharing their Sessions, the client keeping its
// session under one SessionKey) resumes instead of a full handshake.
func TestSessionKeyAcrossServers(t *testing.T) {
	n := newMemNet()
	shared, _ := NewSessionCache()
	startServer(t, n, &Config{PSKLookup: pskLookup, Sessions: shared, Logger: discardLogger()})
	s2, err := NewServer(n.attach("srv2", memParams()), &Config{PSKLookup: pskLookup, Sessions: shared, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	ccache, _ := NewSessionCache()
	cli := &Config{PSKIdentity: []byte("dev-1"), PSKKey: testPSKs["dev-1"], Sessions: ccache, SessionKey: "lwm2m-server-101", Logger: discardLogger()}
	c1, err := dial(t, n, "dev-udp", cli)
	if err != nil || c1.Resumed() {
		t.Fatalf("first: %v resumed %v", err, c1 != nil && c1.Resumed())
	}
	c2, err := Dial(testCtx(t), n.attach("dev-sms", memParams()), memAddr("srv2"), cli)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if !c2.Resumed() {
		t.Fatal("moved device: full handshake")
	}
	// In an abbreviated handshake the client finishes first.
	waitFor(t, "server resumed", func() bool { return s2.Stats().Resumed == 1 })
	if _, err := NewServer(n.attach("x", memParams()), &Config{PSKLookup: pskLookup, SessionKey: "k"}); err == nil {
		t.Fatal("SessionKey without Sessions accepted")
	}
}

// TestResumptionClientOwnCID: a client (pion's own, as a third-party
// device would be) that asks for a connection ID of its own and offers a
// session gets a full handshake instead (pion cannot give a resumed
// session a CID, and would then wrap its answers in one the client cannot
// read); its requests are answered either way.
func TestResumptionClientOwnCID(t *testing.T) {
	n := newMemNet()
	scache, _ := NewSessionCache()
	s := startServer(t, n, &Config{PSKLookup: pskLookup, Sessions: scache, Logger: discardLogger()})
	ccache, _ := NewSessionCache()
	for i := range 2 {
		mb := n.attach("dev", memParams())
		conn, err := dtls.ClientWithOptions(mb, memAddr("srv"),
			dtls.WithPSK(func([]byte) ([]byte, error) { return testPSKs["dev-1"], nil }), dtls.WithPSKIdentityHint([]byte("dev-1")),
			dtls.WithCipherSuites(TLS_PSK_WITH_AES_128_CCM_8), dtls.WithConnectionIDGenerator(dtls.RandomCIDGenerator(6)),
			dtls.WithSessionStore(ccache), dtls.WithExtendedMasterSecret(dtls.RequestExtendedMasterSecret))
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.HandshakeContext(testCtx(t)); err != nil {
			t.Fatalf("handshake %d: %v", i, err)
		}
		if _, err := conn.Write([]byte("hi")); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 256)
		k, err := conn.Read(buf)
		if err != nil || string(buf[:k]) != "psk:dev-1|hi" {
			t.Fatalf("answer after handshake %d: %q %v", i, buf[:k], err)
		}
		_ = mb.Close() // power cut
		_ = conn.Close()
	}
	if st := s.Stats(); st.NotResumedCID != 1 || st.Resumed != 0 || st.HandshakesOK != 2 {
		t.Fatalf("server %+v", st)
	}
}

// TestSessionCacheWriteTo: the copy WriteTo makes of a cache's file is a
// file the cache opens again with the same sessions; a cache without a
// file refuses.
func TestSessionCacheWriteTo(t *testing.T) {
	dir := t.TempDir()
	c, err := OpenSessionCache(filepath.Join(dir, "sessions.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Set([]byte("a"), testSession(7)); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if n, err := c.WriteTo(&buf); err != nil || n != int64(buf.Len()) || n == 0 {
		t.Fatalf("WriteTo: %d %v (%d bytes written)", n, err, buf.Len())
	}
	cp := filepath.Join(dir, "copy.db")
	if err := os.WriteFile(cp, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	c2, err := OpenSessionCache(cp)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if s, _ := c2.Get([]byte("a")); !bytes.Equal(s.Secret, testSession(7).Secret) {
		t.Fatalf("session in the copy: %+v", s)
	}
	mem, _ := NewSessionCache()
	for _, tc := range []struct {
		name string
		c    *SessionCache
	}{
		{"memory only", mem},
		{"zero", &SessionCache{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.c.WriteTo(&buf); !errors.Is(err, ErrSessionCache) {
				t.Errorf("%s: WriteTo %v, want ErrSessionCache", tc.name, err)
			}
		})
	}
}

// lateReturn is the server's bearer in TestResumptionPeerFasterThanWrite.
// Once armed, its WriteTo of the datagram carrying the server's
// ChangeCipherSpec sends it, then returns only after the server has read
// the peer's first application-data datagram and come back for the next
// one (its demultiplexer has routed it): a bearer that hands a datagram
// over at once, or a scheduler that parks the writing goroutine, lets a
// fast peer's Finished and first request in before WriteTo returns.
type lateReturn struct {
	bearer.Bearer
	armed   atomic.Bool
	appRead atomic.Bool   // an application-data datagram was read while armed
	routed  chan struct{} // closed at the next ReadFrom after it
	once    sync.Once
	blocked atomic.Int32 // writes that waited for the peer
	waitMax time.Duration
	late    atomic.Bool // a write gave up waiting
}

func newLateReturn(b bearer.Bearer, waitMax time.Duration) *lateReturn {
	return &lateReturn{Bearer: b, routed: make(chan struct{}), waitMax: waitMax}
}

func (b *lateReturn) ReadFrom(p []byte) (int, net.Addr, error) {
	if b.appRead.Load() {
		b.once.Do(func() { close(b.routed) })
	}
	n, a, err := b.Bearer.ReadFrom(p)
	if err == nil && n > 0 && p[0] == contentApplicationData && b.armed.Load() {
		b.appRead.Store(true)
	}
	return n, a, err
}

func (b *lateReturn) WriteTo(p []byte, addr net.Addr) (int, error) {
	n, err := b.Bearer.WriteTo(p, addr)
	if err == nil && b.armed.Load() && hasRecord(p, contentChangeCipherSpec) {
		b.blocked.Add(1)
		select {
		case <-b.routed:
		case <-time.After(b.waitMax):
			b.late.Store(true)
		}
	}
	return n, err
}

// TestResumptionPeerFasterThanWrite: in an abbreviated handshake the
// server sends its ChangeCipherSpec and Finished first; the peer's
// Finished and its first request can reach the server before the
// server's WriteTo of that flight has returned. The request must go to
// the new session (which decrypts it once it has the Finished), not only
// to the one being replaced, which drops it as a replay: the server must
// know its ChangeCipherSpec is out before the datagram leaves.
func TestResumptionPeerFasterThanWrite(t *testing.T) {
	for _, tc := range []struct {
		name string
		cid  *int // the server's CIDLength
	}{
		{name: "no CIDs", cid: new(0)},
		{name: "server issues CIDs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newMemNet()
			scache, _ := NewSessionCache()
			sb := newLateReturn(n.attach("srv", memParams()), 3*time.Second)
			s := startServerOn(t, sb, &Config{PSKLookup: pskLookup, Sessions: scache, CIDLength: tc.cid, Logger: discardLogger()})
			ccache, _ := NewSessionCache()
			cli := &Config{PSKIdentity: []byte("dev-1"), PSKKey: testPSKs["dev-1"], Sessions: ccache, Logger: discardLogger()}
			old := n.attach("dev", memParams())
			c1, err := Dial(testCtx(t), old, memAddr("srv"), cli)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := roundTripWithin(c1, "one", testWait); err != nil || got != "psk:dev-1|one" {
				t.Fatalf("first session: %q %v", got, err)
			}
			_ = old.Close() // reboot: the server keeps the old session
			sb.armed.Store(true)
			c2, err := Dial(testCtx(t), n.attach("dev", memParams()), memAddr("srv"), cli)
			if err != nil {
				t.Fatalf("second handshake: %v", err)
			}
			defer c2.Close()
			if !c2.Resumed() {
				t.Fatal("second handshake not abbreviated")
			}
			got, err := roundTripWithin(c2, "two", 5*time.Second)
			if sb.blocked.Load() == 0 || sb.late.Load() {
				t.Fatalf("harness: %d writes held, one gave up %v", sb.blocked.Load(), sb.late.Load())
			}
			if err != nil || got != "psk:dev-1|two" {
				t.Fatalf("first request after the resumption, sent before the server's flight write returned: %q %v (stats %+v)", got, err, s.Stats())
			}
		})
	}
}
