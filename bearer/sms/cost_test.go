package sms_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/secure"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smstest"
)

// cost is SMS segments and datagram bytes, both directions together.
type cost struct{ segs, bytes uint64 }

func (c cost) String() string { return fmt.Sprintf("%d SMS, %d B", c.segs, c.bytes) }

// meter measures what crossed the network between the pair's bearers,
// from the server bearer's accounting, after both sides settled.
type meter struct {
	t      *testing.T
	p      *pair
	before cost
}

func (m *meter) now() cost {
	m.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		su, _ := m.p.srv.Usage(deviceNum)
		du, _ := m.p.dev.Usage(serverNum)
		if sms.Total(su.Sent).Datagrams == sms.Total(du.Received).Datagrams && sms.Total(du.Sent).Datagrams == sms.Total(su.Received).Datagrams {
			s, r := sms.Total(su.Sent), sms.Total(su.Received)
			return cost{s.Segments + r.Segments, s.Bytes + r.Bytes}
		}
		if time.Now().After(deadline) {
			m.t.Fatal("SMS still on the way")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (m *meter) start() { m.before = m.now() }

func (m *meter) since() cost {
	n := m.now()
	return cost{n.segs - m.before.segs, n.bytes - m.before.bytes}
}

// costRun is one column of the security cost table.
type costRun struct {
	handshake              cost
	read, write500, push8k cost
}

func costMux() *bearer.ServeMux {
	mux := bearer.NewServeMux()
	mux.HandleFunc("/3/0/0", func(w bearer.ResponseWriter, r *bearer.Request) { w.WriteResponse(codes.Content, []byte("m2mbearer")) })
	mux.HandleFunc("/3/0/15", func(w bearer.ResponseWriter, r *bearer.Request) { w.WriteResponse(codes.Changed, nil) })
	mux.HandleFunc("/5/0/0", func(w bearer.ResponseWriter, r *bearer.Request) { w.WriteResponse(codes.Changed, nil) })
	return mux
}

// exchanges runs the table's exchanges from dev to the server: a read of
// one resource, a 500-byte write, an 8 KiB push (RFC 9177 Q-Block1).
func exchanges(t *testing.T, m *meter, dev *bearer.Endpoint, run *costRun) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := mustAddr(t, serverNum)
	m.start()
	if resp, err := dev.Get(ctx, srv, "/3/0/0"); err != nil || string(resp.Payload) != "m2mbearer" {
		t.Fatalf("read: %v", err)
	}
	run.read = m.since()
	m.start()
	if _, err := dev.Put(ctx, srv, "/3/0/15", message.TextPlain, bytes.Repeat([]byte{'x'}, 500)); err != nil {
		t.Fatalf("write: %v", err)
	}
	run.write500 = m.since()
	m.start()
	if resp, err := dev.Put(ctx, srv, "/5/0/0", message.AppOctets, bytes.Repeat([]byte{7}, 8192)); err != nil || resp.Code != codes.Changed {
		t.Fatalf("push: %v", err)
	}
	run.push8k = m.since()
}

func costNoSec(t *testing.T) costRun {
	p := newPair(t, smstest.Faults{}, nil)
	_, dev := endpoints(t, p, costMux())
	var run costRun
	exchanges(t, &meter{t: t, p: p}, dev, &run)
	return run
}

// costDTLS runs the exchanges over DTLS PSK (CCM_8) over SMS with RFC 9146
// connection IDs of cidLen bytes (-1: none).
func costDTLS(t *testing.T, cidLen int) costRun {
	p := newPair(t, smstest.Faults{}, func(side string, c *sms.Config) {
		for k := range c.Peers {
			pc := c.Peers[k]
			pc.Security = sms.SecurityDTLS
			c.Peers[k] = pc
		}
	})
	scfg, ccfg := secureCfg(140)
	scfg.CIDLength = cidLen
	if cidLen > 0 {
		ccfg.CIDLength = cidLen
	}
	ss, err := secure.NewServer(p.srv, scfg)
	if err != nil {
		t.Fatal(err)
	}
	sep, err := bearer.NewEndpoint(ss, bearer.WithHandler(costMux()))
	if err != nil {
		t.Fatal(err)
	}
	defer sep.Close()
	m := &meter{t: t, p: p}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var run costRun
	m.start()
	conn, err := secure.Dial(ctx, p.dev, mustAddr(t, serverNum), ccfg)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	run.handshake = m.since()
	dev, err := bearer.NewEndpoint(conn)
	if err != nil {
		t.Fatal(err)
	}
	exchanges(t, m, dev, &run)
	return run
}

// TestDTLSCostTable measures, in one run, what each exchange of an
// SMS-only device costs with NoSec, DTLS PSK without connection ID and
// DTLS PSK with a 6-byte RFC 9146 connection ID: SMS segments and
// datagram bytes, both directions, on the in-memory SMS network. It is the
// README's cost table (an OSCORE column is TestSecurityCostTable's).
func TestDTLSCostTable(t *testing.T) {
	n := costNoSec(t)
	d := costDTLS(t, -1)
	c := costDTLS(t, 6)
	var b strings.Builder
	fmt.Fprintf(&b, "\n| exchange (SMS segments and datagram bytes, both directions) | NoSec | DTLS PSK | DTLS PSK + CID |\n|---|---|---|---|\n")
	row := func(name string, x, y, z string) { fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", name, x, y, z) }
	row("full handshake (TLS_PSK_WITH_AES_128_CCM_8, MTU 140)", "-", d.handshake.String(), c.handshake.String())
	row("read of one resource", n.read.String(), d.read.String(), c.read.String())
	row("write of 500 B", n.write500.String(), d.write500.String(), c.write500.String())
	row("firmware push of 8 KiB (Q-Block1)", n.push8k.String(), d.push8k.String(), c.push8k.String())
	t.Log(b.String())
	for name, x := range map[string]costRun{"dtls": d, "dtls+cid": c} {
		if x.read.segs != n.read.segs || x.read.bytes <= n.read.bytes {
			t.Errorf("%s read %v vs NoSec %v", name, x.read, n.read)
		}
		if x.handshake.segs == 0 {
			t.Errorf("%s: no handshake measured", name)
		}
	}
	if c.read.bytes <= d.read.bytes {
		t.Errorf("CID adds bytes per record: %v vs %v", c.read, d.read)
	}
	if n.read.segs != 2 || n.write500.segs != 5 {
		t.Errorf("NoSec read %v, write %v", n.read, n.write500)
	}
}
