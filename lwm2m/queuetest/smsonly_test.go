package queuetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// An SMS-only light (binding S, queue mode, no IP): it registers over SMS,
// the server reads and writes it over SMS, it sleeps, is woken by an SMS
// trigger, updates over SMS and answers the queued requests; twice.
func TestSMSOnlyLight(t *testing.T) {
	const num = "+491730000001"
	w := newWorld(t, worldConfig{latency: 30 * time.Millisecond, window: 400 * time.Millisecond, smsOnly: []string{num}})
	l := w.newLight(lightConfig{name: "sms-light", number: num, version: "1.1", binding: "S", queue: true, trigger: true, awake: 800 * time.Millisecond})
	reg, ok := w.srv.Lookup("sms-light")
	if !ok || reg.Transport() != "sms" {
		t.Fatalf("registration %+v", reg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for round := 1; round <= 2; round++ {
		l.waitAsleep(t, 20*time.Second)
		deadline := time.Now().Add(20 * time.Second)
		for w.qsrv.Manager().Awake("sms-light") {
			if time.Now().After(deadline) {
				t.Fatal("server still takes the light as awake")
			}
			time.Sleep(20 * time.Millisecond)
		}
		c, err := w.srv.Read(ctx, "sms-light", path.Resource(3, 0, 0))
		if err != nil || c.Text() != "ACME Lighting" {
			t.Fatalf("round %d: read over SMS: %q %v", round, c.Text(), err)
		}
		lt := int64(3600 + round)
		if err := w.srv.WriteValues(ctx, "sms-light", path.Resource(1, 0, 1), server.Replace,
			content.Record{Path: path.Resource(1, 0, 1), Value: content.NewInt(lt)}); err != nil {
			t.Fatalf("round %d: write over SMS: %v", round, err)
		}
		if v, _ := l.c.Get(path.Resource(1, 0, 1)); v.Int() != lt {
			t.Fatalf("round %d: lifetime on the device %v", round, v)
		}
		if wakes, _ := l.c.QueueModeStats(); wakes < uint64(round) {
			t.Fatalf("round %d: %d wake-ups", round, wakes)
		}
	}
}

// The first trigger SMS is lost in the network: the server wakes the
// light again after the backoff and the queued Read still completes.
func TestTriggerLostSecondWake(t *testing.T) {
	w := newWorld(t, worldConfig{latency: 20 * time.Millisecond, window: 300 * time.Millisecond,
		wake: queue.WakePolicy{Timeout: 1500 * time.Millisecond, MaxWakes: new(3), MinInterval: 50 * time.Millisecond, CallTimeout: 10 * time.Second}})
	l := w.newLight(lightConfig{name: "lossy", number: "+491720000002", version: "1.0", binding: "UQS", udp: true, awake: 600 * time.Millisecond})
	l.waitAsleep(t, 20*time.Second)
	cond := w.net.Stats().Lost
	w.net.SetConditions(simLoss(1, 20*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := w.srv.Read(ctx, "lossy", path.Resource(3, 0, 0))
		done <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for w.net.Stats().Lost == cond {
		if time.Now().After(deadline) {
			t.Fatal("trigger never submitted")
		}
		time.Sleep(5 * time.Millisecond)
	}
	w.net.SetConditions(simLoss(0, 20*time.Millisecond))
	if err := <-done; err != nil {
		t.Fatalf("read after a lost trigger: %v", err)
	}
	wakes := 0
	for len(w.events) > 0 {
		if ev := <-w.events; ev.Type == queue.EventWake && ev.Endpoint == "lossy" {
			wakes++
		}
	}
	t.Logf("answered after %v with %d wake-ups", time.Since(start), wakes)
	if wakes != 2 {
		t.Fatalf("%d wake-ups, want 2", wakes)
	}
}

// A light that never wakes (its software hung): the server sends the
// allowed wake-ups, then the queued request fails with ErrNotWoken; a
// request with a short expiry fails with ErrExpired.
func TestNeverWakes(t *testing.T) {
	w := newWorld(t, worldConfig{latency: 10 * time.Millisecond, window: 300 * time.Millisecond,
		wake: queue.WakePolicy{Timeout: 300 * time.Millisecond, Factor: 1, MaxWakes: new(2), MinInterval: 50 * time.Millisecond, CallTimeout: 5 * time.Second}})
	l := w.newLight(lightConfig{name: "dead", number: "+491720000003", version: "1.0", binding: "UQS", udp: true, awake: 500 * time.Millisecond})
	l.waitAsleep(t, 20*time.Second)
	l.c.Close() // stops its loop: triggers arrive, no Update follows
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := w.srv.Read(ctx, "dead", path.Resource(3, 0, 0))
	if !errors.Is(err, queue.ErrNotWoken) {
		t.Fatalf("want ErrNotWoken, got %v", err)
	}
	t.Logf("never woken: %v", err)

	// A device that cannot be woken (1.1, Trigger false) keeps requests
	// until they expire.
	l2 := w.newLight(lightConfig{name: "notrigger", number: "+491720000004", version: "1.1", binding: "U", queue: true, udp: true, awake: 500 * time.Millisecond})
	l2.waitAsleep(t, 20*time.Second)
	id, err := w.qsrv.Enqueue(ctx, queue.Request{Endpoint: "notrigger", Kind: queue.KindRead, Paths: []string{"/3/0/0"},
		ContentFormat: queue.NoContentFormat, Expires: time.Now().Add(700 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.qsrv.Wait(ctx, id); !errors.Is(err, queue.ErrExpired) {
		t.Fatalf("want ErrExpired, got %v", err)
	}
}
