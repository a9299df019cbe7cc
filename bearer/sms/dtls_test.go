package sms_test

import (
	"bytes"
	"context"
	"errors"
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

var (
	pskIdentity = []byte("streetlight-17")
	pskKey      = []byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}
)

func secureCfg(mtu int) (srv, cli *secure.Config) {
	srv = &secure.Config{
		PSKLookup: func(id []byte) ([]byte, error) {
			if bytes.Equal(id, pskIdentity) {
				return pskKey, nil
			}
			return nil, errors.New("unknown identity")
		},
		HandshakeTimeout: 30 * time.Second,
		FlightInterval:   3 * time.Second,
		MTU:              mtu,
	}
	cli = &secure.Config{PSKIdentity: pskIdentity, PSKKey: pskKey, HandshakeTimeout: 30 * time.Second, FlightInterval: 3 * time.Second, MTU: mtu}
	return srv, cli
}

type dtlsRun struct {
	handshake, get, put, big int // SMS segments, both directions
	bytesGet, bytesPut       int // datagram bytes on the SMS bearer, both directions
	suite                    string
	identity                 string
}

// runDTLS runs a PSK handshake, a GET and a 500-byte PUT over DTLS over SMS
// and counts the SMS segments each took.
func runDTLS(t *testing.T, mtu int) dtlsRun {
	t.Helper()
	p := newPair(t, smstest.Faults{}, func(side string, c *sms.Config) {
		for k := range c.Peers {
			pc := c.Peers[k]
			pc.Security = sms.ModeDTLS
			c.Peers[k] = pc
		}
	})
	scfg, ccfg := secureCfg(mtu)
	below := [2]*countBearer{{Bearer: p.srv}, {Bearer: p.dev}}
	onWire := func() int { return int(below[0].n.Load() + below[1].n.Load()) }
	srv, err := secure.NewServer(below[0], scfg)
	if err != nil {
		t.Fatal(err)
	}
	var ident string
	mux := bearer.NewServeMux()
	mux.HandleFunc("/3/0/0", func(w bearer.ResponseWriter, r *bearer.Request) {
		ident = r.Identity.String()
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
	sep, err := bearer.NewEndpoint(srv, bearer.WithHandler(mux))
	if err != nil {
		t.Fatal(err)
	}
	defer sep.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	server := mustAddr(t, serverNum)
	n0 := p.net.Submitted.Load()
	conn, err := secure.Dial(ctx, below[1], server, ccfg)
	if err != nil {
		t.Fatalf("DTLS handshake over SMS: %v", err)
	}
	// The server's last flight may still be on its way; let it land.
	time.Sleep(100 * time.Millisecond)
	var run dtlsRun
	run.handshake = int(p.net.Submitted.Load() - n0)
	cep, err := bearer.NewEndpoint(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer cep.Close()
	n0 = p.net.Submitted.Load()
	w0 := onWire()
	resp, err := cep.Get(ctx, server, "/3/0/0")
	if err != nil || string(resp.Payload) != "m2mbearer" {
		t.Fatalf("GET over DTLS over SMS: %v", err)
	}
	run.get = int(p.net.Submitted.Load() - n0)
	run.bytesGet = onWire() - w0
	n0, w0 = p.net.Submitted.Load(), onWire()
	resp, err = cep.Put(ctx, server, "/5/0/0", message.AppOctets, bytes.Repeat([]byte{7}, 500))
	if err != nil || resp.Code != codes.Changed {
		t.Fatalf("PUT over DTLS over SMS: %v %v", err, resp)
	}
	run.put = int(p.net.Submitted.Load() - n0)
	run.bytesPut = onWire() - w0
	n0 = p.net.Submitted.Load()
	if resp, err = cep.Get(ctx, server, "/big"); err != nil || len(resp.Payload) != 8192 {
		t.Fatalf("Block2 8 KiB over DTLS over SMS: %v", err)
	}
	run.big = int(p.net.Submitted.Load() - n0)
	run.identity = ident
	run.suite, _ = srv.CipherSuite(mustAddr(t, deviceNum))
	return run
}

func TestDTLSOverSMS(t *testing.T) {
	r := runDTLS(t, 140)
	if r.identity != "psk:streetlight-17" {
		t.Fatalf("identity at the handler: %q", r.identity)
	}
	if !strings.Contains(r.suite, "CCM_8") {
		t.Fatalf("suite %q, want CCM_8", r.suite)
	}
	t.Logf("DTLS PSK over SMS (%s): handshake %d SMS, GET %d, 500-byte PUT %d", r.suite, r.handshake, r.get, r.put)
}

// plainRun counts SMS segments of a GET, a 500-byte PUT and an 8 KiB
// Block2 GET without DTLS.
func plainRun(t *testing.T) (get, put, big int) {
	p := newPair(t, smstest.Faults{}, nil)
	mux := bearer.NewServeMux()
	mux.HandleFunc("/3/0/0", func(w bearer.ResponseWriter, r *bearer.Request) { w.WriteResponse(codes.Content, []byte("m2mbearer")) })
	mux.HandleFunc("/5/0/0", func(w bearer.ResponseWriter, r *bearer.Request) { w.WriteResponse(codes.Changed, nil) })
	mux.HandleFunc("/big", func(w bearer.ResponseWriter, r *bearer.Request) {
		w.WriteResponse(codes.Content, bytes.Repeat([]byte("fw"), 4096))
	})
	_, dev := endpoints(t, p, mux)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n0 := p.net.Submitted.Load()
	if _, err := dev.Get(ctx, mustAddr(t, serverNum), "/3/0/0"); err != nil {
		t.Fatal(err)
	}
	get = int(p.net.Submitted.Load() - n0)
	n0 = p.net.Submitted.Load()
	if _, err := dev.Put(ctx, mustAddr(t, serverNum), "/5/0/0", message.AppOctets, bytes.Repeat([]byte{7}, 500)); err != nil {
		t.Fatal(err)
	}
	put = int(p.net.Submitted.Load() - n0)
	n0 = p.net.Submitted.Load()
	if resp, err := dev.Get(ctx, mustAddr(t, serverNum), "/big"); err != nil || len(resp.Payload) != 8192 {
		t.Fatalf("Block2 8 KiB: %v", err)
	}
	big = int(p.net.Submitted.Load() - n0)
	return get, put, big
}

// TestCostTable prints the SMS cost table of README.md: segments (both
// directions) for a GET, a 500-byte PUT and a DTLS PSK handshake.
func TestCostTable(t *testing.T) {
	get, put, big := plainRun(t)
	d140 := runDTLS(t, 140)
	d1200 := runDTLS(t, 1200)
	var b strings.Builder
	fmt.Fprintf(&b, "\n| exchange (SMS segments, both directions) | NoSec | DTLS PSK, MTU 140 | DTLS PSK, MTU 1200 |\n")
	fmt.Fprintf(&b, "|---|---|---|---|\n")
	fmt.Fprintf(&b, "| DTLS handshake (%s) | - | %d | %d |\n", d140.suite, d140.handshake, d1200.handshake)
	fmt.Fprintf(&b, "| GET /3/0/0 (9-byte answer) | %d | %d | %d |\n", get, d140.get, d1200.get)
	fmt.Fprintf(&b, "| PUT of 500 bytes (one concatenated request, one-SMS answer) | %d | %d | %d |\n", put, d140.put, d1200.put)
	fmt.Fprintf(&b, "| GET of 8 KiB (RFC 9177 Q-Block2, 1 KiB blocks) | %d | %d | %d |\n", big, d140.big, d1200.big)
	t.Log(b.String())
	if get != 2 {
		t.Errorf("a plain GET and its piggybacked answer should take 2 SMS, took %d", get)
	}
}
