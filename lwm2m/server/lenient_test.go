package server

import (
	"testing"

	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// TestLenientBindingRegister: a 1.1 Register with b=UQS and a 1.2 one with
// b=UQ (what deployed clients send, and what Wakaama's server accepts) are
// registered in queue mode and counted; the Update with b=UQ too. With
// WithStrictBinding(true) they are refused with 4.00.
func TestLenientBindingRegister(t *testing.T) {
	tests := []struct {
		name, query string
		strict      bool
		code        codes.Code
	}{
		{"1.1 UQS accepted", "/rd?ep=a&lwm2m=1.1&b=UQS", false, codes.Created},
		{"1.2 UQ accepted", "/rd?ep=b&lwm2m=1.2&b=UQ", false, codes.Created},
		{"1.1 UQS strict", "/rd?ep=c&lwm2m=1.1&b=UQS", true, codes.BadRequest},
		{"1.2 UQ strict", "/rd?ep=d&lwm2m=1.2&b=UQ", true, codes.BadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, WithStrictBinding(tc.strict))
			d := newDevice(t)
			resp := post(t, d, f.addr, tc.query, "</1/0>,</3/0>")
			if resp.Code != tc.code {
				t.Fatalf("Register: %v %s, want %v", resp.Code, resp.Payload, tc.code)
			}
			st := f.srv.Stats()
			if tc.strict {
				if st.LenientBinding.Load() != 0 || st.Rejected.Load() != 1 {
					t.Fatalf("strict: lenient %d rejected %d", st.LenientBinding.Load(), st.Rejected.Load())
				}
				return
			}
			if st.LenientBinding.Load() != 1 {
				t.Fatalf("LenientBinding = %d", st.LenientBinding.Load())
			}
			reg, ok := f.srv.Lookup(tc.query[len("/rd?ep=") : len("/rd?ep=")+1])
			if !ok || !reg.Queue {
				t.Fatalf("registration %+v", reg)
			}
			if resp := post(t, d, f.addr, reg.Location()+"?b=UQ", ""); resp.Code != codes.Changed {
				t.Fatalf("Update b=UQ: %v %s", resp.Code, resp.Payload)
			}
			if st.LenientBinding.Load() != 2 {
				t.Fatalf("LenientBinding after Update = %d", st.LenientBinding.Load())
			}
		})
	}
}
