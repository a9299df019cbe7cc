package client

import (
	"net"
	"strings"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

type bodyRec struct {
	rec0
	body []byte
}

func (r *bodyRec) WriteResponse(c codes.Code, b []byte) error {
	r.code, r.body = c, b
	return nil
}

func TestBootstrapInterface(t *testing.T) {
	c, err := New("bs", WithVersion("1.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.AddSecurity(Security{Instance: 0, ServerURI: "coap://bs", Bootstrap: true, Mode: 3})
	c.AddSecurity(Security{Instance: 1, ServerURI: "coaps://dm:5684", Mode: 0, ShortID: 101})
	c.AddServer(Server{Instance: 0, ShortID: 101, Lifetime: 300, Binding: "U"})
	c.AddDevice(Device{Manufacturer: "x"})
	serve := func(code codes.Code, p string, accept bool) *bodyRec {
		req := bearer.NewRequest(code, &net.UDPAddr{}, p)
		if accept {
			req.SetOption(bearer.UintOption(message.Accept, uint32(message.AppLinkFormat)))
		}
		w := &bodyRec{}
		c.ServeCoAP(w, req)
		return w
	}
	// Outside a bootstrap the Security object is out of reach.
	if w := serve(codes.GET, "/0", true); w.code != codes.Unauthorized {
		t.Fatalf("discover /0 outside bootstrap: %v", w.code)
	}
	if w := serve(codes.POST, "/bs", false); w.code != codes.MethodNotAllowed {
		t.Fatalf("finish outside bootstrap: %v", w.code)
	}
	c.mu.Lock()
	c.bsFinish = make(chan struct{})
	c.mu.Unlock()
	w := serve(codes.GET, "/", true)
	got := string(w.body)
	for _, want := range []string{`</>;lwm2m="1.1"`, `</0/1>;ssid=101;uri="coaps://dm:5684"`, `</1/0>;ssid=101`, `</3/0>`} {
		t.Run(want, func(t *testing.T) {
			if w.code != codes.Content || !strings.Contains(got, want) {
				t.Fatalf("bootstrap-discover %v %q lacks %q", w.code, got, want)
			}
		})
	}
	// Bootstrap-Delete keeps the bootstrap account and the Device object.
	if w := serve(codes.DELETE, "/", false); w.code != codes.Deleted {
		t.Fatal(w.code)
	}
	accts := c.Accounts()
	if len(accts) != 1 || !accts[0].Bootstrap {
		t.Fatalf("after delete %+v", accts)
	}
	if _, ok := c.Get(path.Resource(3, 0, 0)); !ok {
		t.Fatal("device object deleted")
	}
	if w := serve(codes.POST, "/bs", false); w.code != codes.Changed {
		t.Fatalf("finish: %v", w.code)
	}
}
