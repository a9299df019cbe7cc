package main

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/gateway"
)

// TestClusterRouting (issue 15): three smsgw processes on one redis-server.
// A light in queue mode registered at node B, whose server SIM is on node
// C, is read through node A: A queues the read in the shared queue, B
// (holding the light's session) wakes it through C's modem (the SMS goes
// on C's SIM stream and out of C's outbox), the light's Update reaches B,
// B sends the read, and A's waiting call gets the answer. A direct read of
// a UDP light registered at B, asked at A, is forwarded to B and back.
func TestClusterRouting(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs three daemons and redis-server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	q := planLights(gateway.KindQueue, "q", 1, 500, 3)
	q[0].ServerSIM = clusterSIM(2) // on node C
	u := planLights(gateway.KindUDP, "u", 1, 0, 3)
	e := newClusterEnv(t, ctx, 3, devicesYAML(q))
	defer func() {
		if t.Failed() {
			for _, n := range e.nodes {
				t.Logf("%s stderr (last 3k):\n%s", n.name, tail(n.d.stderr.String(), 3072))
			}
		}
	}()
	a, b, c := e.nodes[0].d, e.nodes[1].d, e.nodes[2].d
	atB, _ := net.ResolveUDPAddr("udp", e.nodes[1].udp)
	e.startLights(q, atB, 4*time.Second)
	e.startLights(u, atB, 0)
	e.waitRegistered(0, 2, 60*time.Second)

	code, v := a.call("GET", "/cluster", "")
	if code != 200 || v["node"] != "gw-a" {
		t.Fatalf("cluster view: %d %v", code, v)
	}
	devs, _ := v["devices"].(map[string]any)
	mods, _ := v["modems"].(map[string]any)
	if devs["q-1"] != "gw-b" || devs["u-1"] != "gw-b" || mods[clusterSIM(2)] != "gw-c" || mods[clusterSIM(0)] != "gw-a" {
		t.Fatalf("cluster view: devices %v modems %v", devs, mods)
	}
	nodes, _ := v["nodes"].([]any)
	if len(nodes) != 3 {
		t.Fatalf("nodes %v", nodes)
	}

	// Direct read of the UDP light at B, asked at A.
	code, v = a.call("GET", "/devices/u-1/data/3/0/0?wait=20s", "")
	if code != 200 {
		t.Fatalf("forwarded read: %d %v", code, v)
	}
	if got := a.metric(`smsgw_cluster_forwarded_total{result="ok"}`); got < 1 {
		t.Fatalf("A forwarded %v calls", got)
	}
	if got := b.metric(`smsgw_cluster_rpc_served_total`); got < 1 {
		t.Fatalf("B served %v forwarded calls", got)
	}

	// Let the queue light fall asleep, then read it through A.
	deadline := time.Now().Add(30 * time.Second)
	for q[0].Awake() {
		if time.Now().After(deadline) {
			t.Fatal("the queue light stays awake")
		}
		time.Sleep(100 * time.Millisecond)
	}
	start := time.Now()
	code, v = a.call("GET", "/devices/q-1/data/3/0/0?wait=60s", "")
	if code != 200 {
		t.Fatalf("queued read through A: %d %v", code, v)
	}
	t.Logf("queued read issued on gw-a, device at gw-b, SIM on gw-c: %v, %v", time.Since(start).Round(time.Millisecond), v["values"])
	if got := b.metric(`smsgw_cluster_sms_relayed_total{direction="out"}`); got < 1 {
		t.Fatalf("B relayed %v SMS", got)
	}
	if got := c.metric(`smsgw_cluster_sms_relayed_total{direction="in"}`); got < 1 {
		t.Fatalf("C took %v relayed SMS", got)
	}
	if got := b.metric(`smsgw_queue_events_total{event="wakeups"}`); got < 1 {
		t.Fatalf("B sent %v wake-ups", got)
	}
	if got := a.metric(`smsgw_queue_events_total{event="wakeups"}`) + c.metric(`smsgw_queue_events_total{event="wakeups"}`); got != 0 {
		t.Fatalf("A and C sent %v wake-ups (only B holds the light)", got)
	}
}
