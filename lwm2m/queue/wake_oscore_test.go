package queue

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/oscore"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
)

// TestWakeOSCOREDevice: the SMS trigger of a device that talks OSCORE
// over SMS. Through the server's Endpoint over its OSCORE context it is an
// OSCORE-protected request the device verifies and executes: 1 SMS, none
// back (No-Response). Written straight onto the SMS bearer (no Endpoint)
// it is refused by the bearer (sms.ErrSecurityMode), costs no SMS, and
// the waker leaves the peer's OSCORE mode alone (Peers set): before, the
// trigger went out unprotected and the device refused it.
func TestWakeOSCOREDevice(t *testing.T) {
	oscorePeers := func(c *sms.Config) {
		c.Peers = map[string]sms.Peer{devNum: {Security: sms.SecurityOSCORE, SIM: srvNum}}
	}
	secret := bytes.Repeat([]byte{0x5a}, 16)
	devP := oscore.Params{MasterSecret: secret, SenderID: []byte{0x01}, RecipientID: []byte{}}
	srvP := oscore.Params{MasterSecret: secret, SenderID: []byte{}, RecipientID: []byte{0x01}}
	side := func(t *testing.T, b bearer.Bearer, p oscore.Params, peer sms.Addr, h bearer.Handler) (*bearer.Endpoint, *oscore.Conn) {
		x, err := oscore.NewContext(p, oscore.NewMemoryStore(), oscore.WithTrustedReplayWindow())
		if err != nil {
			t.Fatal(err)
		}
		conn, err := oscore.New(b, oscore.WithPeer(peer, x))
		if err != nil {
			t.Fatal(err)
		}
		var opts []bearer.EndpointOption
		if h != nil {
			opts = append(opts, bearer.WithHandler(h))
		}
		ep, err := bearer.NewEndpoint(conn, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ep.Close() })
		return ep, conn
	}
	target := WakeTarget{MSISDN: devNum, Version: "1.1", Trigger: true, SIM: srvNum}
	for _, tc := range []struct {
		name     string
		endpoint bool
	}{
		{"through the Endpoint over OSCORE", true},
		{"straight onto the SMS bearer", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, dev := smsPair(t, oscorePeers)
			if err := dev.AddPeer(srvNum, sms.Peer{Security: sms.SecurityOSCORE, SIM: devNum}); err != nil {
				t.Fatal(err)
			}
			srvAddr, _ := sms.ParseMSISDN(srvNum)
			devAddr, _ := sms.ParseMSISDN(devNum)
			var runs atomic.Int32
			mux := bearer.NewServeMux()
			mux.HandleFunc("/1/0/8", func(w bearer.ResponseWriter, r *bearer.Request) {
				runs.Add(1)
				w.WriteResponse(codes.Changed, nil)
			})
			_, devConn := side(t, dev, devP, srvAddr, mux)
			w := NewSMSWaker(srv, srv)
			if tc.endpoint {
				sep, _ := side(t, srv, srvP, devAddr, nil)
				w.Endpoint = sep
			}
			err := w.Wake(context.Background(), "lamp", target)
			sent := func() uint64 { u, _ := srv.Usage(devNum); return sms.Total(u.Sent).Segments }
			back := func() uint64 { u, _ := dev.Usage(srvNum); return sms.Total(u.Sent).Segments }
			if mode, _ := srv.PeerMode(devAddr); mode != sms.SecurityOSCORE {
				t.Fatalf("the waker turned the OSCORE peer into %v", mode)
			}
			if !tc.endpoint {
				if !errors.Is(err, sms.ErrSecurityMode) || !permanentWakeError(err) {
					t.Fatalf("unprotected trigger to an OSCORE peer: %v, want sms.ErrSecurityMode", err)
				}
				if n := sent(); n != 0 {
					t.Fatalf("%d SMS sent", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for deadline := time.Now().Add(20 * time.Second); runs.Load() == 0; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the device never executed the trigger: device OSCORE %v", devConn.Stats())
				}
			}
			time.Sleep(300 * time.Millisecond) // an answer would be on its way by now
			if runs.Load() != 1 || sent() != 1 || back() != 0 {
				t.Fatalf("trigger ran %d times; %d SMS sent, %d back; want 1, 1, 0", runs.Load(), sent(), back())
			}
			if devConn.Counter(oscore.EventVerified) != 1 {
				t.Fatalf("device OSCORE %v: the trigger was not a verified OSCORE request", devConn.Stats())
			}
		})
	}
}
