package server

import (
	"context"
	"net"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
)

// FuzzPolicy sends arbitrary registration-interface requests from
// arbitrary peers (UDP, DTLS with a PSK identity, SMS) to a server with
// bound names, and checks the policy's invariants on every answer: a
// PSK-bound name is never registered without its PSK, an SMS-bound name
// never from anything but its number, a bound identity or number never
// registers another name, and an unbound name never registers without
// authentication outside the NoSec list.
func FuzzPolicy(f *testing.F) {
	f.Add(uint8(0), "light-dtls-1", "", "", "b=U")
	f.Add(uint8(1), "light-dtls-1", "light-dtls-1", "", "b=U&lt=60")
	f.Add(uint8(1), "light-udp-2", "light-dtls-1", "", "b=U")
	f.Add(uint8(2), "light-sms-1", "", "+491720000003", "b=S")
	f.Add(uint8(2), "light-sms-1", "", "+491720000004", "b=S")
	f.Add(uint8(0), "light-queue-1", "", "", "lwm2m=1.0&b=UQS&sms=4915100000666")
	f.Add(uint8(0), "meter-70", "", "", "b=U")
	f.Add(uint8(2), "x", "", "00491720000003", "b=S")
	nosec, err := NoSecNames("light-udp-*", "light-queue-1")
	if err != nil {
		f.Fatal(err)
	}
	srv := policyFixture(f, nosec, WithLimits(Limits{SourceRate: -1}))
	f.Fuzz(func(t *testing.T, kind uint8, ep, psk, number, query string) {
		var p policyPeer
		switch kind % 3 {
		case 0:
			p = policyPeer{"udp", &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1000}}
		case 1:
			if psk == "" {
				return
			}
			p = dtlsPeer(1000, psk)
		default:
			a, err := sms.ParseMSISDN(number)
			if err != nil {
				return
			}
			p = policyPeer{"sms", a}
		}
		q := "ep=" + ep
		if query != "" {
			q += "&" + query
		}
		w := registerQ(srv, p, q)
		if w.code != codes.Created {
			return
		}
		// The registry is emptied after each registration: the one there
		// is the one just made, whatever name the server parsed.
		var reg *registry.Registration
		srv.Store().Range(func(r *registry.Registration) bool { reg = r; return false })
		if reg == nil {
			t.Fatal("2.01 without a registration")
		}
		defer srv.Store().Remove(context.Background(), reg.ID)
		id := bearer.PeerIdentity(p.addr)
		switch reg.Endpoint {
		case "light-dtls-1":
			if id.Mode != "psk" || string(id.PSKIdentity) != "light-dtls-1" {
				t.Fatalf("PSK-bound name registered by %v %v", p.transport, id)
			}
		case "light-sms-1":
			if p.transport != "sms" || p.addr.String() != "+491720000003" {
				t.Fatalf("SMS-bound name registered from %v", p.addr)
			}
		case "light-queue-1":
			if p.transport == "sms" && p.addr.String() != "+491720000001" {
				t.Fatalf("queue light registered over SMS from %v", p.addr)
			}
		default:
			if string(id.PSKIdentity) == "light-dtls-1" || p.transport == "sms" && (p.addr.String() == "+491720000003" || p.addr.String() == "+491720000001") {
				t.Fatalf("a bound identity registered %q", reg.Endpoint)
			}
			if id.IsZero() && !nosec.Allows(reg.Endpoint) {
				t.Fatalf("NoSec registration of %q outside the list", reg.Endpoint)
			}
		}
	})
}
