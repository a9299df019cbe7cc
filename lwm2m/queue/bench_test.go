package queue

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// BenchmarkSleepingDeviceMemory measures the heap growth per sleeping
// device with one queued request and a pending SMS wake-up, over 10,000
// devices. With the bbolt store the records live in the mmap'd file, so
// heap/device is the Manager's own cost; with MemStore it includes the
// encoded records. (The bbolt file is opened with NoSync here: the
// benchmark measures memory, not fsync latency.)
func BenchmarkSleepingDeviceMemory(b *testing.B) {
	const devices = 10_000
	for _, kind := range []string{"bolt", "mem"} {
		b.Run(kind, func(b *testing.B) {
			for range b.N {
				var store Store
				if kind == "bolt" {
					db, err := bolt.Open(filepath.Join(b.TempDir(), "q.db"), 0o600, &bolt.Options{NoSync: true})
					if err != nil {
						b.Fatal(err)
					}
					defer db.Close()
					if store, err = NewBoltStore(db); err != nil {
						b.Fatal(err)
					}
				} else {
					store = NewMemStore()
				}
				var wakes atomic.Int64
				clk := newFakeClock()
				m, err := New(Config{Store: store, Executor: newFleet(), Clock: clk,
					Waker: WakerFunc(func(context.Context, string, WakeTarget) error { wakes.Add(1); return nil })})
				if err != nil {
					b.Fatal(err)
				}
				eps := make([]string, devices)
				for i := range eps {
					eps[i] = fmt.Sprintf("urn:imei:4901542032%05d", i)
				}
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				for i, ep := range eps {
					msisdn := fmt.Sprintf("+4917100%05d", i)
					if err := m.SetDevice(ep, DeviceConfig{Wake: &WakeTarget{MSISDN: msisdn, Version: "1.1", Trigger: true}}); err != nil {
						b.Fatal(err)
					}
					if _, err := m.Enqueue(context.Background(), Request{Endpoint: ep, Kind: KindRead, Paths: []string{"/3/0"}}); err != nil {
						b.Fatal(err)
					}
				}
				waitFor(b, "wake-ups", func() bool { return wakes.Load() == devices })
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/devices, "heapB/device")
				if st := m.Stats(); st.Live != devices {
					b.Fatalf("live %d", st.Live)
				}
				m.Close()
				runtime.KeepAlive(eps)
			}
		})
	}
}

// BenchmarkEnqueueDrain measures Enqueue plus drain of one request on an
// awake device through a no-op executor (MemStore).
func BenchmarkEnqueueDrain(b *testing.B) {
	m, err := New(Config{Store: NewMemStore(), Executor: ExecutorFunc(func(context.Context, string, *Request) (*Result, error) {
		return &Result{Code: 0x45}, nil
	}), Retention: time.Hour, MaxResults: 1000})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	m.Seen("lamp", time.Hour)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		id, err := m.Enqueue(ctx, Request{Endpoint: "lamp", Kind: KindRead, Paths: []string{"/3/0"}})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.Wait(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnqueueBolt measures a durable Enqueue (one fsync'd bbolt
// transaction) for a sleeping device.
func BenchmarkEnqueueBolt(b *testing.B) {
	store, err := OpenBoltStore(filepath.Join(b.TempDir(), "q.db"), time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	m, err := New(Config{Store: store, Executor: newFleet(), Limits: Limits{PerDevice: 1 << 30, PerDeviceBytes: 1 << 40}})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	for b.Loop() {
		if _, err := m.Enqueue(ctx, Request{Endpoint: "lamp", Kind: KindRead, Paths: []string{"/3/0"}}); err != nil {
			b.Fatal(err)
		}
	}
}
