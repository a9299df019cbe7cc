package gateway

import (
	"net"
	"strings"
	"testing"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
)

// TestCheckSMSPeer: over SMS an endpoint registers only from the number
// configured for it (server.WithPeerCheck turns a refusal into 4.03; see
// lwm2m/server TestPeerCheck).
func TestCheckSMSPeer(t *testing.T) {
	g := &Gateway{devices: map[string]config.SMSDevice{
		"lamp-1": {Endpoint: "lamp-1", MSISDN: "+491710000001"},
		"lamp-2": {Endpoint: "lamp-2", MSISDN: "00491710000002"}, // any form ParseMSISDN takes
	}}
	num := func(s string) net.Addr {
		a, err := sms.ParseMSISDN(s)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	udpPeer := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5683}
	tests := []struct {
		name, ep, transport string
		peer                net.Addr
		want                string // "" = allowed, else part of the error
	}{
		{"own number", "lamp-1", "sms", num("+491710000001"), ""},
		{"other number form", "lamp-2", "sms", num("+491710000002"), ""},
		{"lamp-1 as lamp-2", "lamp-2", "sms", num("+491710000001"), "configured for number +491710000002"},
		{"unknown endpoint over SMS", "lamp-9", "sms", num("+491710000001"), "not in sms.devices"},
		{"UDP is not checked", "lamp-9", "udp", udpPeer, ""},
		{"DTLS is not checked", "lamp-2", "dtls", udpPeer, ""},
	}
	for _, tc := range tests {
		err := g.checkSMSPeer(tc.ep, tc.transport, tc.peer, bearer.Identity{})
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
}
