package bearer_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/pipe"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"pgregory.net/rapid"
)

// TestPropertyEchoThroughBlocks: whatever the body size, bearer datagram
// size, method and (moderate) faults, a body goes up (Block1 when large)
// and comes back (Block2 when large) intact, and no datagram exceeds the
// bearer's preferred size.
func TestPropertyEchoThroughBlocks(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		params := fastParams(30*time.Millisecond, 6)
		params.PreferredDatagram = rapid.SampledFrom([]int{140, 300, 600, 1152}).Draw(rt, "preferred")
		size := rapid.IntRange(0, 6000).Draw(rt, "size")
		faults := pipe.Faults{
			Loss:      rapid.SampledFrom([]float64{0, 0.05}).Draw(rt, "loss"),
			Duplicate: rapid.SampledFrom([]float64{0, 0.1}).Draw(rt, "dup"),
			Reorder:   rapid.SampledFrom([]float64{0, 0.1}).Draw(rt, "reorder"),
		}
		method := rapid.SampledFrom([]codes.Code{codes.PUT, codes.POST}).Draw(rt, "method")
		seed := rapid.Int64().Draw(rt, "seed")
		h := bearer.HandlerFunc(func(w bearer.ResponseWriter, r *bearer.Request) {
			_ = w.WriteResponse(codes.Changed, r.Payload)
		})
		a, b, err := pipe.New(pipe.WithParams(params), pipe.WithFaults(faults), pipe.WithSeed(seed))
		if err != nil {
			rt.Fatal(err)
		}
		srv, err := bearer.NewEndpoint(a, bearer.WithHandler(h), bearer.WithSeed(seed))
		if err != nil {
			rt.Fatal(err)
		}
		defer srv.Close()
		cli, err := bearer.NewEndpoint(b, bearer.WithSeed(seed+1))
		if err != nil {
			rt.Fatal(err)
		}
		defer cli.Close()
		body := randomBody(size, uint64(seed))
		r := bearer.NewRequest(method, a.LocalAddr(), "/echo")
		r.SetOption(bearer.ContentFormatOption(message.AppOctets))
		r.Payload = body
		resp, err := cli.Do(ctxT(t, 60*time.Second), r)
		if err != nil {
			rt.Fatalf("size %d: %v", size, err)
		}
		if resp.Code != codes.Changed || !bytes.Equal(resp.Payload, body) {
			rt.Fatalf("size %d: %v with %d bytes", size, resp.Code, len(resp.Payload))
		}
		for _, c := range []*pipe.Conn{a, b} {
			if l := c.Stats().Largest; l > int64(params.PreferredDatagram) {
				rt.Fatalf("%v sent %d bytes > preferred %d", c.LocalAddr(), l, params.PreferredDatagram)
			}
		}
	})
}
