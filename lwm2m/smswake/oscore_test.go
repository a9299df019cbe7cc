package smswake

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
	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
)

// oscoreSide puts b under OSCORE with the context of p for peer and
// returns an Endpoint over it (serving h when not nil).
func oscoreSide(t *testing.T, b bearer.Bearer, p oscore.Params, peer sms.Addr, h bearer.Handler) (*bearer.Endpoint, *oscore.Conn) {
	t.Helper()
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

// TestWakeSecuredDevice: the SMS trigger of a device whose SMS binding is
// secured. Through the server's Endpoint over the device's OSCORE context
// it is an OSCORE-protected request the device verifies and executes: 1
// SMS, none back (No-Response). Every path that would send it unprotected
// is refused with ErrUnprotectedTrigger (wrapping sms.ErrSecurityMode),
// costs no SMS, is counted (Refused) and leaves the peer's mode alone:
// written straight onto the SMS bearer (no Endpoint) to an OSCORE or a
// DTLS peer, or through an Endpoint that has no OSCORE context for the
// number. Before, the trigger went out unprotected and the device refused
// it.
func TestWakeSecuredDevice(t *testing.T) {
	secret := bytes.Repeat([]byte{0x5a}, 16)
	devP := oscore.Params{MasterSecret: secret, SenderID: []byte{0x01}, RecipientID: []byte{}}
	srvP := oscore.Params{MasterSecret: secret, SenderID: []byte{}, RecipientID: []byte{0x01}}
	target := queue.WakeTarget{MSISDN: devNum, Version: "1.1", Trigger: true, SIM: srvNum}
	for _, tc := range []struct {
		name     string
		mode     sms.Mode
		endpoint string // "oscore": over the device's context; "plain": over the bare bearer; "": none
		peers    bool   // the waker's Peers set (it would configure the peer as NoSec)
	}{
		{"OSCORE peer, through the Endpoint over its context", sms.ModeOSCORE, "oscore", true},
		{"OSCORE peer, straight onto the SMS bearer", sms.ModeOSCORE, "", true},
		{"OSCORE peer, straight onto the SMS bearer, no Peers", sms.ModeOSCORE, "", false},
		{"OSCORE peer, through an Endpoint without its context", sms.ModeOSCORE, "plain", false},
		{"DTLS peer, straight onto the SMS bearer", sms.ModeDTLS, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, dev := smsPair(t, func(c *sms.Config) {
				c.Peers = map[string]sms.Peer{devNum: {Security: tc.mode, SIM: srvNum}}
			})
			if err := dev.AddPeer(srvNum, sms.Peer{Security: sms.ModeOSCORE, SIM: devNum}); err != nil {
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
			_, devConn := oscoreSide(t, dev, devP, srvAddr, mux)
			var peers PeerSetter
			if tc.peers {
				peers = srv
			}
			w := New(srv, peers)
			switch tc.endpoint {
			case "oscore":
				w.Endpoint, _ = oscoreSide(t, srv, srvP, devAddr, nil)
			case "plain":
				ep, err := bearer.NewEndpoint(srv)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { ep.Close() })
				w.Endpoint = ep
			}
			err := w.Wake(context.Background(), "lamp", target)
			sent := func() uint64 { u, _ := srv.Usage(devNum); return sms.Total(u.Sent).Segments }
			back := func() uint64 { u, _ := dev.Usage(srvNum); return sms.Total(u.Sent).Segments }
			if mode, _ := srv.PeerMode(devAddr); mode != tc.mode {
				t.Fatalf("the waker turned the %v peer into %v", tc.mode, mode)
			}
			if tc.endpoint != "oscore" {
				if !errors.Is(err, queue.ErrUnprotectedTrigger) || !errors.Is(err, sms.ErrSecurityMode) || !errors.Is(err, queue.ErrWakeRefused) {
					t.Fatalf("unprotected trigger to a %v peer: %v, want ErrUnprotectedTrigger", tc.mode, err)
				}
				time.Sleep(100 * time.Millisecond) // the outbox would have sent it by now
				if n := sent(); n != 0 || w.Refused() != 1 {
					t.Fatalf("%d SMS sent, %d refusals counted; want 0, 1", n, w.Refused())
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
			if runs.Load() != 1 || sent() != 1 || back() != 0 || w.Refused() != 0 {
				t.Fatalf("trigger ran %d times; %d SMS sent, %d back, %d refused; want 1, 1, 0, 0", runs.Load(), sent(), back(), w.Refused())
			}
			u, _ := srv.Usage(devNum)
			t.Logf("protected trigger: %+v", sms.Total(u.Sent))
			if devConn.Counter(oscore.EventVerified) != 1 {
				t.Fatalf("device OSCORE %v: the trigger was not a verified OSCORE request", devConn.Stats())
			}
		})
	}
}

// TestManagerUnprotectedTrigger: the Manager takes the refusal of an
// unprotected trigger as final (no second attempt that would cost or
// downgrade anything): the queued request fails with ErrNotWoken caused by
// ErrUnprotectedTrigger, counted as wake_errors and
// wake_refused_unprotected, and no SMS left.
func TestManagerUnprotectedTrigger(t *testing.T) {
	srv, _ := smsPair(t, func(c *sms.Config) {
		c.Peers = map[string]sms.Peer{devNum: {Security: sms.ModeOSCORE, SIM: srvNum}}
	})
	met := &counters{}
	w := New(srv, srv)
	m, err := queue.New(queue.Config{Store: queue.NewMemStore(), Executor: executor, Waker: w, Metrics: met,
		Wake: queue.WakePolicy{MinInterval: time.Millisecond, Timeout: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.SetDevice("lamp", queue.DeviceConfig{Wake: &queue.WakeTarget{MSISDN: devNum, Version: "1.1", Trigger: true, SIM: srvNum}})
	id, err := m.Enqueue(context.Background(), queue.Request{Endpoint: "lamp", Kind: queue.KindRead, Paths: []string{"/3/0"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = m.Wait(ctx, id)
	if !errors.Is(err, queue.ErrNotWoken) || !errors.Is(err, queue.ErrUnprotectedTrigger) {
		t.Fatalf("err %v, want ErrNotWoken caused by ErrUnprotectedTrigger", err)
	}
	refused, wakeErrs, wakeups := met.get("wake_refused_unprotected"), met.get("wake_errors"), met.get("wakeups")
	if refused != 1 || wakeErrs != 1 || wakeups != 0 || w.Refused() != 1 {
		t.Fatalf("wake_refused_unprotected %v, wake_errors %v, wakeups %v, waker refused %d; want 1, 1, 0, 1", refused, wakeErrs, wakeups, w.Refused())
	}
	if u, _ := srv.Usage(devNum); sms.Total(u.Sent).Segments != 0 {
		t.Fatalf("%d SMS sent", sms.Total(u.Sent).Segments)
	}
}
