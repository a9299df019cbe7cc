package queue_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
)

// A Read for a sleeping streetlight waits in a durable queue; when the
// device shows up (the server calls Seen on its Update), it runs and the
// result reaches Wait.
func Example() {
	dir, _ := os.MkdirTemp("", "queue-example")
	defer os.RemoveAll(dir)
	store, err := queue.OpenBoltStore(filepath.Join(dir, "queue.db"), time.Second)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	// The LwM2M server implements Executor on its CoAP endpoint.
	exec := queue.ExecutorFunc(func(ctx context.Context, ep string, req *queue.Request) (*queue.Result, error) {
		return &queue.Result{Code: 0x45, ContentFormat: 0, Payload: []byte("m2mbearer")}, nil
	})
	m, err := queue.New(queue.Config{Store: store, Executor: exec})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	id, err := m.Enqueue(context.Background(), queue.Request{
		Endpoint: "streetlight-17", Kind: queue.KindRead, Paths: []string{"/3/0/0"},
	})
	if err != nil {
		log.Fatal(err)
	}
	rec, _ := m.Get(id)
	fmt.Println("before update:", rec.State)

	m.Seen("streetlight-17", 0) // the device sent an Update

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec, err = m.Wait(ctx, id)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("after update: %s %q\n", rec.State, rec.Result.Payload)
	// Output:
	// before update: queued
	// after update: done "m2mbearer"
}

// The SMS trigger of an LwM2M 1.1 device with the transport argument: a
// CoAP NON POST to /1/0/8 with No-Response 2 (no success answer wanted,
// RFC 7967) and payload 0='U'.
func ExampleTriggerMessage() {
	b, err := queue.TriggerMessage(queue.WakeTarget{Version: "1.1", Trigger: true, TransportArg: "U"}, 0x0001, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("% x\n", b)
	// Output: 50 02 00 01 b1 31 01 30 01 38 10 d1 e9 02 ff 30 3d 27 55 27
}

// Requests of a device that never shows up fail with ErrNotWoken after the
// wake-ups allowed by the WakePolicy.
func ExampleManager_SetDevice() {
	waker := queue.WakerFunc(func(ctx context.Context, ep string, t queue.WakeTarget) error {
		fmt.Println("wake", ep, "via", t.MSISDN)
		return nil // the SMS is lost: the device never shows up
	})
	m, _ := queue.New(queue.Config{
		Store: queue.NewMemStore(), Waker: waker,
		Executor: queue.ExecutorFunc(func(context.Context, string, *queue.Request) (*queue.Result, error) { return nil, nil }),
		Wake:     queue.WakePolicy{Timeout: 10 * time.Millisecond, MaxWakes: new(2), MinInterval: time.Millisecond},
	})
	defer m.Close()
	m.SetDevice("lamp", queue.DeviceConfig{Wake: &queue.WakeTarget{MSISDN: "+491710000002", Version: "1.0", Binding: "UQS"}})
	id, _ := m.Enqueue(context.Background(), queue.Request{Endpoint: "lamp", Kind: queue.KindExecute, Paths: []string{"/3/0/4"}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := m.Wait(ctx, id)
	fmt.Println(err)
	// Output:
	// wake lamp via +491710000002
	// wake lamp via +491710000002
	// request 1 for "lamp": queue: device not woken: queue: device "lamp" not woken after 2 wake-up(s)
}
