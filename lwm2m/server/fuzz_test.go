package server

import (
	"net"
	"strings"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
)

// FuzzRegistrationInterface feeds arbitrary requests to the registration
// interface: it must never panic and must answer every request with a
// success code of the operation or an LwM2M error code.
func FuzzRegistrationInterface(f *testing.F) {
	f.Add(uint8(codes.POST), "/rd?ep=x&lt=300&lwm2m=1.1&b=U", []byte("</1/0>,</3/0>"), uint16(40))
	f.Add(uint8(codes.POST), "/rd?ep=a&b=UQS&sms=+1555", []byte(`</>;rt="oma.lwm2m";ct=11543,</3/0>`), uint16(40))
	f.Add(uint8(codes.POST), "/rd/1?lt=60&b=T", []byte("</3/0>"), uint16(40))
	f.Add(uint8(codes.DELETE), "/rd/1", []byte(nil), uint16(0))
	f.Add(uint8(codes.POST), "/dp", []byte(`[{"n":"/3/0/0","vs":"x"}]`), uint16(110))
	f.Add(uint8(codes.GET), "/rd/%00", []byte("<"), uint16(50))
	allowed := map[codes.Code]bool{
		codes.Created: true, codes.Changed: true, codes.Deleted: true,
		codes.BadRequest: true, codes.Forbidden: true, codes.NotFound: true, codes.MethodNotAllowed: true,
		codes.PreconditionFailed: true, codes.UnsupportedMediaType: true, codes.ServiceUnavailable: true,
		codes.RequestEntityTooLarge: true,
	}
	// One peer at fuzzing speed: the source rate would answer 4.29 to
	// nearly everything and hide the parsers from the fuzzer.
	store, err := registry.NewMemory(registry.Options{MaxRegistrations: 64})
	if err != nil {
		f.Fatal(err)
	}
	srv, err := New(store, WithLimits(Limits{SourceRate: -1}))
	if err != nil {
		f.Fatal(err)
	}
	defer srv.Close()
	h := srv.Handler("udp")
	peer := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5683}
	f.Fuzz(func(t *testing.T, code uint8, target string, payload []byte, cf uint16) {
		req := bearer.NewRequest(codes.Code(code), peer, target)
		if cf != 0 {
			req.SetOption(bearer.ContentFormatOption(message.MediaType(cf)))
		}
		req.Payload = payload
		w := &recorder{}
		h.ServeCoAP(w, req)
		if !allowed[w.code] {
			t.Fatalf("%v %q → %v", codes.Code(code), target, w.code)
		}
		if w.code == codes.Created && !strings.HasPrefix(optionsLocation(w.opts), "/rd/") {
			t.Fatalf("2.01 without location")
		}
	})
}

func optionsLocation(opts message.Options) string {
	var sb strings.Builder
	for _, o := range opts {
		if o.ID == message.LocationPath {
			sb.WriteString("/" + string(o.Value))
		}
	}
	return sb.String()
}
