package bearer_test

import (
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/pipe"
)

// TestObserveFETCH observes with a FETCH carrying a body (RFC 8132 §2.4, as
// LwM2M Observe-Composite does): the server sees the body on registration
// and again on the deregistration, which Cancel sends as FETCH Observe=1.
func TestObserveFETCH(t *testing.T) {
	obsCh := make(chan *bearer.Observer, 1)
	bodies := make(chan string, 4)
	h := bearer.HandlerFunc(func(w bearer.ResponseWriter, r *bearer.Request) {
		if r.Code != codes.FETCH {
			w.WriteResponse(codes.MethodNotAllowed, nil)
			return
		}
		bodies <- string(r.Payload)
		if o, err := w.Observe(); err == nil {
			obsCh <- o
		}
		w.WriteResponse(codes.Content, []byte("v0"))
	})
	p := newPair(t, h, []pipe.Option{pipe.WithParams(fastParams(time.Second, 4))})
	ctx := ctxT(t, 10*time.Second)

	req := bearer.NewRequest(codes.FETCH, p.cconn.LocalAddr(), "/")
	req.Peer = p.sconn.LocalAddr()
	req.SetOption(bearer.ContentFormatOption(message.AppJSON))
	req.Payload = []byte(`[{"n":"/3/0/9"},{"n":"/3/0/10"}]`)
	got := make(chan string, 8)
	o, err := p.cli.ObserveRequest(ctx, req, func(r *bearer.Response) { got <- string(r.Payload) })
	if err != nil {
		t.Fatal(err)
	}
	if b := <-bodies; b != string(req.Payload) {
		t.Fatalf("registration body %q", b)
	}
	srvObs := <-obsCh
	if err := srvObs.Notify(ctx, codes.Content, []byte("v1")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"v0", "v1"} {
		select {
		case v := <-got:
			if v != want {
				t.Fatalf("got %q, want %q", v, want)
			}
		case <-ctx.Done():
			t.Fatalf("no %q", want)
		}
	}
	if err := o.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-bodies:
		if b != string(req.Payload) {
			t.Fatalf("deregistration body %q", b)
		}
	case <-ctx.Done():
		t.Fatal("no deregistration FETCH")
	}
	select {
	case <-srvObs.Done():
	case <-ctx.Done():
		t.Fatal("server kept the observation after FETCH Observe=1")
	}

	bad := bearer.NewRequest(codes.POST, p.sconn.LocalAddr(), "/")
	if _, err := p.cli.ObserveRequest(ctx, bad, nil); err == nil {
		t.Fatal("POST accepted as an observation")
	}
}
