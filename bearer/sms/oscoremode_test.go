package sms_test

import (
	"errors"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smstest"
)

// TestOSCOREPeerRefusesPlainRequest: to an OSCORE peer the SMS bearer
// sends CoAP requests only with the OSCORE option (RFC 8613): an
// unprotected request (a trigger written straight onto the bearer) is
// refused with ErrSecurityMode and costs no SMS; responses (an OSCORE
// endpoint may answer a request it cannot verify unprotected) and empty
// messages pass. A NoSec peer takes anything CoAP.
func TestOSCOREPeerRefusesPlainRequest(t *testing.T) {
	enc := func(typ message.Type, code codes.Code, opts ...message.Option) []byte {
		buf := make([]byte, 256)
		n, err := coder.DefaultCoder.Encode(message.Message{Type: typ, Code: code, MessageID: 7, Token: []byte{1, 2},
			Options: opts, Payload: []byte("x")}, buf)
		if err != nil {
			t.Fatal(err)
		}
		return buf[:n]
	}
	path := message.Option{ID: message.URIPath, Value: []byte("1")}
	osc := message.Option{ID: 9, Value: []byte{0x09, 0x01}}
	for _, tc := range []struct {
		name    string
		mode    sms.Mode
		dg      []byte
		refused bool
	}{
		{"OSCORE peer, plain request (a raw trigger)", sms.ModeOSCORE, enc(message.NonConfirmable, codes.POST, path), true},
		{"OSCORE peer, protected request", sms.ModeOSCORE, enc(message.Confirmable, codes.POST, osc), false},
		{"OSCORE peer, unprotected error response", sms.ModeOSCORE, enc(message.Acknowledgement, codes.Unauthorized), false},
		{"OSCORE peer, empty ACK", sms.ModeOSCORE, []byte{0x60, 0x00, 0x00, 0x07}, false},
		{"NoSec peer, plain request", sms.ModeNoSec, enc(message.NonConfirmable, codes.POST, path), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, smstest.Faults{}, peersIn(tc.mode))
			_, err := p.srv.WriteTo(tc.dg, mustAddr(t, deviceNum))
			if tc.refused != errors.Is(err, sms.ErrSecurityMode) || (!tc.refused && err != nil) {
				t.Fatalf("WriteTo: %v, refused want %v", err, tc.refused)
			}
			if u, _ := p.srv.Usage(deviceNum); tc.refused && sms.Total(u.Sent).Segments != 0 {
				t.Fatalf("a refused datagram cost %d SMS", sms.Total(u.Sent).Segments)
			}
		})
	}
}
