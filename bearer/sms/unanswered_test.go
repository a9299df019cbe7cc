package sms_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/oscore"
	"github.com/m2mbearer/m2mbearer/bearer/secure"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smstest"
)

// TestUnansweredRequestOverSMS counts the transmissions of a request
// nobody answers over SMS, where MAX_RETRANSMIT is 0 (the LwM2M SMS
// binding: no CoAP retransmission, SMS has its own store-and-forward):
// exactly one datagram, and the request ends with a *bearer.TimeoutError
// at MAX_TRANSMIT_WAIT. For every security mode (NoSec, DTLS PSK, OSCORE)
// and every Q-Block state of the peer: Q-Block off, support not known yet
// (the RFC 9177 §4.1 probe), known (a GET goes as a NON Q-Block2
// request). Before this test, a GET to a peer known to support Q-Block was
// sent again after NON_RECEIVE_TIMEOUT, doubling, NON_MAX_RETRANSMIT times
// (3 transmissions in 20 s over DTLS over SMS in i19-dtlssms's cost
// table). A Q-Block1 body (3 KiB) to a peer that never answers goes once,
// block by block, followed by RFC 9177's request for a lost final answer
// (the last block again) NON_MAX_RETRANSMIT times.
func TestUnansweredRequestOverSMS(t *testing.T) {
	const ack = 300 * time.Millisecond
	params := testParams(ack) // MAX_TRANSMIT_WAIT 450 ms, NON_RECEIVE_TIMEOUT 600 ms
	mtw := params.MaxTransmitWait()
	big := bytes.Repeat([]byte{0x5a}, 3000) // 3 blocks of 1 KiB
	type method struct {
		name   string
		do     func(ctx context.Context, ep *bearer.Endpoint, to sms.Addr) error
		blocks int // datagrams of the request's body with Q-Block1 (RFC 7959: the first block only)
	}
	methods := []method{
		{"GET", func(ctx context.Context, ep *bearer.Endpoint, to sms.Addr) error {
			_, err := ep.Get(ctx, to, "/3/0/0")
			return err
		}, 1},
		{"PUT small", func(ctx context.Context, ep *bearer.Endpoint, to sms.Addr) error {
			_, err := ep.Put(ctx, to, "/3/0/15", message.TextPlain, []byte("Europe/Berlin"))
			return err
		}, 1},
		{"PUT 3 KiB", func(ctx context.Context, ep *bearer.Endpoint, to sms.Addr) error {
			_, err := ep.Put(ctx, to, "/5/0/0", message.AppOctets, big)
			return err
		}, 3},
	}
	modes := []struct {
		name string
		sec  sms.Mode
		dial func(t *testing.T, p *pair) (dev *bearer.Endpoint)
	}{
		{"NoSec", sms.ModeNoSec, func(t *testing.T, p *pair) *bearer.Endpoint {
			_, dev := endpoints(t, p, costMux())
			return dev
		}},
		{"DTLS PSK", sms.ModeDTLS, func(t *testing.T, p *pair) *bearer.Endpoint {
			ss, err := secure.NewServer(p.srv, smsServerDTLS(nil, new(0)))
			if err != nil {
				t.Fatal(err)
			}
			sep, err := bearer.NewEndpoint(ss, bearer.WithHandler(costMux()))
			if err != nil {
				t.Fatal(err)
			}
			conn, err := secure.Dial(costCtx(t), p.dev, mustAddr(t, serverNum), smsClientDTLS(nil, new(0)))
			if err != nil {
				t.Fatal(err)
			}
			dev, err := bearer.NewEndpoint(conn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { dev.Close(); sep.Close() })
			return dev
		}},
		{"OSCORE", sms.ModeOSCORE, func(t *testing.T, p *pair) *bearer.Endpoint {
			devP, srvP := oscoreParams()
			side := func(b bearer.Bearer, params oscore.Params, peer sms.Addr, h bearer.Handler) *bearer.Endpoint {
				x := newOSCOREContext(t, params, oscore.NewMemoryStore(), oscore.WithTrustedReplayWindow())
				ep := oscoreEndpoint(t, b, oscore.WithPeer(peer, x), h)
				t.Cleanup(func() { ep.Close() })
				return ep
			}
			side(p.srv, srvP, mustAddr(t, deviceNum), costMux())
			return side(p.dev, devP, mustAddr(t, serverNum), nil)
		}},
	}
	qblock := []struct {
		name    string
		enabled bool
		known   bool // a first exchange taught the device the server supports Q-Block
	}{
		{"Q-Block off", false, false},
		{"Q-Block probe", true, false},
		{"Q-Block known", true, true},
	}
	for _, mode := range modes {
		for _, qb := range qblock {
			for _, m := range methods {
				t.Run(fmt.Sprintf("%s/%s/%s", mode.name, qb.name, m.name), func(t *testing.T) {
					t.Parallel()
					p := newPair(t, smstest.Faults{}, func(side string, c *sms.Config) {
						peersIn(mode.sec)(side, c)
						pp := *params
						pp.QBlock.Enabled = qb.enabled
						pp.QBlock.NonMaxRetransmit = 1 // a silent peer's Q-Block1 body ends after 3 × NON_RECEIVE_TIMEOUT
						c.Params = &pp
					})
					dev := mode.dial(t, p)
					server := mustAddr(t, serverNum)
					if qb.known {
						// This read only teaches the device that the server
						// knows Q-Block. SMS requests are never retransmitted,
						// so on a loaded machine an answer later than
						// MAX_TRANSMIT_WAIT ends it: the test reads again.
						ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
						resp, err := dev.Get(ctx, server, "/3/0/0")
						for errors.Is(err, bearer.ErrTimeout) && ctx.Err() == nil {
							resp, err = dev.Get(ctx, server, "/3/0/0")
						}
						cancel()
						if err != nil || string(resp.Payload) != "m2mbearer" {
							t.Fatalf("first read: %v", err)
						}
					}
					settle(t, p)
					// From now on nothing reaches the server: the request is
					// never answered.
					p.net.SetFaults(smstest.Faults{Loss: 1})
					sent0 := sentBy(p.dev)
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					start := time.Now()
					err := m.do(ctx, dev, server)
					took := time.Since(start)
					var te *bearer.TimeoutError
					if !errors.As(err, &te) {
						t.Fatalf("unanswered request ended with %v after %v, want a *bearer.TimeoutError", err, took)
					}
					// Anything sent late (a retransmission timer still
					// running: the first re-send came after NON_RECEIVE_
					// TIMEOUT) shows within one more NON_RECEIVE_TIMEOUT.
					time.Sleep(params.NonReceiveTimeout())
					sent := sentBy(p.dev)
					want := 1 // RFC 7252, RFC 7959: the first block waits for its 2.31
					if qb.known && m.blocks > 1 {
						// Q-Block1: the body's blocks in one burst, then the
						// RFC 9177 recovery of a lost final answer, the last
						// block again, NON_MAX_RETRANSMIT times (1 here).
						want = m.blocks + 1
					}
					if n := sent.Datagrams - sent0.Datagrams; n != uint64(want) {
						t.Errorf("%d datagrams sent (%d SMS), want %d: no CoAP retransmission on SMS", n, sent.Segments-sent0.Segments, want)
					}
					if hs := sent.handshake - sent0.handshake; hs != 0 {
						t.Errorf("%d DTLS handshake datagrams sent during the request", hs)
					}
					// One transmission; the Endpoint gives up at
					// MAX_TRANSMIT_WAIT (a Q-Block1 body after its
					// NON_RECEIVE_TIMEOUT rounds, sending nothing).
					if m.blocks == 1 && took > mtw+4*ack {
						t.Errorf("gave up after %v, want MAX_TRANSMIT_WAIT %v", took, mtw)
					}
					t.Logf("%d datagram(s), %d SMS, %v, %v", sent.Datagrams-sent0.Datagrams, sent.Segments-sent0.Segments, took.Round(time.Millisecond), err)
				})
			}
		}
	}
}

// sent is what a bearer sent to its peer, all purposes, and the DTLS
// handshake datagrams among them.
type sent struct {
	sms.Count
	handshake uint64
}

func sentBy(b *sms.Bearer) sent {
	u := b.TotalUsage()
	return sent{Count: sms.Total(u.Sent), handshake: u.Sent[bearer.PurposeHandshake].Datagrams}
}

// settle waits until both bearers' outboxes are empty and what one sent
// the other received.
func settle(t *testing.T, p *pair) {
	t.Helper()
	m := &meter{t: t, p: p}
	m.since()
}
