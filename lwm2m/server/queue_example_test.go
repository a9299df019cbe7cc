package server_test

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// Queue mode: DM calls for queue-mode devices go through a durable queue
// (queue.OpenBoltStore in production). Here a sleeping 1.0 "UQS" light
// gets a queued Read; without a Waker it waits for the light to show up.
func ExampleServer_EnableQueue() {
	store := new(registry.Memory)
	srv, err := server.New(store)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	light := &registry.Registration{Endpoint: "light-7", Lifetime: 86400, Version: registry.V1_0,
		Binding: registry.BindingU | registry.BindingS, Queue: true, SMS: "491710000007",
		Addr: netip.MustParseAddrPort("192.0.2.7:5683"), Registered: time.Now().UnixNano(), Updated: time.Now().UnixNano()}
	light.SetTransport("udp")
	store.Add(context.Background(), light)

	q, err := srv.EnableQueue(server.QueueConfig{Config: queue.Config{Store: queue.NewMemStore()}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()
	id, _ := q.Enqueue(context.Background(), queue.Request{Endpoint: "light-7", Kind: queue.KindRead,
		Paths: []string{"/3/0"}, ContentFormat: queue.NoContentFormat})
	rec, _ := q.Manager().Get(id)
	fmt.Println(rec.Kind, rec.Paths[0], rec.State, len(q.Manager().Pending("light-7")))
	// Output: read /3/0 queued 1
}
