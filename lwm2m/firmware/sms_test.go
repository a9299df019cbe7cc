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

// smsPushEnv is a gateway (LwM2M server, Updater) and one SMS-only
// streetlight (push only) on the in-memory SMS network.
type smsPushEnv struct {
	sb, db   *sms.Bearer
	sep, cep *bearer.Endpoint
	devMet   *bearer.Counters
	store    *firmware.Store
	upd      *firmware.Updater
	c        *client.Client
	dev      *firmware.Device
}

func newSMSPushEnv(t *testing.T) *smsPushEnv {
	t.Helper()
	const srvNum, devNum = "+491710000001", "+491710000002"
	ctx := ctxT(t, 60*time.Second)
	n := smstest.NewNetwork(11, smstest.Faults{})
	worker := outbox.WorkerConfig{Poll: 5 * time.Millisecond, BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond}
	e := &smsPushEnv{devMet: new(bearer.Counters)}
	var err error
	e.sb, err = sms.New(n.AddSIM(srvNum), sms.Config{StateDir: t.TempDir(), Worker: worker,
		Peers: map[string]sms.Peer{devNum: {Security: sms.SecurityNoSec, SIM: srvNum}}})
	if err != nil {
		t.Fatal(err)
	}
	e.db, err = sms.New(n.AddSIM(devNum), sms.Config{StateDir: t.TempDir(), Worker: worker,
		Peers: map[string]sms.Peer{srvNum: {Security: sms.SecurityNoSec, SIM: devNum}}})
	if err != nil {
		t.Fatal(err)
	}
	if e.store, err = firmware.OpenStore(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	srv := server.New(registry.NewMemory(registry.Options{}))
	if e.sep, err = bearer.NewEndpoint(e.sb, bearer.WithHandler(srv.Handler("sms"))); err != nil {
		t.Fatal(err)
	}
	srv.Attach("sms", e.sep)
	e.upd, err = firmware.NewUpdater(firmware.Config{Server: srv, Store: e.store, Endpoints: map[string]*bearer.Endpoint{"sms": e.sep},
		Pull: firmware.PullURIs{CoAP: "coap://127.0.0.1:5683/fw/"}})
	if err != nil {
		t.Fatal(err)
	}
	e.c = client.New("sl-sms", client.WithBinding("S"), client.WithSMSNumber(devNum), client.WithLifetime(3600))
	if e.cep, err = bearer.NewEndpoint(e.db, bearer.WithHandler(e.c), bearer.WithMetrics(e.devMet)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.upd.Close()
		srv.Close()
		e.c.Close()
		e.cep.Close()
		e.sep.Close()
		n.Close()
	})
	if err := e.c.AddDevice(client.Device{Manufacturer: "m2m", Firmware: "1.0", Binding: "S"}); err != nil {
		t.Fatal(err)
	}
	if e.dev, err = firmware.NewDevice(e.c, firmware.DeviceConfig{PushOnly: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.dev.Close() })
	srvAddr, _ := sms.ParseMSISDN(srvNum)
	if err := e.c.Start(ctx, e.cep, srvAddr); err != nil {
		t.Fatal(err)
	}
	return e
}

// smsOptions are the update options of the SMS tests: polling, no observe.
func smsOptions() firmware.Options {
	o := fast()
	o.PollInterval = time.Second
	o.NoObserve = true
	return o
}

// TestUpdateSMSPush: an SMS-only streetlight on the in-memory SMS network
// is pushed a small image over SMS, only when allowed, within its budget,
// with the cost known before the start.
func TestUpdateSMSPush(t *testing.T) {
	e := newSMSPushEnv(t)
	ctx := ctxT(t, 60*time.Second)
	upd, sb, sep, c, dev := e.upd, e.sb, e.sep, e.c, e.dev
	pkg, _ := firmware.BuildPackage("2.0-sms", make([]byte, 400))
	img, err := e.store.PutBytes(ctx, "small", "2.0-sms", pkg)
	if err != nil {
		t.Fatal(err)
	}
	o := smsOptions()
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

// TestUpdateSMSPushQBlock: an 8 KiB image pushed over SMS to our client,
// which announced RFC 9177 in its Register: the push goes with Q-Block1,
// the device answers the whole body once instead of every block, and the
// gateway sends no more than the plan says.
func TestUpdateSMSPushQBlock(t *testing.T) {
	e := newSMSPushEnv(t)
	ctx := ctxT(t, 60*time.Second)
	devAddr, _ := sms.ParseMSISDN("+491710000002")
	if ok, known := e.sep.QBlockSupport(devAddr); !ok || !known {
		t.Fatalf("the gateway did not learn the device's Q-Block support from its Register: %v %v", ok, known)
	}
	payload := make([]byte, 8<<10)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	pkg, _ := firmware.BuildPackage("2.1-sms", payload)
	img, err := e.store.PutBytes(ctx, "big", "2.1-sms", pkg)
	if err != nil {
		t.Fatal(err)
	}
	o := smsOptions()
	o.AllowSMSPush = true
	plan, err := e.upd.Plan(ctx, "sl-sms", img.ID, o)
	if err != nil {
		t.Fatal(err)
	}
	sent0, back0 := e.sb.Stats().SegmentsQueued, e.db.Stats().SegmentsQueued
	if _, err := e.upd.Update(ctx, "sl-sms", img.ID, o); err != nil {
		t.Fatal(err)
	}
	sent, back := e.sb.Stats().SegmentsQueued-sent0, e.db.Stats().SegmentsQueued-back0
	t.Logf("Q-Block push of %d bytes (%d blocks): gateway sent %d SMS (plan %d), device %d", img.Size, plan.Blocks, sent, plan.SMS, back)
	if e.devMet.Get(bearer.EventQBlockTransfer) < 1 {
		t.Fatalf("the push did not use Q-Block: %v", e.devMet.Snapshot())
	}
	if int(sent) > plan.SMS {
		t.Fatalf("sent %d SMS segments, planned %d", sent, plan.SMS)
	}
	// The device sends the push's one answer and the control answers
	// (State reads, Execute, Register, /3/0/3 read), never one per block.
	if int(back) >= plan.Blocks+2 {
		t.Fatalf("the device sent %d SMS for a push of %d blocks: an answer per block", back, plan.Blocks)
	}
	if v, _ := e.c.Get(path.Resource(3, 0, 3)); v.Str() != "2.1-sms" || e.dev.Applied() != 1 {
		t.Fatal(v.Str(), e.dev.Applied())
	}
}
