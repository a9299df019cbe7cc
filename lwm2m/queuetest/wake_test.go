package queuetest

import (
	"context"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// A UDP+SMS streetlight in queue mode falls asleep (closes its UDP
// socket); an operator Read of /3/0 is queued; the server wakes the light
// by SMS (1.0 "UQS": /1/0/8; 1.1: /1/0/21 Trigger true); the light
// updates over UDP from a new socket; the Read result reaches the caller.
func TestSleepingUDPLightWokenBySMS(t *testing.T) {
	for _, tc := range []struct {
		name, version, binding string
		queue, trigger         bool
		dev                    server.DeviceSettings
	}{
		{"uqs-1.0", "1.0", "UQS", false, false, server.DeviceSettings{}},
		{"trigger-1.1", "1.1", "US", true, true, server.DeviceSettings{}},
		{"trigger-1.2-wap-push", "1.2", "US", true, true, server.DeviceSettings{WAPPush: true, TransportArg: "U", SIM: serverNum}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, worldConfig{latency: 50 * time.Millisecond, window: 300 * time.Millisecond})
			w.setDevice("light-"+tc.name, tc.dev)
			l := w.newLight(lightConfig{name: "light-" + tc.name, number: "+491720000001", version: tc.version,
				binding: tc.binding, queue: tc.queue, trigger: tc.trigger, udp: true, awake: 800 * time.Millisecond})
			if tc.version != "1.0" {
				// The server reads /1 after Register to learn the Trigger.
				deadline := time.Now().Add(20 * time.Second)
				for l.count.get("GET /1") == 0 {
					if time.Now().After(deadline) {
						t.Fatal("server never read /1 for the Trigger")
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			l.waitAsleep(t, 20*time.Second)
			ep := "light-" + tc.name
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			settleSMS(t, w, l)
			before, _ := w.smsB.Usage(l.number)
			start := time.Now()
			recs, err := w.srv.ReadValues(ctx, ep, path.Instance(3, 0))
			if err != nil {
				t.Fatalf("queued read: %v", err)
			}
			var manu string
			for _, r := range recs {
				if r.Path == path.Resource(3, 0, 0) {
					manu = r.Value.Str()
				}
			}
			if manu != "ACME Lighting" {
				t.Fatalf("read /3/0: %v", recs)
			}
			wakes, refused := l.c.QueueModeStats()
			t.Logf("%s: queued Read answered after %v (wakes %d, refused %d)", tc.name, time.Since(start), wakes, refused)
			if wakes != 1 || l.count.get("GET /3/0") != 1 {
				t.Fatalf("wakes %d, reads on device %d", wakes, l.count.get("GET /3/0"))
			}
			// The physical minimum: one SMS (the trigger) from the server,
			// none back (No-Response; the light talks over UDP).
			settleSMS(t, w, l)
			after, _ := w.smsB.Usage(l.number)
			if sent, trig, rcvd := segments(before.Sent, after.Sent, ""), segments(before.Sent, after.Sent, "trigger"),
				segments(before.Received, after.Received, ""); sent != 1 || trig != 1 || rcvd != 0 {
				t.Fatalf("wake-up + queued read cost %d SMS sent (%d trigger), %d received; want 1 (1), 0", sent, trig, rcvd)
			}
			if dev, _ := l.smsB.Usage(serverNum); sms.Total(dev.Sent).Segments != 0 {
				t.Fatalf("the light sent %d SMS", sms.Total(dev.Sent).Segments)
			}
			// Back to sleep; a Write is queued and answered after another wake.
			l.waitAsleep(t, 20*time.Second)
			if err := w.srv.Execute(ctx, ep, path.Resource(3, 0, 4), ""); err != nil {
				t.Fatalf("queued execute: %v", err)
			}
			if wakes, _ = l.c.QueueModeStats(); wakes != 2 || l.count.get("POST /3/0/4") != 1 {
				t.Fatalf("second wake: wakes %d, executes %d", wakes, l.count.get("POST /3/0/4"))
			}
		})
	}
}

// A device answer with an error code is the result of a queued request,
// not a queue failure.
func TestQueuedErrorAnswer(t *testing.T) {
	w := newWorld(t, worldConfig{latency: 20 * time.Millisecond, window: 300 * time.Millisecond})
	l := w.newLight(lightConfig{name: "light-err", number: "+491720000009", version: "1.0", binding: "UQS", udp: true, awake: 600 * time.Millisecond})
	l.waitAsleep(t, 20*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := w.srv.Read(ctx, "light-err", path.Instance(3303, 0))
	if server.Code(err) != codes.NotFound {
		t.Fatalf("want 4.04 from the device, got %v", err)
	}
}

// A trigger from a number other than the server's is refused (4.01) and
// does not wake the light, even when its SMS bearer accepts that number.
func TestTriggerFromStrangerRefused(t *testing.T) {
	const stranger = "+491799999999"
	w := newWorld(t, worldConfig{latency: 10 * time.Millisecond, window: 300 * time.Millisecond})
	l := w.newLight(lightConfig{name: "guarded", number: "+491720000005", version: "1.0", binding: "UQS", udp: true,
		awake: 400 * time.Millisecond, extraPeers: []string{stranger}})
	l.waitAsleep(t, 20*time.Second)
	side := openSide(t, w.net, stranger, map[string]sms.Peer{l.number: {Security: sms.ModeNoSec, SIM: stranger}})
	ep, err := bearer.NewEndpoint(side.b, bearer.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	to, _ := sms.ParseMSISDN(l.number)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := ep.Post(ctx, to, "/1/0/8", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Code != codes.Unauthorized {
		t.Fatalf("stranger's trigger answered %v", resp.Code)
	}
	if wakes, refused := l.c.QueueModeStats(); wakes != 0 || refused != 1 || l.c.Awake() {
		t.Fatalf("wakes %d refused %d awake %v", wakes, refused, l.c.Awake())
	}
	_ = queue.ErrNotWoken
}
