package queuetest

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// udpRTT is the median CoAP ping round trip to addr over loopback.
func udpRTT(b testing.TB, w *world) time.Duration {
	uc, err := udp.Listen("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ep, err := bearer.NewEndpoint(uc, bearer.WithLogger(quiet()))
	if err != nil {
		b.Fatal(err)
	}
	defer ep.Close()
	var rtts []time.Duration
	for range 21 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		start := time.Now()
		err := ep.Ping(ctx, w.udpAddr)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		rtts = append(rtts, time.Since(start))
	}
	slices.Sort(rtts)
	return rtts[len(rtts)/2]
}

// BenchmarkWakeLatency measures a queued Read of a sleeping UDP+SMS light:
// from the call until the answer, through the SMS trigger (simulated SMSC
// latency QUEUETEST_SMS_LATENCY, default 500ms, plus the pty modems), the
// Update over UDP and the Read over UDP. "ratio" is the mean latency
// divided by (SMS latency + one UDP round trip); the goal is ≤ 1.05.
//
//	go test -run '^$' -bench WakeLatency -benchtime 5x ./lwm2m/queuetest
func BenchmarkWakeLatency(b *testing.B) {
	lat := 500 * time.Millisecond
	if v := os.Getenv("QUEUETEST_SMS_LATENCY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatal(err)
		}
		lat = d
	}
	w := newWorld(b, worldConfig{latency: lat, window: 200 * time.Millisecond})
	l := w.newLight(lightConfig{name: "bench", number: "+491750000001", version: "1.0", binding: "UQS", udp: true, awake: 300 * time.Millisecond})
	rtt := udpRTT(b, w)
	var total, toWake, smsLeg, toAnswer time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		l.waitAsleep(b, 30*time.Second)
		for w.qsrv.Manager().Awake("bench") {
			time.Sleep(5 * time.Millisecond)
		}
		for len(w.events) > 0 {
			<-w.events
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		b.StartTimer()
		start := time.Now()
		_, err := w.srv.Read(ctx, "bench", path.Resource(3, 0, 0))
		d := time.Since(start)
		b.StopTimer()
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		total += d
		var wakeSent time.Time
		for len(w.events) > 0 {
			if ev := <-w.events; ev.Type == queue.EventWake {
				wakeSent = ev.Time
			}
		}
		woke := time.Unix(0, l.wokeAt.Load())
		toWake += wakeSent.Sub(start)
		smsLeg += woke.Sub(wakeSent)
		toAnswer += start.Add(d).Sub(woke)
		b.StartTimer()
	}
	b.StopTimer()
	mean := total / time.Duration(b.N)
	b.ReportMetric(float64(mean.Microseconds())/1000, "wake-ms")
	b.ReportMetric(float64(rtt.Microseconds())/1000, "udp-rtt-ms")
	b.ReportMetric(float64(mean)/float64(lat+rtt), "ratio")
	// The legs: call → trigger handed to the SMS bearer (durable outbox),
	// → the light reopened UDP (SMSC latency, both modems over their
	// ptys), → the answer (Update and Read over UDP).
	ms := func(d time.Duration) float64 { return float64((d / time.Duration(b.N)).Microseconds()) / 1000 }
	b.ReportMetric(ms(toWake), "enqueue-to-trigger-ms")
	b.ReportMetric(ms(smsLeg), "trigger-to-awake-ms")
	b.ReportMetric(ms(toAnswer), "awake-to-answer-ms")
}

// BenchmarkMemoryPerSleepingDevice measures the server heap per registered
// sleeping queue-mode device (1.0 UQS, SMS number, in the in-memory
// registry) with one queued Read (in-memory queue store): registry entry,
// queue device state and the queued request.
//
//	go test -run '^$' -bench MemoryPerSleepingDevice -benchtime 1x ./lwm2m/queuetest
func BenchmarkMemoryPerSleepingDevice(b *testing.B) {
	const n = 10_000
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		store := new(registry.Memory)
		srv, err := server.New(store, server.WithLogger(quiet()))
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		for d := range n {
			r := &registry.Registration{Endpoint: fmt.Sprintf("light-%05d", d), Lifetime: 86400, Version: registry.V1_0,
				Binding: registry.BindingU | registry.BindingS, Queue: true, SMS: fmt.Sprintf("4917600%05d", d),
				Addr:       netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(d >> 8), byte(d)}), 5683),
				Objects:    []registry.ObjectLink{{Object: 3, Instance: 0}, {Object: 1, Instance: 0}},
				Registered: time.Now().UnixNano(), Updated: time.Now().UnixNano()}
			r.SetTransport("udp")
			if _, err := store.Add(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
		q, err := srv.EnableQueue(server.QueueConfig{Config: queue.Config{Store: queue.NewMemStore(), Limits: queue.Limits{Total: 2 * n}}})
		if err != nil {
			b.Fatal(err)
		}
		for d := range n {
			if _, err := q.Enqueue(ctx, queue.Request{Endpoint: fmt.Sprintf("light-%05d", d), Kind: queue.KindRead,
				Paths: []string{"/3/0"}, ContentFormat: queue.NoContentFormat}); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/device")
		runtime.KeepAlive(store)
		q.Close()
		srv.Close()
	}
}
