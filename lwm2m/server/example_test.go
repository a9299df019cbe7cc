package server_test

import (
	"fmt"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// Example starts a server on UDP: the Server is the Endpoint's handler and
// sends its own requests through the Endpoint attached under the same
// transport name.
func Example() {
	conn, err := udp.Listen("udp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	srv, err := server.New(new(registry.Memory))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	ep, err := bearer.NewEndpoint(conn, bearer.WithHandler(srv.Handler("udp")))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ep.Close()
	srv.Attach("udp", ep)
	events := srv.Subscribe(1024)
	defer events.Close()
	fmt.Println("registered:", srv.Store().Len())
	// Output: registered: 0
}

func ExampleAuthorize() {
	sec := server.NewStaticSecurity(0)
	sec.Bind("light-a", bearer.Identity{Mode: "psk", PSKIdentity: []byte("key-a")})
	a := bearer.Identity{Mode: "psk", PSKIdentity: []byte("key-a")}
	fmt.Println(server.Authorize(sec, false, "light-a", a))
	fmt.Println(server.Authorize(sec, false, "light-b", a))
	fmt.Println(server.Authorize(sec, true, "light-a", bearer.Identity{}))
	// Output:
	// <nil>
	// lwm2m server: forbidden: identity psk:key-a is bound to another endpoint, not "light-b"
	// lwm2m server: forbidden: endpoint "light-a" requires identity psk:key-a, got none
}
