package bearer_test

import (
	"context"
	"fmt"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/pipe"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// A server and a client Endpoint on an in-memory pipe: the same code runs
// on bearer/udp, bearer/secure or bearer/sms.
func ExampleEndpoint() {
	srvConn, cliConn, err := pipe.New(pipe.WithNames("server", "device"))
	if err != nil {
		panic(err)
	}

	mux := bearer.NewServeMux()
	mux.HandleFunc("/3/0/0", func(w bearer.ResponseWriter, r *bearer.Request) {
		w.SetOption(bearer.ContentFormatOption(message.TextPlain))
		_ = w.WriteResponse(codes.Content, []byte("m2mbearer streetlight"))
	})
	server, err := bearer.NewEndpoint(srvConn, bearer.WithHandler(mux))
	if err != nil {
		panic(err)
	}
	defer server.Close()

	client, err := bearer.NewEndpoint(cliConn)
	if err != nil {
		panic(err)
	}
	defer client.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := client.Get(ctx, srvConn.LocalAddr(), "/3/0/0")
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.Code, string(resp.Payload))
	// Output: Content m2mbearer streetlight
}

// Observing a resource: the handler accepts the observation and the
// resource code notifies through the Observer.
func ExampleEndpoint_Observe() {
	srvConn, cliConn, err := pipe.New()
	if err != nil {
		panic(err)
	}
	observers := make(chan *bearer.Observer, 1)
	h := bearer.HandlerFunc(func(w bearer.ResponseWriter, r *bearer.Request) {
		if o, err := w.Observe(); err == nil {
			defer func() { observers <- o }()
		}
		_ = w.WriteResponse(codes.Content, []byte("20.5"))
	})
	server, _ := bearer.NewEndpoint(srvConn, bearer.WithHandler(h))
	defer server.Close()
	client, _ := bearer.NewEndpoint(cliConn)
	defer client.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan string, 4)
	obs, err := client.Observe(ctx, srvConn.LocalAddr(), "/3303/0/5700", func(r *bearer.Response) {
		got <- string(r.Payload)
	})
	if err != nil {
		panic(err)
	}
	o := <-observers
	_ = o.Notify(ctx, codes.Content, []byte("21.0"))
	fmt.Println(<-got, <-got)
	_ = obs.Cancel(ctx)
	<-o.Done()
	fmt.Println("observers left:", server.Observations())
	// Output:
	// 20.5 21.0
	// observers left: 0
}

// Block-wise transfer over an SMS-sized bearer: the block size follows the
// bearer's PreferredDatagram, and Do uploads and downloads transparently.
func ExampleEndpoint_BlockSize() {
	p := bearer.UDPParams("sms-like")
	p.PreferredDatagram = 140
	srvConn, cliConn, err := pipe.New(pipe.WithParams(p))
	if err != nil {
		panic(err)
	}
	h := bearer.HandlerFunc(func(w bearer.ResponseWriter, r *bearer.Request) {
		_ = w.WriteResponse(codes.Changed, []byte(fmt.Sprintf("stored %d bytes", len(r.Payload))))
	})
	server, _ := bearer.NewEndpoint(srvConn, bearer.WithHandler(h))
	defer server.Close()
	client, _ := bearer.NewEndpoint(cliConn)
	defer client.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := client.Put(ctx, srvConn.LocalAddr(), "/5/0/0", message.AppOctets, make([]byte, 1000))
	if err != nil {
		panic(err)
	}
	fmt.Println(client.BlockSize(), string(resp.Payload), cliConn.Stats().Sent, "datagrams")
	// Output: 64 stored 1000 bytes 16 datagrams
}
