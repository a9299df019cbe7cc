package sms_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
)

// cost is SMS segments and datagram bytes, both directions together.
type cost struct{ segs, bytes uint64 }

func (c cost) String() string { return fmt.Sprintf("%d SMS, %d B", c.segs, c.bytes) }

// meter measures what crossed the network between the pair's bearers
// since start, from the server bearer's accounting, after both sides
// settled (what one sent, the other received). A side reopened before
// start (a restart) is measured from its new bearer.
type meter struct {
	t    *testing.T
	p    *pair
	base [4]sms.Count // server sent, server received, device sent, device received
}

func (m *meter) totals() [4]sms.Count {
	su, _ := m.p.srv.Usage(deviceNum)
	du, _ := m.p.dev.Usage(serverNum)
	return [4]sms.Count{sms.Total(su.Sent), sms.Total(su.Received), sms.Total(du.Sent), sms.Total(du.Received)}
}

func (m *meter) start() { m.base = m.totals() }

func (m *meter) since() cost {
	m.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := m.totals()
		var d [4]sms.Count
		for i := range n {
			d[i] = sms.Count{Datagrams: n[i].Datagrams - m.base[i].Datagrams, Segments: n[i].Segments - m.base[i].Segments,
				Bytes: n[i].Bytes - m.base[i].Bytes}
		}
		if d[0].Datagrams == d[3].Datagrams && d[2].Datagrams == d[1].Datagrams {
			return cost{d[0].Segments + d[1].Segments, d[0].Bytes + d[1].Bytes}
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("SMS still on the way: %+v", d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// costRun is one column of the security cost table (costtable_test.go).
type costRun struct {
	handshake, handshakeHVR, abbreviated cost
	read, write500, push8k               cost
	devRestartRead, srvRestartRead       cost
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
