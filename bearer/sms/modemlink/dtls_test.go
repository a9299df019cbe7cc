package modemlink_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/secure"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/modemlink"
	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
	"github.com/m2mbearer/m2mbearer/modem"
	"github.com/m2mbearer/m2mbearer/modem/sim"
)

// TestDTLSOverPTYModems: DTLS 1.2 PSK (TLS_PSK_WITH_AES_128_CCM_8) over the
// SMS bearer over simulated modems on ptys, then a GET and a 500-byte PUT.
func TestDTLSOverPTYModems(t *testing.T) {
	key := []byte("0123456789abcdef")
	n, err := sim.NewNetwork(sim.WithSeed(11), sim.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	mk := func(own, peer string) *sms.Bearer {
		sm, err := n.AddModem(own, sim.WithSendTime(2*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		path, err := sm.OpenPTY()
		if err != nil {
			t.Fatal(err)
		}
		m, err := openModem(path, own)
		if err != nil {
			t.Fatal(err)
		}
		pool, err := modem.NewPool(modem.WithPoolLogger(quiet()))
		if err != nil {
			t.Fatal(err)
		}
		pool.Add(m)
		link, err := modemlink.New(pool)
		if err != nil {
			t.Fatal(err)
		}
		p := params(10 * time.Second)
		b, err := sms.New(link, sms.Config{StateDir: t.TempDir(), Params: &p, Logger: quiet(),
			Peers:  map[string]sms.Peer{peer: {Security: sms.ModeDTLS, SIM: own}},
			Worker: outbox.WorkerConfig{Poll: 10 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { link.Close(); pool.Close() })
		return b
	}
	sb, db := mk(serverNum, deviceNum), mk(deviceNum, serverNum)
	srv, err := secure.NewServer(sb, &secure.Config{
		PSKLookup: func(id []byte) ([]byte, error) {
			if string(id) == "light-1" {
				return key, nil
			}
			return nil, errors.New("unknown")
		},
		FlightInterval: 3 * time.Second, MTU: 140, Logger: quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	var who string
	mux := bearer.NewServeMux()
	mux.HandleFunc("/3/0/0", func(w bearer.ResponseWriter, r *bearer.Request) {
		who = r.Identity.String()
		w.WriteResponse(codes.Content, []byte("m2mbearer"))
	})
	mux.HandleFunc("/5/0/0", func(w bearer.ResponseWriter, r *bearer.Request) {
		if !bytes.Equal(r.Payload, bytes.Repeat([]byte{9}, 500)) {
			w.WriteResponse(codes.BadRequest, nil)
			return
		}
		w.WriteResponse(codes.Changed, nil)
	})
	sep, err := bearer.NewEndpoint(srv, bearer.WithHandler(mux))
	if err != nil {
		t.Fatal(err)
	}
	defer sep.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := time.Now()
	conn, err := secure.Dial(ctx, db, addr(t, serverNum), &secure.Config{PSKIdentity: []byte("light-1"), PSKKey: key,
		FlightInterval: 3 * time.Second, MTU: 140, Logger: quiet()})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	hs := n.Stats().Submitted
	t.Logf("DTLS PSK handshake over pty modems: %v, %d SMS", time.Since(start), hs)
	cep, err := bearer.NewEndpoint(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer cep.Close()
	resp, err := cep.Get(ctx, addr(t, serverNum), "/3/0/0")
	if err != nil || string(resp.Payload) != "m2mbearer" || who != "psk:light-1" {
		t.Fatalf("GET: %v %q", err, who)
	}
	resp, err = cep.Put(ctx, addr(t, serverNum), "/5/0/0", message.AppOctets, bytes.Repeat([]byte{9}, 500))
	if err != nil || resp.Code != codes.Changed {
		t.Fatalf("PUT: %v %v", err, resp)
	}
	t.Logf("GET and 500-byte PUT over DTLS: %d SMS after the handshake", n.Stats().Submitted-hs)
}
