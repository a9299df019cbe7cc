package bearer_test

import (
	"context"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/pipe"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

func benchPair(b *testing.B, params bearer.Params) *pair {
	h := bearer.HandlerFunc(func(w bearer.ResponseWriter, r *bearer.Request) {
		_ = w.WriteResponse(codes.Content, []byte("hello"))
	})
	return newPair(b, h, []pipe.Option{pipe.WithParams(params), pipe.WithQueue(8192)})
}

// BenchmarkRequestResponse measures one CON GET with a piggybacked
// response over pipe, client and server included.
func BenchmarkRequestResponse(b *testing.B) {
	p := benchPair(b, fastParams(2*time.Second, 4))
	ctx := context.Background()
	peer := p.sconn.LocalAddr()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := p.cli.Get(ctx, peer, "/a"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRequestResponseParallel runs many clients' worth of requests at
// once (NSTART raised so they overlap).
func BenchmarkRequestResponseParallel(b *testing.B) {
	params := fastParams(2*time.Second, 4)
	params.NStart = 64
	p := benchPair(b, params)
	ctx := context.Background()
	peer := p.sconn.LocalAddr()
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := p.cli.Get(ctx, peer, "/a"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkBlock2_64KiB downloads a 64 KiB body in 1024-byte blocks.
func BenchmarkBlock2_64KiB(b *testing.B) {
	body := randomBody(64<<10, 1)
	h := bearer.HandlerFunc(func(w bearer.ResponseWriter, r *bearer.Request) { _ = w.WriteResponse(codes.Content, body) })
	p := newPair(b, h, []pipe.Option{pipe.WithParams(fastParams(2*time.Second, 4))})
	ctx := context.Background()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.cli.Get(ctx, p.sconn.LocalAddr(), "/fw"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServe measures the server side alone: a raw peer sends encoded
// CON GETs (new MID and token each) and reads the piggybacked responses.
func BenchmarkServe(b *testing.B) {
	a, c, err := pipe.New(pipe.WithParams(fastParams(2*time.Second, 4)), pipe.WithQueue(8192))
	if err != nil {
		b.Fatal(err)
	}
	h := bearer.HandlerFunc(func(w bearer.ResponseWriter, r *bearer.Request) {
		_ = w.WriteResponse(codes.Content, []byte("hello"))
	})
	srv, err := bearer.NewEndpoint(a, bearer.WithHandler(h))
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	defer c.Close()
	req := []byte{0x48, 0x01, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0xb1, 'a'}
	buf := make([]byte, 1500)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		req[2], req[3] = byte(i>>8), byte(i)
		req[4], req[5] = byte(i>>16), byte(i>>24)
		if _, err := c.WriteTo(req, a.LocalAddr()); err != nil {
			b.Fatal(err)
		}
		if _, _, err := c.ReadFrom(buf); err != nil {
			b.Fatal(err)
		}
	}
}
