package client_test

import (
	"context"
	"fmt"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/pipe"
	"github.com/m2mbearer/m2mbearer/lwm2m/client"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// Example runs a streetlight client against the server over an in-memory
// bearer pair: register, read, switch the light on, de-register.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	serverSide, deviceSide, err := pipe.New(pipe.WithNames("server", "light"))
	if err != nil {
		panic(err)
	}

	srv, err := server.New(new(registry.Memory))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	sep, _ := bearer.NewEndpoint(serverSide, bearer.WithHandler(srv.Handler("pipe")))
	defer sep.Close()
	srv.Attach("pipe", sep)
	events := srv.Subscribe(16)

	light, err := client.New("urn:imei:490154203237518", client.WithLifetime(300))
	if err != nil {
		fmt.Println(err)
		return
	}
	light.AddDevice(client.Device{Manufacturer: "ACME", Model: "SL-1"})
	light.AddObject(3311, client.Handlers{})
	light.Set(path.Resource(3311, 0, 5850), content.NewBool(false))
	dep, _ := bearer.NewEndpoint(deviceSide, bearer.WithHandler(light))
	defer dep.Close()
	defer light.Close()
	if err := light.Start(ctx, dep, pipe.Addr("server")); err != nil {
		fmt.Println(err)
		return
	}
	ev := <-events.C
	fmt.Println(ev.Kind, ev.Registration.Endpoint, ev.Registration.Links())

	v, _ := srv.Read(ctx, "urn:imei:490154203237518", path.Resource(3, 0, 0))
	fmt.Println("manufacturer:", v.Text())
	srv.WriteValues(ctx, "urn:imei:490154203237518", path.Resource(3311, 0, 5850), server.Replace,
		content.Record{Path: path.Resource(3311, 0, 5850), Value: content.NewBool(true)})
	on, _ := light.Get(path.Resource(3311, 0, 5850))
	fmt.Println("light on:", on.Bool())

	light.Deregister(ctx)
	fmt.Println((<-events.C).Kind)
	// Output:
	// registered urn:imei:490154203237518 </3>;ver=1.1,</3/0>,</3311/0>
	// manufacturer: ACME
	// light on: true
	// deregistered
}
