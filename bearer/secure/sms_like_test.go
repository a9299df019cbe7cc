package secure_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/pipe"
	"github.com/m2mbearer/m2mbearer/bearer/secure"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// smsLikeParams imitates the SMS binding: small datagrams, no CoAP
// retransmission, long timeouts, a cost per segment.
func smsLikeParams() bearer.Params {
	p := bearer.UDPParams("sms")
	p.MaxDatagram = 134 * 8
	p.PreferredDatagram = 140
	p.MaxRetransmit = 0
	p.AckTimeout = 10 * time.Second
	p.CostPerDatagram = 1
	return p
}

// TestOverSMSLikeBearer: DTLS (PSK, no CID to save bytes, 140-byte
// handshake datagrams) under the Endpoint on a bearer with SMS parameters:
// Params shrink by the record overhead, the Endpoint picks its block size
// from them, and a Block2 transfer works through the session.
func TestOverSMSLikeBearer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hub, err := pipe.NewHub(pipe.WithParams(smsLikeParams()), pipe.WithFaults(pipe.Faults{Delay: 5 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	sb, _ := hub.Conn("+15550001")
	cb, _ := hub.Conn("+15550002")
	psk := []byte("sms-psk-16-bytes")
	srv, err := secure.NewServer(sb, &secure.Config{
		PSKLookup: func([]byte) ([]byte, error) { return psk, nil }, CIDLength: new(0), MTU: 140,
	})
	if err != nil {
		t.Fatal(err)
	}
	if p := srv.Params(); p.Name != "dtls+sms" || p.PreferredDatagram != 140-29 || p.MaxRetransmit != 0 || p.CostPerDatagram != 1 {
		t.Fatalf("params %+v", p)
	}
	body := bytes.Repeat([]byte("lamp "), 120)
	mux := bearer.NewServeMux()
	mux.HandleFunc("/fw", func(w bearer.ResponseWriter, r *bearer.Request) { _ = w.WriteResponse(codes.Content, body) })
	se, err := bearer.NewEndpoint(srv, bearer.WithHandler(mux))
	if err != nil {
		t.Fatal(err)
	}
	defer se.Close()
	conn, err := secure.Dial(ctx, cb, pipe.Addr("+15550001"), &secure.Config{PSKIdentity: []byte("lamp"), PSKKey: psk, MTU: 140})
	if err != nil {
		t.Fatal(err)
	}
	hs := cb.Stats()
	ce, err := bearer.NewEndpoint(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer ce.Close()
	resp, err := ce.Get(ctx, pipe.Addr("+15550001"), "/fw")
	if err != nil || !bytes.Equal(resp.Payload, body) {
		t.Fatalf("GET /fw: %v", err)
	}
	t.Logf("handshake: %d datagrams sent by the device; block size %d; GET of %d bytes: %d more datagrams",
		hs.Sent, ce.BlockSize(), len(body), cb.Stats().Sent-hs.Sent)
	if ce.BlockSize() > 64 {
		t.Errorf("block size %d does not fit %d-byte datagrams", ce.BlockSize(), conn.Params().PreferredDatagram)
	}
}
