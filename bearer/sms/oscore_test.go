package sms_test

import (
	"bytes"
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/oscore"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smstest"
)

type oscoreRun struct {
	get, put, big int // SMS segments, both directions, steady state
	firstGet      int // the first GET after the server restarted (Echo round trip)
	// CoAP bytes both directions, plain (what the message layer wrote) and
	// protected (what went on the SMS bearer), for the GET and the PUT.
	plainGet, protGet, plainPut, protPut int
	identity                             string
}

// countBearer counts the bytes written through it.
type countBearer struct {
	bearer.Bearer
	n atomic.Int64
}

func (c *countBearer) WriteTo(p []byte, a net.Addr) (int, error) {
	c.n.Add(int64(len(p)))
	return c.Bearer.WriteTo(p, a)
}

// runOSCORE runs a GET, a 500-byte PUT and an 8 KiB Block2 GET from the
// device to the server over OSCORE over SMS and counts SMS segments; then
// restarts the server's context (its replay window is forgotten) and counts
// the first GET again (Appendix B.1.2 Echo round trip).
func runOSCORE(t *testing.T) oscoreRun {
	t.Helper()
	p := newPair(t, smstest.Faults{}, peersIn(sms.ModeOSCORE))
	devP, srvP := oscoreParams()
	devCtx, err := oscore.NewContext(devP, oscore.NewMemoryStore(), oscore.WithTrustedReplayWindow())
	if err != nil {
		t.Fatal(err)
	}
	srvStore := oscore.NewMemoryStore()
	srvCtx, err := oscore.NewContext(srvP, srvStore, oscore.WithTrustedReplayWindow())
	if err != nil {
		t.Fatal(err)
	}
	server, device := mustAddr(t, serverNum), mustAddr(t, deviceNum)
	below := [2]*countBearer{{Bearer: p.srv}, {Bearer: p.dev}}
	sconn, err := oscore.New(below[0], oscore.WithPeer(device, srvCtx))
	if err != nil {
		t.Fatal(err)
	}
	dconn, err := oscore.New(below[1], oscore.WithPeer(server, devCtx))
	if err != nil {
		t.Fatal(err)
	}
	var run oscoreRun
	mux := bearer.NewServeMux()
	mux.HandleFunc("/3/0/0", func(w bearer.ResponseWriter, r *bearer.Request) {
		run.identity = r.Identity.String()
		w.WriteResponse(codes.Content, []byte("m2mbearer"))
	})
	mux.HandleFunc("/5/0/0", func(w bearer.ResponseWriter, r *bearer.Request) {
		if len(r.Payload) != 500 {
			w.WriteResponse(codes.BadRequest, nil)
			return
		}
		w.WriteResponse(codes.Changed, nil)
	})
	mux.HandleFunc("/big", func(w bearer.ResponseWriter, r *bearer.Request) {
		w.WriteResponse(codes.Content, bytes.Repeat([]byte("fw"), 4096))
	})
	above := [2]*countBearer{{Bearer: sconn}, {Bearer: dconn}}
	bytesNow := func() (plain, prot int) {
		return int(above[0].n.Load() + above[1].n.Load()), int(below[0].n.Load() + below[1].n.Load())
	}
	sep, err := bearer.NewEndpoint(above[0], bearer.WithHandler(mux))
	if err != nil {
		t.Fatal(err)
	}
	defer sep.Close()
	cep, err := bearer.NewEndpoint(above[1])
	if err != nil {
		t.Fatal(err)
	}
	defer cep.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n0 := p.net.Submitted.Load()
	pl0, pr0 := bytesNow()
	resp, err := cep.Get(ctx, server, "/3/0/0")
	if err != nil || string(resp.Payload) != "m2mbearer" {
		t.Fatalf("GET over OSCORE over SMS: %v", err)
	}
	run.get = int(p.net.Submitted.Load() - n0)
	pl1, pr1 := bytesNow()
	run.plainGet, run.protGet = pl1-pl0, pr1-pr0
	n0 = p.net.Submitted.Load()
	resp, err = cep.Put(ctx, server, "/5/0/0", message.AppOctets, bytes.Repeat([]byte{7}, 500))
	if err != nil || resp.Code != codes.Changed {
		t.Fatalf("PUT over OSCORE over SMS: %v %v", err, resp)
	}
	run.put = int(p.net.Submitted.Load() - n0)
	pl2, pr2 := bytesNow()
	run.plainPut, run.protPut = pl2-pl1, pr2-pr1
	n0 = p.net.Submitted.Load()
	if resp, err = cep.Get(ctx, server, "/big"); err != nil || len(resp.Payload) != 8192 {
		t.Fatalf("Block2 8 KiB over OSCORE over SMS: %v", err)
	}
	run.big = int(p.net.Submitted.Load() - n0)

	// The server restarts: same keys, sequence numbers from its store,
	// replay window unknown. The first request costs an Echo round trip.
	srv2, err := oscore.NewContext(srvP, srvStore)
	if err != nil {
		t.Fatal(err)
	}
	sconn.BindPeer(device, srv2)
	n0 = p.net.Submitted.Load()
	if resp, err = cep.Get(ctx, server, "/3/0/0"); err != nil || string(resp.Payload) != "m2mbearer" {
		t.Fatalf("GET after the server's restart: %v %v", resp, err)
	}
	run.firstGet = int(p.net.Submitted.Load() - n0)
	if sconn.Counter(oscore.EventEchoChallenge) != 1 || dconn.Counter(oscore.EventEchoRetry) != 1 {
		t.Fatalf("echo counters: server %v device %v", sconn.Stats(), dconn.Stats())
	}
	return run
}

func TestOSCOREOverSMS(t *testing.T) {
	r := runOSCORE(t)
	if r.identity != "oscore:01" {
		t.Fatalf("identity at the handler %q", r.identity)
	}
	if r.get != 2 {
		t.Fatalf("an OSCORE GET and its answer took %d SMS, want 2 (as NoSec)", r.get)
	}
	if r.firstGet != 4 {
		t.Fatalf("the first GET after a restart took %d SMS, want 4 (Echo round trip)", r.firstGet)
	}
	t.Logf("OSCORE over SMS: GET %d SMS (%d bytes, NoSec %d), 500-byte PUT %d SMS (%d bytes, NoSec %d), 8 KiB Block2 %d, first GET after restart %d",
		r.get, r.protGet, r.plainGet, r.put, r.protPut, r.plainPut, r.big, r.firstGet)
}
