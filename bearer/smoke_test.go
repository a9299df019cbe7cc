package bearer_test

import (
	"context"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/pipe"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

func TestSmoke(t *testing.T) {
	a, b, err := pipe.New()
	if err != nil {
		t.Fatal(err)
	}
	mux := bearer.NewServeMux()
	mux.HandleFunc("/hello", func(w bearer.ResponseWriter, r *bearer.Request) {
		w.SetOption(bearer.ContentFormatOption(message.TextPlain))
		_ = w.WriteResponse(codes.Content, []byte("world"))
	})
	srv, err := bearer.NewEndpoint(a, bearer.WithHandler(mux))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli, err := bearer.NewEndpoint(b)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, a.LocalAddr(), "/hello")
	if err != nil {
		t.Fatal(err)
	}
	if resp.Code != codes.Content || string(resp.Payload) != "world" {
		t.Fatalf("got %v %q", resp.Code, resp.Payload)
	}
}
