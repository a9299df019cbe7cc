package firmware_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/m2mbearer/m2mbearer/lwm2m/client"
	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
)

type recWaker struct{ got []queue.WakeTarget }

func (r *recWaker) Wake(_ context.Context, _ string, t queue.WakeTarget) error {
	r.got = append(r.got, t)
	return nil
}

func TestQueueWaker(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t, 20*time.Second)
	start := func(name string, opts ...client.Option) {
		c, err := client.New(name, opts...)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := udp.Listen("udp", "127.0.0.1:0")
		ep, err := bearer.NewEndpoint(b, bearer.WithHandler(c))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(); ep.Close() })
		if err := c.Start(ctx, ep, e.addr); err != nil {
			t.Fatal(err)
		}
	}
	start("sleeper", client.WithQueueMode(), client.WithBinding("US"), client.WithSMSNumber("+491720000099"))
	start("ip-only", client.WithQueueMode())
	// A stranger registered with an sms= number and nothing configured.
	start("stranger", client.WithQueueMode(), client.WithBinding("US"), client.WithSMSNumber("+491510000666"))
	provisioned := map[string]string{"sleeper": "+491720000099"}
	rw := &recWaker{}
	w := &firmware.QueueWaker{Waker: rw, Registrations: e.srv.Store(),
		Target: func(r *registry.Registration, t *queue.WakeTarget) { t.MSISDN, t.SIM = provisioned[r.Endpoint], gwNum }}
	if err := w.Wake(ctx, "sleeper"); err != nil {
		t.Fatal(err)
	}
	if len(rw.got) != 1 || rw.got[0].MSISDN != "+491720000099" || !rw.got[0].Trigger || rw.got[0].SIM != gwNum || rw.got[0].Binding != "US" {
		t.Fatalf("%+v", rw.got)
	}
	if err := w.Wake(ctx, "stranger"); !errors.Is(err, firmware.ErrUnsupported) || len(rw.got) != 1 {
		t.Fatalf("woke a registration's own sms= number: %v %+v", err, rw.got)
	}
	if err := w.Wake(ctx, "ip-only"); !errors.Is(err, firmware.ErrUnsupported) {
		t.Fatalf("ip-only: %v", err)
	}
	if err := w.Wake(ctx, "nobody"); err == nil {
		t.Fatal("unregistered woken")
	}
}
