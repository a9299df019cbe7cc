package client

import (
	"net"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

type rec0 struct {
	code codes.Code
	opts message.Options
}

func (r *rec0) SetOption(o message.Option) { r.opts = r.opts.Set(o) }
func (r *rec0) AddOption(o message.Option) { r.opts = r.opts.Add(o) }
func (r *rec0) WriteResponse(c codes.Code, _ []byte) error {
	r.code = c
	return nil
}
func (r *rec0) Observe() (*bearer.Observer, error) { return nil, bearer.ErrNotObservable }

// FuzzServe feeds arbitrary device management requests to a client: it
// must never panic and must answer with a CoAP response code.
func FuzzServe(f *testing.F) {
	f.Add(uint8(codes.GET), "/3/0", []byte(nil), uint16(0), uint16(11542))
	f.Add(uint8(codes.PUT), "/3311/0/5851", []byte("50"), uint16(0), uint16(0))
	f.Add(uint8(codes.PUT), "/3311/0/5851?pmin=1&pmax=5&st=2", []byte(nil), uint16(65535), uint16(0))
	f.Add(uint8(codes.POST), "/3311", []byte{0x08, 0x01, 0x03, 0xE1, 0x16, 0xDA, 0x01}, uint16(11542), uint16(0))
	f.Add(uint8(codes.POST), "/3311/0", []byte(`[{"n":"/3311/0/5850","vb":true}]`), uint16(110), uint16(0))
	f.Add(uint8(codes.FETCH), "/", []byte(`[{"n":"/3/0/0"}]`), uint16(110), uint16(112))
	f.Add(uint8(codes.IPATCH), "/", []byte{0x81, 0xA2, 0x00, 0x6C}, uint16(112), uint16(0))
	f.Add(uint8(codes.DELETE), "/3311/0", []byte(nil), uint16(0), uint16(0))
	f.Add(uint8(codes.POST), "/3/0/4", []byte("0='x'"), uint16(0), uint16(0))
	f.Add(uint8(codes.GET), "/3", []byte(nil), uint16(0), uint16(40))
	f.Fuzz(func(t *testing.T, code uint8, target string, payload []byte, cf, accept uint16) {
		c, err := New("fuzz")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddDevice(Device{Manufacturer: "x"}); err != nil {
			t.Fatal(err)
		}
		c.AddObject(3311, Handlers{})
		c.Set(path.Resource(3311, 0, 5851), content.NewInt(1))
		defer c.Close()
		req := bearer.NewRequest(codes.Code(code), &net.UDPAddr{}, target)
		if cf != 65535 {
			req.SetOption(bearer.ContentFormatOption(message.MediaType(cf)))
		}
		if accept != 0 {
			req.SetOption(bearer.UintOption(message.Accept, uint32(accept)))
		}
		req.Payload = payload
		w := &rec0{}
		c.ServeCoAP(w, req)
		if w.code == 0 || (w.code>>5 != 2 && w.code>>5 != 4 && w.code>>5 != 5) {
			t.Fatalf("%v %q → %v", codes.Code(code), target, w.code)
		}
	})
}
