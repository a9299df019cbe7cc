package sms_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/oscore"
	"github.com/m2mbearer/m2mbearer/bearer/secure"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smstest"
)

// The SMS security cost table: one test measures, in one run on the
// in-memory SMS network, what each exchange of an SMS-only device costs
// with NoSec, DTLS PSK as smsgw runs it on SMS (TLS_PSK_WITH_AES_128_CCM_8,
// one SMS segment per handshake datagram, no cookie exchange, session
// resumption, no connection ID), the same with a 6-byte RFC 9146
// connection ID, and OSCORE: SMS segments and datagram bytes, both
// directions, from the server bearer's accounting.

func costCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func read(t *testing.T, ep *bearer.Endpoint) {
	t.Helper()
	if resp, err := ep.Get(costCtx(t), mustAddr(t, serverNum), "/3/0/0"); err != nil || string(resp.Payload) != "m2mbearer" {
		t.Fatalf("read: %v", err)
	}
}

func costNoSec(t *testing.T) costRun {
	p := newPair(t, smstest.Faults{}, nil)
	_, dev := endpoints(t, p, costMux())
	m := &meter{t: t, p: p}
	var run costRun
	exchanges(t, m, dev, &run)
	m.start()
	read(t, dev)
	run.devRestartRead, run.srvRestartRead = m.since(), m.since()
	return run
}

// costDTLS measures the DTLS column with connection IDs of cid bytes (0:
// none).
func costDTLS(t *testing.T, cid int) costRun {
	var run costRun
	// The full handshake with a HelloVerifyRequest cookie exchange, as on
	// UDP, for comparison.
	{
		p := newPair(t, smstest.Faults{}, dtlsPeers)
		scfg := smsServerDTLS(nil, new(cid))
		scfg.SkipHelloVerify = false
		ss, err := secure.NewServer(p.srv, scfg)
		if err != nil {
			t.Fatal(err)
		}
		m := &meter{t: t, p: p}
		m.start()
		conn, err := secure.Dial(costCtx(t), p.dev, mustAddr(t, serverNum), smsClientDTLS(nil, new(cid)))
		if err != nil {
			t.Fatal(err)
		}
		run.handshakeHVR = m.since()
		conn.Close()
		ss.Close()
	}
	p := newPair(t, smstest.Faults{}, dtlsPeers)
	scache, _ := secure.NewSessionCache()
	ccache, _ := secure.NewSessionCache()
	startServer := func() *bearer.Endpoint {
		ss, err := secure.NewServer(p.srv, smsServerDTLS(scache, new(cid)))
		if err != nil {
			t.Fatal(err)
		}
		sep, err := bearer.NewEndpoint(ss, bearer.WithHandler(costMux()))
		if err != nil {
			t.Fatal(err)
		}
		return sep
	}
	dial := func(m *meter) (*bearer.Endpoint, cost) {
		m.start()
		conn, err := secure.Dial(costCtx(t), p.dev, mustAddr(t, serverNum), smsClientDTLS(ccache, new(cid)))
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		c := m.since()
		dev, err := bearer.NewEndpoint(conn)
		if err != nil {
			t.Fatal(err)
		}
		return dev, c
	}
	sep := startServer()
	m := &meter{t: t, p: p}
	dev, c := dial(m)
	run.handshake = c
	exchanges(t, m, dev, &run)

	// The device restarts (power cut): it resumes its session.
	reopen(t, p, false, sms.ModeDTLS)
	dev.Close()
	dev, run.abbreviated = dial(m)
	m.start()
	read(t, dev)
	run.devRestartRead = m.since()
	run.devRestartRead.segs += run.abbreviated.segs
	run.devRestartRead.bytes += run.abbreviated.bytes

	// The server restarts (sessions from its file, here its cache): the
	// device's request on its old session finds no session and is lost;
	// the device gives up on it after its first transmission (counted:
	// what it retransmits before it gives up is its own policy) and
	// handshakes again (abbreviated), then reads.
	sep.Close() // closes the server's SMS bearer
	reopen(t, p, true, sms.ModeDTLS)
	sep = startServer()
	defer sep.Close()
	m.start()
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond) // before a retransmission (ACK_TIMEOUT 2 s)
	if _, err := dev.Get(ctx, mustAddr(t, serverNum), "/3/0/0"); err == nil {
		t.Fatal("a request on a session the restarted server does not know was answered")
	}
	cancel()
	lost := m.since()
	if lost.segs != 1 {
		t.Fatalf("the lost request took %v", lost)
	}
	dev.Close()
	reopen(t, p, false, sms.ModeDTLS) // a fresh device bearer for the new session
	dev, hs := dial(m)
	defer dev.Close()
	m.start()
	read(t, dev)
	r := m.since()
	run.srvRestartRead = cost{lost.segs + hs.segs + r.segs, lost.bytes + hs.bytes + r.bytes}
	return run
}

