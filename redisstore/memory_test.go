package redisstore_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/redisstore"
	"github.com/m2mbearer/m2mbearer/redisstore/redistest"
)

// usedMemory reads used_memory from INFO memory.
func usedMemory(t *testing.T, srv *redistest.Server) int64 {
	t.Helper()
	db := openDB(t, srv, "probe:", "n")
	info, err := db.Client().Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(l, "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatal("no used_memory in INFO memory")
	return 0
}

// streetlight is a registration the size of the demo fleet's: a 1.1 UDP
// client in queue mode with its server, device, firmware, connectivity
// and light control objects, the node holding its session.
func streetlight(i int) *registry.Registration {
	now := time.Now()
	r := &registry.Registration{Endpoint: fmt.Sprintf("urn:imei:35%013d", i), Lifetime: 86400, Version: registry.V1_1,
		Binding: registry.BindingU | registry.BindingS, Queue: true, SMS: fmt.Sprintf("+4917%09d", i),
		Registered: now.UnixNano(), Updated: now.UnixNano(), Identity: fmt.Sprintf("psk:light-%06d", i),
		Objects: []registry.ObjectLink{{Object: 1, Instance: 0}, {Object: 3, Instance: 0}, {Object: 4, Instance: 0},
			{Object: 5, Instance: 0}, {Object: 3311, Instance: 0}, {Object: 3311, Instance: 1}}}
	r.SetPeerAddr(&net.UDPAddr{IP: net.IPv4(10, byte(i>>16), byte(i>>8), byte(i)), Port: 5683 + i%1000})
	r.SetTransport("dtls")
	r.SetNode("gw-a")
	return r
}

// TestRegistryMemoryPerDevice measures what Redis holds per registered
// device: used_memory (INFO memory) before and after 10,000
// registrations, divided by 10,000; the registry's keys are also sized
// with MEMORY USAGE. The goal (issue 15) is at most 600 bytes.
func TestRegistryMemoryPerDevice(t *testing.T) {
	const n = 10_000
	srv := redistest.Start(t, redistest.Options{})
	before := usedMemory(t, srv)
	db := openDB(t, srv, "mem:", "gw-a")
	ctx := context.Background()
	reg, err := db.OpenRegistry(ctx, redisstore.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	recBytes := 0
	for i := range n {
		r := streetlight(i)
		if _, err := reg.Add(ctx, r); err != nil {
			t.Fatal(err)
		}
		recBytes += len(registry.MarshalRegistration(nil, r))
	}
	after := usedMemory(t, srv)
	per := float64(after-before) / n
	var keys []string
	var total int64
	for _, k := range []string{"mem:reg", "mem:reg:ep", "mem:reg:exp", "mem:reg:log"} {
		u, err := db.Client().MemoryUsage(ctx, k, 0).Result()
		if err != nil {
			t.Fatalf("MEMORY USAGE %s: %v", k, err)
		}
		total += u
		keys = append(keys, fmt.Sprintf("%s %d B", k, u))
	}
	t.Logf("%d registrations: used_memory %d -> %d: %.0f B per device (records %.0f B each); MEMORY USAGE: %s; keys %.0f B per device",
		n, before, after, per, float64(recBytes)/n, strings.Join(keys, ", "), float64(total)/n)
	if per > 600 {
		t.Errorf("%.0f B per registered device, goal at most 600", per)
	}
}
