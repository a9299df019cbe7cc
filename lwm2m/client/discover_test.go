package client

import (
	"net"
	"strings"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
)

// TestDiscoverListsExecutables: Discover lists every resource the instance
// has (Core §6.3.3), the executable ones included, which hold no value
// (issue 20: Discover of /3/0 left out Reboot /3/0/4 and Factory Reset
// /3/0/5, so a server's UI offered no Execute).
func TestDiscoverListsExecutables(t *testing.T) {
	c, err := New("disc", WithVersion("1.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.AddServer(Server{Instance: 0, ShortID: 101, Lifetime: 300, Binding: "U"})
	c.AddDevice(Device{Manufacturer: "x"})
	tests := []struct {
		name, path string
		want, not  []string
	}{
		{"instance", "/3/0", []string{"</3/0>", "</3/0/0>", "</3/0/4>", "</3/0/5>"}, nil},
		{"object", "/3", []string{"</3>", "</3/0>", "</3/0/4>", "</3/0/5>"}, nil},
		{"executable resource", "/3/0/4", []string{"</3/0/4>"}, []string{"</3/0/0>"}},
		{"server registration update trigger", "/1/0", []string{"</1/0/8>", "</1/0/1>"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := bearer.NewRequest(codes.GET, &net.UDPAddr{}, tc.path)
			req.SetOption(bearer.UintOption(message.Accept, uint32(message.AppLinkFormat)))
			w := &bodyRec{}
			c.ServeCoAP(w, req)
			got := string(w.body)
			if w.code != codes.Content {
				t.Fatalf("%v %q", w.code, got)
			}
			for _, s := range tc.want {
				if !strings.Contains(got, s+",") && !strings.HasSuffix(got, s) && !strings.Contains(got, s+";") {
					t.Errorf("%q lacks %s", got, s)
				}
			}
			for _, s := range tc.not {
				if strings.Contains(got, s) {
					t.Errorf("%q has %s", got, s)
				}
			}
		})
	}
}
