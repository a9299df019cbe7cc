package firmware_test

import (
	"context"
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

// smsPushRig is an SMS-only streetlight (push only) and a server with an
// Updater, on the in-memory SMS network.
type smsPushRig struct {
	upd    *firmware.Updater
	sb, db *sms.Bearer
	sep    *bearer.Endpoint
	c      *client.Client
	dev    *firmware.Device
	store  *firmware.Store
}

const pushSrvNum, pushDevNum = "+491710000001", "+491710000002"

func newSMSPushRig(ctx context.Context, t *testing.T) *smsPushRig {
	t.Helper()
	const srvNum, devNum = pushSrvNum, pushDevNum
	n := smstest.NewNetwork(11, smstest.Faults{})
	worker := outbox.WorkerConfig{Poll: 5 * time.Millisecond, BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond}
	sb, err := sms.New(n.AddSIM(srvNum), sms.Config{StateDir: t.TempDir(), Worker: worker,
		Peers: map[string]sms.Peer{devNum: {Security: sms.ModeNoSec, SIM: srvNum}}})
	if err != nil {
		t.Fatal(err)
	}
	db, err := sms.New(n.AddSIM(devNum), sms.Config{StateDir: t.TempDir(), Worker: worker,
		Peers: map[string]sms.Peer{srvNum: {Security: sms.ModeNoSec, SIM: devNum}}})
	if err != nil {
		t.Fatal(err)
	}
	store, err := firmware.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(new(registry.Memory))
	if err != nil {
		t.Fatal(err)
	}
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
	c, err := client.New("sl-sms", client.WithBinding("S"), client.WithSMSNumber(devNum), client.WithLifetime(3600))
	if err != nil {
		t.Fatal(err)
	}
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
	return &smsPushRig{upd: upd, sb: sb, db: db, sep: sep, c: c, dev: dev, store: store}
}

// TestUpdateSMSPush: an SMS-only streetlight on the in-memory SMS network
// is pushed a small image over SMS, only when allowed, within its budget,
// with the cost known before the start.
func TestUpdateSMSPush(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	r := newSMSPushRig(ctx, t)
	upd, sb, sep, c, dev, store := r.upd, r.sb, r.sep, r.c, r.dev, r.store
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

// TestSMSPush8KiBCost: the exact SMS cost of pushing an 8 KiB firmware
// package to an SMS-only light, counted by the server's SMS bearer. The
// package (8,192 bytes of image and its 39-byte header) goes in 9 blocks
// of 1,024 bytes (the SMS bearer's block: one concatenated SMS of 8
// segments each, 1,024 + ~30 bytes of CoAP header ≤ 8 × 134) and a last
// one of 39 bytes (1 segment). Our client announced RFC 9177 in its
// Register, so the push goes with Q-Block1: the device answers the whole
// body once (with RFC 7959 Block1 it answered every block: 9 SMS). The
// blocks alone: 8 × 8 + 1 = 65 SMS sent, 1 received; the whole update
// (state reads, Execute, version check) sends exactly what Plan said
// before the start (70).
func TestSMSPush8KiBCost(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	r := newSMSPushRig(ctx, t)
	pkg, err := firmware.BuildPackage("8k", make([]byte, 8192))
	if err != nil {
		t.Fatal(err)
	}
	img, err := r.store.PutBytes(ctx, "eight", "8k", pkg)
	if err != nil {
		t.Fatal(err)
	}
	devAddr, _ := sms.ParseMSISDN(pushDevNum)
	if ok, known := r.sep.QBlockSupport(devAddr); !ok || !known {
		t.Fatalf("the server did not learn the device's Q-Block support from its Register: %v %v", ok, known)
	}
	o := fast()
	o.PollInterval = time.Second
	o.NoObserve = true
	o.AllowSMSPush = true
	plan, err := r.upd.Plan(ctx, "sl-sms", img.ID, o)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := r.sb.Usage(pushDevNum)
	if _, err := r.upd.Update(ctx, "sl-sms", img.ID, o); err != nil {
		t.Fatal(err)
	}
	waitSMSSettled(t, r.sb, r.db)
	after, _ := r.sb.Usage(pushDevNum)
	diff := func(a, b [bearer.NumPurposes]sms.Count, p bearer.Purpose) uint64 {
		return b[p].Segments - a[p].Segments
	}
	blocksSent, blocksRcvd := diff(before.Sent, after.Sent, bearer.PurposeBlock), diff(before.Received, after.Received, bearer.PurposeBlock)
	sent := sms.Total(after.Sent).Segments - sms.Total(before.Sent).Segments
	rcvd := sms.Total(after.Received).Segments - sms.Total(before.Received).Segments
	t.Logf("8 KiB push (%d-byte package, %d blocks): blocks %d SMS sent, %d received; whole update %d sent, %d received; planned %d",
		img.Size, plan.Blocks, blocksSent, blocksRcvd, sent, rcvd, plan.SMS)
	if img.Size != 8192+39 || plan.Blocks != 9 || blocksSent != 65 || blocksRcvd != 1 {
		t.Fatalf("package %d bytes in %d blocks cost %d block SMS sent and %d received; want 8231, 9, 65, 1",
			img.Size, plan.Blocks, blocksSent, blocksRcvd)
	}
	if int(sent) != plan.SMS {
		t.Fatalf("update sent %d SMS, planned %d", sent, plan.SMS)
	}
	if r.dev.Applied() != 1 {
		t.Fatalf("applied %d", r.dev.Applied())
	}
}

// waitSMSSettled waits until what each bearer accounts as sent to the
// other has arrived there.
func waitSMSSettled(t *testing.T, a, b *sms.Bearer) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ua, _ := a.Usage(pushDevNum)
		ub, _ := b.Usage(pushSrvNum)
		if sms.Total(ua.Sent).Datagrams == sms.Total(ub.Received).Datagrams && sms.Total(ub.Sent).Datagrams == sms.Total(ua.Received).Datagrams {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("SMS still on the way")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
