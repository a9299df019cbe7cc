package sms_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/secure"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smstest"
)

const (
	dtlsDevNum  = "+491710000011"
	plainDevNum = "+491710000012"
)

// mixedWorld is a server SIM whose SMS bearer carries a DTLS peer and a
// NoSec peer side by side (Config.SplitDTLS, secure.Mixed), and the two
// devices.
type mixedWorld struct {
	net              *smstest.Network
	srvSIM           *smstest.SIM
	srvB             *sms.Bearer
	dtlsDev, plainDv *sms.Bearer
	srv              *secure.Server
	ep               *bearer.Endpoint

	mu    sync.Mutex
	seen  []string // identities the server's handler saw
	calls int
}

func smsBearer(t *testing.T, sim *smstest.SIM, split bool, dir string, peers map[string]sms.Peer) *sms.Bearer {
	t.Helper()
	b, err := sms.New(sim, sms.Config{
		StateDir: dir, Peers: peers, SplitDTLS: split,
		Params: testParams(2 * time.Second),
		Worker: outbox.WorkerConfig{Poll: 5 * time.Millisecond, BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newMixedWorld(t *testing.T) *mixedWorld {
	t.Helper()
	w := &mixedWorld{net: smstest.NewNetwork(7, smstest.Faults{Latency: 5 * time.Millisecond})}
	t.Cleanup(w.net.Close)
	w.srvSIM = w.net.AddSIM(serverNum)
	w.srvB = smsBearer(t, w.srvSIM, true, t.TempDir(), map[string]sms.Peer{
		dtlsDevNum:  {Security: sms.ModeDTLS, SIM: serverNum},
		plainDevNum: {Security: sms.ModeNoSec, SIM: serverNum},
	})
	w.dtlsDev = smsBearer(t, w.net.AddSIM(dtlsDevNum), false, t.TempDir(), map[string]sms.Peer{serverNum: {Security: sms.ModeDTLS, SIM: dtlsDevNum}})
	w.plainDv = smsBearer(t, w.net.AddSIM(plainDevNum), false, t.TempDir(), map[string]sms.Peer{serverNum: {Security: sms.ModeNoSec, SIM: plainDevNum}})
	t.Cleanup(func() { w.dtlsDev.Close(); w.plainDv.Close() })
	scfg, _ := secureCfg(140)
	scfg.CIDLength = new(0)
	var err error
	if w.srv, err = secure.NewServer(w.srvB.DTLS(), scfg); err != nil {
		t.Fatal(err)
	}
	m, err := secure.NewMixed(w.srvB, w.srv, func(a net.Addr) bool {
		mode, ok := w.srvB.PeerMode(a)
		return ok && mode == sms.ModeDTLS
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := bearer.NewServeMux()
	mux.HandleFunc("/rd", func(rw bearer.ResponseWriter, r *bearer.Request) {
		w.mu.Lock()
		w.seen = append(w.seen, r.Peer.String()+" "+r.Identity.String())
		w.calls++
		w.mu.Unlock()
		_ = rw.WriteResponse(codes.Created, nil)
	})
	if w.ep, err = bearer.NewEndpoint(m, bearer.WithHandler(mux)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.ep.Close() })
	return w
}

// TestMixedSMSPeers: one SMS bearer carries a NoSec peer in plain CoAP and
// a DTLS peer in DTLS records, each routed by its configured mode: both
// register and are read by the server; a DTLS peer's plain CoAP and a
// NoSec peer's DTLS record are refused and counted, never handled.
func TestMixedSMSPeers(t *testing.T) {
	w := newMixedWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := mustAddr(t, serverNum)
	devMux := bearer.NewServeMux()
	devMux.HandleFunc("/3/0/0", func(rw bearer.ResponseWriter, r *bearer.Request) {
		_ = rw.WriteResponse(codes.Content, []byte("m2mbearer"))
	})

	_, ccfg := secureCfg(140)
	conn, err := secure.Dial(ctx, w.dtlsDev, srv, ccfg)
	if err != nil {
		t.Fatalf("DTLS handshake over the split bearer: %v", err)
	}
	dtlsEP, err := bearer.NewEndpoint(conn, bearer.WithHandler(devMux))
	if err != nil {
		t.Fatal(err)
	}
	defer dtlsEP.Close()
	plainEP, err := bearer.NewEndpoint(w.plainDv, bearer.WithHandler(devMux))
	if err != nil {
		t.Fatal(err)
	}
	defer plainEP.Close()

	for _, tc := range []struct {
		name string
		ep   *bearer.Endpoint
		want string
	}{
		{"dtls peer registers", dtlsEP, dtlsDevNum + " psk:streetlight-17"},
		{"nosec peer registers", plainEP, plainDevNum + " none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w.mu.Lock()
			w.seen = nil
			w.mu.Unlock()
			resp, err := tc.ep.Post(ctx, srv, "/rd", 0, nil)
			if err != nil || resp.Code != codes.Created {
				t.Fatalf("register: %v", err)
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			if len(w.seen) != 1 || w.seen[0] != tc.want {
				t.Fatalf("server saw %q, want %q", w.seen, tc.want)
			}
		})
	}
	for _, tc := range []struct{ name, num string }{{"server reads the dtls peer", dtlsDevNum}, {"server reads the nosec peer", plainDevNum}} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := w.ep.Get(ctx, mustAddr(t, tc.num), "/3/0/0")
			if err != nil || string(resp.Payload) != "m2mbearer" {
				t.Fatalf("read: %v", err)
			}
		})
	}

	t.Run("abuse", func(t *testing.T) {
		before := w.srvB.Stats().DroppedSecurity
		calls := func() int { w.mu.Lock(); defer w.mu.Unlock(); return w.calls }
		c0 := calls()
		// A device configured for DTLS sends plain CoAP: its own bearer
		// is told it is a NoSec peer, the server's is not.
		w.dtlsDev.AddPeer(serverNum, sms.Peer{Security: sms.ModeNoSec, SIM: dtlsDevNum})
		if _, err := w.dtlsDev.WriteTo([]byte{0x40, 0x02, 0x12, 0x34, 0xb2, 'r', 'd'}, srv); err != nil {
			t.Fatal(err)
		}
		// A NoSec device sends something that looks like a DTLS record.
		w.plainDv.AddPeer(serverNum, sms.Peer{Security: sms.ModeDTLS, SIM: plainDevNum})
		rec := append([]byte{22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3}, 1, 0, 0)
		if _, err := w.plainDv.WriteTo(rec, srv); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for w.srvB.Stats().DroppedSecurity-before < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("dropped for their mode: %d, want 2", w.srvB.Stats().DroppedSecurity-before)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if calls() != c0 {
			t.Fatal("a datagram in the wrong mode reached the handler")
		}
		if st := w.srv.Stats(); st.Garbage != 0 || st.DatagramsIn == 0 {
			t.Fatalf("DTLS server stats %+v: the plain datagram reached it", st)
		}
	})

	t.Run("writes go to their side only", func(t *testing.T) {
		if _, err := w.srvB.DTLS().WriteTo([]byte{22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0}, mustAddr(t, plainDevNum)); !errors.Is(err, sms.ErrSecurityMode) {
			t.Fatalf("view to a nosec peer: %v", err)
		}
		if _, err := w.srvB.WriteTo([]byte{22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0}, mustAddr(t, dtlsDevNum)); !errors.Is(err, sms.ErrSecurityMode) {
			t.Fatalf("bearer to a dtls peer: %v", err)
		}
	})
}

// TestDTLSViewClosedKeepsDatagrams: a DTLS datagram that arrives after
// the view closed stays in the inbox store and reaches the view of the
// next start.
func TestDTLSViewClosedKeepsDatagrams(t *testing.T) {
	n := smstest.NewNetwork(3, smstest.Faults{})
	defer n.Close()
	srvSIM := n.AddSIM(serverNum)
	dir := t.TempDir()
	peers := map[string]sms.Peer{deviceNum: {Security: sms.ModeDTLS, SIM: serverNum}}
	srvB := smsBearer(t, srvSIM, true, dir, peers)
	dev := smsBearer(t, n.AddSIM(deviceNum), false, t.TempDir(), map[string]sms.Peer{serverNum: {Security: sms.ModeDTLS, SIM: deviceNum}})
	defer dev.Close()
	_ = srvB.DTLS().Close()
	rec := append([]byte{22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3}, 1, 0, 0)
	if _, err := dev.WriteTo(rec, mustAddr(t, serverNum)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for srvB.Stats().HeldForRestart == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", srvB.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, _, err := srvB.DTLS().ReadFrom(make([]byte, 64)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read on a closed view: %v", err)
	}
	srvB.Close()
	again := smsBearer(t, srvSIM, true, dir, peers)
	defer again.Close()
	_ = again.DTLS().SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	k, from, err := again.DTLS().ReadFrom(buf)
	if err != nil || k != len(rec) || from.String() != deviceNum {
		t.Fatalf("after the restart: %d bytes from %v: %v", k, from, err)
	}
}
