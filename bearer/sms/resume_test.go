package sms_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/oscore"
	"github.com/m2mbearer/m2mbearer/bearer/secure"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smstest"
)

// peersIn makes every peer of a pair's bearers a peer in mode.
func peersIn(mode sms.Mode) func(side string, c *sms.Config) {
	return func(_ string, c *sms.Config) {
		for k, pc := range c.Peers {
			pc.Security = mode
			c.Peers[k] = pc
		}
	}
}

// dtlsPeers makes every peer of a pair's bearers a DTLS peer.
var dtlsPeers = peersIn(sms.ModeDTLS)

// oscoreParams are the device's and the server's halves of the OSCORE
// context of the SMS tests.
func oscoreParams() (dev, srv oscore.Params) {
	secret := bytes.Repeat([]byte{0x5a}, 16)
	return oscore.Params{MasterSecret: secret, SenderID: []byte{0x01}, RecipientID: []byte{}},
		oscore.Params{MasterSecret: secret, SenderID: []byte{}, RecipientID: []byte{0x01}}
}

// reopen closes one side of the pair (a power cut: nothing more goes out)
// and opens a new bearer on the same SIM with a fresh state, its peer in
// mode.
func reopen(t *testing.T, p *pair, server bool, mode sms.Mode) {
	t.Helper()
	sim, peer, own := p.devSIM, serverNum, deviceNum
	old := &p.dev
	if server {
		sim, peer, own, old = p.srvSIM, deviceNum, serverNum, &p.srv
	}
	(*old).Close()
	b, err := sms.New(sim, sms.Config{
		StateDir: t.TempDir(),
		Peers:    map[string]sms.Peer{peer: {Security: mode, SIM: own}},
		Params:   testParams(2 * time.Second),
		Worker:   outbox.WorkerConfig{Poll: 5 * time.Millisecond, BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	*old = b
	t.Cleanup(func() { b.Close() })
}

// smsServerDTLS is the DTLS profile smsgw runs on SMS: one SMS segment per
// handshake datagram, no cookie exchange, sessions kept for resumption,
// quiet session ends.
func smsServerDTLS(sessions *secure.SessionCache, cid *int) *secure.Config {
	scfg, _ := secureCfg(140)
	scfg.SkipHelloVerify, scfg.QuietClose, scfg.Sessions, scfg.CIDLength = true, true, sessions, cid
	return scfg
}

func smsClientDTLS(sessions *secure.SessionCache, cid *int) *secure.Config {
	_, ccfg := secureCfg(140)
	ccfg.Sessions, ccfg.QuietClose, ccfg.CIDLength = sessions, true, cid
	return ccfg
}

// TestDTLSResumptionAfterDeviceRestart: a device that lost power (no
// close_notify) comes back over SMS with an abbreviated handshake, its
// first request is answered although it may reach the server before the
// server has read the device's Finished (SMS reorders: 20 % here), and the
// old session ends without an alert. i19-cost saw that first request
// time out: the cause was in bearer/secure's demultiplexer and pion's
// abbreviated handshake (see TestResumption there).
func TestDTLSResumptionAfterDeviceRestart(t *testing.T) {
	for _, tc := range []struct {
		name   string
		faults smstest.Faults
	}{
		{"in order", smstest.Faults{Latency: 20 * time.Millisecond}},
		{"reordered", smstest.Faults{Latency: 20 * time.Millisecond, Reorder: 0.2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, tc.faults, dtlsPeers)
			scache, _ := secure.NewSessionCache()
			ccache, _ := secure.NewSessionCache()
			ss, err := secure.NewServer(p.srv, smsServerDTLS(scache, new(0)))
			if err != nil {
				t.Fatal(err)
			}
			sep, err := bearer.NewEndpoint(ss, bearer.WithHandler(costMux()))
			if err != nil {
				t.Fatal(err)
			}
			defer sep.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			srv := mustAddr(t, serverNum)
			for i := range 5 {
				conn, err := secure.Dial(ctx, p.dev, srv, smsClientDTLS(ccache, new(0)))
				if err != nil {
					t.Fatalf("handshake %d: %v", i, err)
				}
				if conn.Resumed() != (i > 0) {
					t.Fatalf("handshake %d resumed: %v", i, conn.Resumed())
				}
				dev, err := bearer.NewEndpoint(conn)
				if err != nil {
					t.Fatal(err)
				}
				if resp, err := dev.Get(ctx, srv, "/3/0/0"); err != nil || string(resp.Payload) != "m2mbearer" {
					t.Fatalf("first request after handshake %d: %v", i, err)
				}
				reopen(t, p, false, sms.ModeDTLS) // the device restarts: its bearer goes, the session with it
				dev.Close()                       // quietly, and on a closed bearer
			}
			deadline := time.Now().Add(10 * time.Second)
			for ss.Stats().Replaced != 4 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if st := ss.Stats(); st.HandshakesOK != 5 || st.Resumed != 4 || st.Replaced != 4 || st.HandshakesFailed != 0 {
				t.Fatalf("server %+v", st)
			}
		})
	}
}