func costOSCORE(t *testing.T) costRun {
	p := newPair(t, smstest.Faults{}, peersIn(sms.ModeOSCORE))
	devP, srvP := oscoreParams()
	devStore, srvStore := oscore.NewMemoryStore(), oscore.NewMemoryStore()
	server, device := mustAddr(t, serverNum), mustAddr(t, deviceNum)
	newSide := func(b bearer.Bearer, params oscore.Params, st oscore.SeqStore, peer sms.Addr, h bearer.Handler, opts ...oscore.ContextOption) *bearer.Endpoint {
		return oscoreEndpoint(t, b, oscore.WithPeer(peer, newOSCOREContext(t, params, st, opts...)), h)
	}
	sep := newSide(p.srv, srvP, srvStore, device, costMux(), oscore.WithTrustedReplayWindow())
	dev := newSide(p.dev, devP, devStore, server, nil, oscore.WithTrustedReplayWindow())
	m := &meter{t: t, p: p}
	var run costRun
	exchanges(t, m, dev, &run)

	// The device restarts: its sequence numbers come from its store.
	reopen(t, p, false, sms.ModeOSCORE)
	dev.Close()
	dev = newSide(p.dev, devP, devStore, server, nil)
	m.start()
	read(t, dev)
	run.devRestartRead = m.since()

	// The server restarts: its replay window is unknown, the first
	// request gets an Echo challenge (RFC 8613 Appendix B.1.2).
	sep.Close()
	reopen(t, p, true, sms.ModeOSCORE)
	sep = newSide(p.srv, srvP, srvStore, device, costMux())
	defer sep.Close()
	defer dev.Close()
	m.start()
	read(t, dev)
	run.srvRestartRead = m.since()
	return run
}

// TestSMSCostTable prints the SMS security cost table of README.md and
// docs/sms-cost.md, measured in one run, and checks its shape: the secured
// exchanges cost what NoSec costs give or take a segment, the abbreviated
// handshake less than the full one, skipping the cookie exchange less
// again, and the CID adds bytes to every record.
func TestSMSCostTable(t *testing.T) {
	n := costNoSec(t)
	d := costDTLS(t, 0)
	c := costDTLS(t, 6)
	o := costOSCORE(t)
	var b strings.Builder
	fmt.Fprintf(&b, "\n| exchange (SMS segments and datagram bytes, both directions) | NoSec | DTLS PSK | DTLS PSK + 6-byte CID | OSCORE |\n|---|---|---|---|---|\n")
	row := func(name string, cells ...string) {
		fmt.Fprintf(&b, "| %s | %s |\n", name, strings.Join(cells, " | "))
	}
	row("full handshake (smsgw on SMS: no cookie exchange)", "–", d.handshake.String(), c.handshake.String(), "– (none)")
	row("full handshake with the cookie exchange (as on UDP)", "–", d.handshakeHVR.String(), c.handshakeHVR.String(), "–")
	row("abbreviated handshake (session resumed)", "–", d.abbreviated.String(), c.abbreviated.String()+" (a resumed session has no CID)", "–")
	row("read of one resource", n.read.String(), d.read.String(), c.read.String(), o.read.String())
	row("write of 500 B", n.write500.String(), d.write500.String(), c.write500.String(), o.write500.String())
	row("firmware push of 8 KiB (Q-Block1)", n.push8k.String(), d.push8k.String(), c.push8k.String(), o.push8k.String())
	row("first read after the device restarted", n.devRestartRead.String(), d.devRestartRead.String()+" (abbreviated + read)",
		c.devRestartRead.String(), o.devRestartRead.String())
	row("first read after the server restarted", n.srvRestartRead.String(), d.srvRestartRead.String()+" (lost request + abbreviated + read)",
		c.srvRestartRead.String(), o.srvRestartRead.String()+" (Echo round trip)")
	over := func(x costRun) string {
		return fmt.Sprintf("+%d B", int(x.read.bytes)-int(n.read.bytes))
	}
	row("per-request overhead (read, both directions)", "0", over(d), over(c), over(o))
	t.Log(b.String())

	if n.read.segs != 2 || n.write500.segs != 5 {
		t.Errorf("NoSec read %v, write %v", n.read, n.write500)
	}
	for name, x := range map[string]costRun{"dtls": d, "dtls+cid": c, "oscore": o} {
		t.Run(name, func(t *testing.T) {
			if x.read.segs != n.read.segs || x.read.bytes <= n.read.bytes || x.write500.segs > n.write500.segs+1 {
				t.Errorf("%s read %v write %v vs NoSec %v %v", name, x.read, x.write500, n.read, n.write500)
			}
		})
	}
	for name, x := range map[string]costRun{"dtls": d, "dtls+cid": c} {
		t.Run(name, func(t *testing.T) {
			if x.abbreviated.bytes >= x.handshake.bytes || x.abbreviated.segs > x.handshake.segs || x.handshake.segs >= x.handshakeHVR.segs {
				t.Errorf("%s: full %v, abbreviated %v, with cookie exchange %v", name, x.handshake, x.abbreviated, x.handshakeHVR)
			}
		})
	}
	if c.read.bytes <= d.read.bytes {
		t.Errorf("a CID adds bytes to every record: %v vs %v", c.read, d.read)
	}
	if o.srvRestartRead.segs != 2*n.read.segs || o.devRestartRead.segs != n.read.segs {
		t.Errorf("OSCORE after restarts: device %v, server %v", o.devRestartRead, o.srvRestartRead)
	}
}

// newOSCOREContext is oscore.NewContext that fails t on error.
func newOSCOREContext(t *testing.T, params oscore.Params, st oscore.SeqStore, opts ...oscore.ContextOption) *oscore.Context {
	t.Helper()
	x, err := oscore.NewContext(params, st, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// oscoreEndpoint is an Endpoint over an OSCORE connection on b with peer,
// serving h when h is not nil. The caller closes it.
func oscoreEndpoint(t *testing.T, b bearer.Bearer, peer oscore.ConnOption, h bearer.Handler) *bearer.Endpoint {
	t.Helper()
	conn, err := oscore.New(b, peer)
	if err != nil {
		t.Fatal(err)
	}
	var eo []bearer.EndpointOption
	if h != nil {
		eo = append(eo, bearer.WithHandler(h))
	}
	ep, err := bearer.NewEndpoint(conn, eo...)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}
