package firmware_test

import (
	"errors"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smstest"
	"github.com/m2mbearer/m2mbearer/lwm2m/client"
	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// TestUpdateSMSPush: an SMS-only streetlight on the in-memory SMS network
// is pushed a small image over SMS, only when allowed, within its budget,
// with the cost known before the start.
func TestUpdateSMSPush(t *testing.T) {
	const srvNum, devNum = "+491710000001", "+491710000002"
	ctx := ctxT(t, 60*time.Second)
	n := smstest.NewNetwork(11, smstest.Faults{})
	worker := outbox.WorkerConfig{Poll: 5 * time.Millisecond, BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond}
	sb, err := sms.New(n.AddSIM(srvNum), sms.Config{StateDir: t.TempDir(), Worker: worker,
		Peers: map[string]sms.Peer{devNum: {Security: sms.SecurityNoSec, SIM: srvNum}}})
	if err != nil {
		t.Fatal(err)
	}
	db, err := sms.New(n.AddSIM(devNum), sms.Config{StateDir: t.TempDir(), Worker: worker,
		Peers: map[string]sms.Peer{srvNum: {Security: sms.SecurityNoSec, SIM: devNum}}})
	if err != nil {
		t.Fatal(err)
	}
	store, err := firmware.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(registry.NewMemory(registry.Options{}))
	sep, err := bearer.NewEndpoint(sb, bearer.WithHandler(srv.Handler("sms")))
	if err != nil {
		t.Fatal(err)
	}
	srv.Attach("sms", sep)
	upd, err := firmware.NewUpdater(firmware.Config{Server: srv, Store: store, Endpoints: map[string]*bearer.Endpoint{"sms": sep},
		Pull: firmware.PullURIs{CoAP: "coap://127.0.0.1:5683/fw/"}})
	if err != nil {
		t.Fatal(err)
	}
	c := client.New("sl-sms", client.WithBinding("S"), client.WithSMSNumber(devNum), client.WithLifetime(3600))
	cep, err := bearer.NewEndpoint(db, bearer.WithHandler(c))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		upd.Close()
		srv.Close()
		c.Close()
		cep.Close()
		sep.Close()
		n.Close()
	})
	if err := c.AddDevice(client.Device{Manufacturer: "m2m", Firmware: "1.0", Binding: "S"}); err != nil {
		t.Fatal(err)
	}
	dev, err := firmware.NewDevice(c, firmware.DeviceConfig{PushOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	srvAddr, _ := sms.ParseMSISDN(srvNum)
	if err := c.Start(ctx, cep, srvAddr); err != nil {
		t.Fatal(err)
	}
	pkg, _ := firmware.BuildPackage("2.0-sms", make([]byte, 400))
	img, err := store.PutBytes(ctx, "small", "2.0-sms", pkg)
	if err != nil {
		t.Fatal(err)
	}
	o := fast()
	o.PollInterval = time.Second
	o.NoObserve = true
	if _, err := upd.Plan(ctx, "sl-sms", img.ID, o); !errors.Is(err, firmware.ErrUnsupported) {
		t.Fatalf("SMS push without permission: %v", err)
	}
	o.AllowSMSPush = true
	plan, err := upd.Plan(ctx, "sl-sms", img.ID, o)
	if err != nil {
		t.Fatal(err)
	}
	// 444 bytes in one block of BlockSize (4 segments), plus 5 small messages.
	if plan.Method != firmware.Push || plan.SMS != 9 || plan.Blocks != 1 {
		t.Fatalf("plan %+v (block %d)", plan, sep.BlockSize())
	}
	t.Logf("SMS push plan: %d bytes, block %d, %d blocks, about %d SMS", img.Size, plan.BlockSize, plan.Blocks, plan.SMS)
	o.MaxSMS = plan.SMS - 1
	if _, err := upd.Update(ctx, "sl-sms", img.ID, o); !errors.Is(err, firmware.ErrBudget) {
		t.Fatalf("over budget: %v", err)
	}
	o.MaxSMS = plan.SMS
	before := sb.Stats().SegmentsQueued
	if _, err := upd.Update(ctx, "sl-sms", img.ID, o); err != nil {
		t.Fatal(err)
	}
	sent := sb.Stats().SegmentsQueued - before
	t.Logf("SMS push: planned %d segments, sent %d", plan.SMS, sent)
	if int(sent) > plan.SMS {
		t.Fatalf("sent %d SMS segments, planned %d", sent, plan.SMS)
	}
	if v, _ := c.Get(path.Resource(3, 0, 3)); v.Str() != "2.0-sms" || dev.Applied() != 1 {
		t.Fatal(v.Str(), dev.Applied())
	}
}
