package smswake_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smstest"
	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
	"github.com/m2mbearer/m2mbearer/lwm2m/smswake"
)

// A server's SMS bearer wakes an LwM2M 1.1 device on the in-memory SMS
// network: the device's bearer reads the trigger, an Execute of /1/0/8
// asking it to send its Update over UDP.
func Example() {
	network := smstest.NewNetwork(1, smstest.Faults{})
	defer network.Close()
	dir, _ := os.MkdirTemp("", "smswake-example")
	defer os.RemoveAll(dir)
	server, err := sms.New(network.AddSIM("+491710000001"), sms.Config{StateDir: dir + "/server"})
	if err != nil {
		log.Fatal(err)
	}
	defer server.Close()
	device, err := sms.New(network.AddSIM("+491710000002"), sms.Config{StateDir: dir + "/device",
		Peers: map[string]sms.Peer{"+491710000001": {Security: sms.ModeNoSec}}})
	if err != nil {
		log.Fatal(err)
	}
	defer device.Close()

	w := smswake.New(server, server) // the waker adds the device as a NoSec peer
	target := queue.WakeTarget{MSISDN: "+491710000002", Version: "1.1", Trigger: true, TransportArg: "U"}
	if err := w.Wake(context.Background(), "streetlight-17", target); err != nil {
		log.Fatal(err)
	}

	buf := make([]byte, 256)
	device.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, from, err := device.ReadFrom(buf)
	if err != nil {
		log.Fatal(err)
	}
	msg := message.Message{Options: make(message.Options, 0, 8)}
	if _, err := coder.DefaultCoder.Decode(buf[:n], &msg); err != nil {
		log.Fatal(err)
	}
	p, _ := msg.Options.Path()
	fmt.Printf("from %s: %s %s %s %q\n", from, msg.Type, msg.Code, p, msg.Payload)
	// Output:
	// from +491710000001: NonConfirmable POST /1/0/8 "0='U'"
}
