package udp_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// A CoAP server and a client on the UDP bearer: udp.Listen gives the
// bearer, bearer.NewEndpoint runs the CoAP message layer on it.
func Example() {
	// Server: answer GET /3/0/0 (LwM2M Device Manufacturer).
	mux := bearer.NewServeMux()
	mux.HandleFunc("/3/0/0", func(w bearer.ResponseWriter, r *bearer.Request) {
		w.SetOption(bearer.ContentFormatOption(message.TextPlain))
		_ = w.WriteResponse(codes.Content, []byte("Streetlight Co."))
	})
	srvConn, err := udp.Listen("udp", "127.0.0.1:0") // "[::]:5683" in production
	if err != nil {
		log.Fatal(err)
	}
	server, err := bearer.NewEndpoint(srvConn, bearer.WithHandler(mux))
	if err != nil {
		log.Fatal(err)
	}
	defer server.Close()

	// Client: its own UDP bearer, any free port.
	cliConn, err := udp.Listen("udp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	client, err := bearer.NewEndpoint(cliConn)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := client.Get(ctx, srvConn.LocalAddr(), "/3/0/0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.Code, string(resp.Payload))
	fmt.Println(srvConn.Params().Name, srvConn.Params().MaxRetransmit, srvConn.Params().AckTimeout)
	// Output:
	// Content Streetlight Co.
	// udp 4 2s
}

// Dial gives a bearer bound to one peer: a device talking to its LwM2M
// server. Datagrams from anyone else never reach it.
func ExampleDial() {
	srv, err := udp.Listen("udp4", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dev, err := udp.Dial(ctx, "udp4", srv.LocalAddr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()
	if _, err := dev.WriteTo([]byte{0x40, 0x00, 0x00, 0x01}, dev.RemoteAddr()); err != nil { // CoAP ping
		log.Fatal(err)
	}
	buf := make([]byte, srv.Params().MaxDatagram+1)
	_ = srv.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, from, err := srv.ReadFrom(buf)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d bytes from the device: %v\n", n, from.String() == dev.LocalAddr().String())
	// Output:
	// 4 bytes from the device: true
}

// WriteTo refuses what UDP cannot carry, with a sentinel error callers can
// branch on.
func ExampleConn_WriteTo() {
	p := bearer.UDPParams("udp")
	p.MaxDatagram, p.PreferredDatagram = 1280, 1152 // e.g. a 6LoWPAN-friendly limit
	c, err := udp.Listen("udp", "127.0.0.1:0", udp.WithParams(p))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	_, err = c.WriteTo(make([]byte, 1281), c.LocalAddr())
	fmt.Println(errors.Is(err, bearer.ErrTooLarge))
	// Output:
	// true
}
