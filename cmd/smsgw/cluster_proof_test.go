package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/gateway"
	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
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
	e := newClusterEnv(t, ctx, 3, devicesYAML(q), false)
	defer e.logOnFailure()
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
	if cv := c.cli("cluster"); cv["node"] != "gw-c" || len(cv["nodes"].([]any)) != 3 {
		t.Fatalf("smsgw cluster at C: %v", cv)
	}

	// Direct read of the UDP light at B, asked at A.
	code, v = a.call("GET", "/devices/u-1/data/3/0/0?wait=20s", "")
	if code != 200 {
		t.Fatalf("forwarded read: %d %v", code, v)
	}
	if got := a.metric(`smsgw_cluster_forwarded_total{result="ok"}`); got < 1 {
		t.Fatalf("A forwarded %v calls", got)
	}
	if got := b.waitMetric(`smsgw_cluster_rpc_served_total`, 1, 10*time.Second); got < 1 {
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
	if got := b.waitMetric(`smsgw_cluster_sms_relayed_total{direction="out"}`, 1, 10*time.Second); got < 1 {
		t.Fatalf("B relayed %v SMS", got)
	}
	if got := c.waitMetric(`smsgw_cluster_sms_relayed_total{direction="in"}`, 1, 10*time.Second); got < 1 {
		t.Fatalf("C took %v relayed SMS", got)
	}
	if got := b.waitMetric(`smsgw_queue_events_total{event="wakeups"}`, 1, 10*time.Second); got < 1 {
		t.Fatalf("B sent %v wake-ups", got)
	}
	if got := a.metric(`smsgw_queue_events_total{event="wakeups"}`) + c.metric(`smsgw_queue_events_total{event="wakeups"}`); got != 0 {
		t.Fatalf("A and C sent %v wake-ups (only B holds the light)", got)
	}

	// A firmware update of the UDP light at B, asked at A, with the image
	// uploaded at A: forwarded to B, which fetches the bytes from A (each
	// node has its own firmware directory here).
	pkg, err := firmware.BuildPackage("2.0.0", bytes.Repeat([]byte("routed firmware "), 64))
	if err != nil {
		t.Fatal(err)
	}
	pkgFile := filepath.Join(e.dir, "fw.bin")
	os.WriteFile(pkgFile, pkg, 0o600)
	imgID, _ := a.cli("fw", "upload", pkgFile, "-version", "2.0.0")["id"].(string)
	code, v = a.call("POST", "/devices/u-1/firmware", `{"image":"`+imgID+`"}`)
	if code != 202 && code != 200 {
		t.Fatalf("firmware update through A: %d %v", code, v)
	}
	jobID, _ := v["id"].(string)
	if st := b.waitJob(jobID, 60*time.Second); st["state"] != "done" {
		t.Fatalf("firmware job at B: %v", st)
	}
	if n := u[0].FirmwareApplied(); n != 1 {
		t.Fatalf("u-1 applied %d updates", n)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "gw-b-firmware", imgID+".bin")); err != nil {
		t.Fatalf("B did not keep the fetched image: %v", err)
	}
}

// clusterLights is how many lights the failover proof updates: 100 in the
// suite, M2M_CLUSTER_LIGHTS (e.g. 1000) by hand.
func clusterLights(t *testing.T) int {
	if s := os.Getenv("M2M_CLUSTER_LIGHTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 5000 {
			t.Fatalf("M2M_CLUSTER_LIGHTS=%q: want 1..5000", s)
		}
		return n
	}
	return 100
}

// TestClusterFailover (issue 15): three smsgw processes behind a UDP load
// balancer; a firmware campaign over the UDP lights and 100 queued writes
// (each a distinct value) to lights in queue mode whose SIMs are spread
// over the nodes. Each node in turn is SIGKILLed mid-run and started again
// a lease later; then redis-server is SIGKILLed and restarted from its AOF
// while 30 more writes are in flight. Every accepted write is applied by
// its light exactly once (the lights count them), every light is updated
// exactly once (the lights count it), the campaign finishes, and every job
// ends done.
func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs three daemons and redis-server")
	}
	nUDP, nQueue := clusterLights(t), 20
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(8+nUDP/100)*time.Minute)
	defer cancel()
	udpL := planLights(gateway.KindUDP, "f", nUDP, 0, 3)
	qL := planLights(gateway.KindQueue, "w", nQueue, 2000, 3)
	e := newClusterEnv(t, ctx, 3, devicesYAML(qL), true)
	defer e.logOnFailure()
	e.lb = newUDPLB(t, 3)
	for i, n := range e.nodes {
		e.lb.setBackend(i, n.udp)
	}
	e.startLights(udpL, e.lb.addr(), 0)
	e.startLights(qL, e.lb.addr(), 4*time.Second)
	e.waitRegistered(0, nUDP+nQueue, time.Duration(60+nUDP/10)*time.Second)
	live := func(skip int) *daemon {
		for i, n := range e.nodes {
			if i != skip {
				return n.d
			}
		}
		return nil
	}

	// Queued writes: the i-th goes to light i mod 20 with value i / 20
	// (distinct per light), asked at the live nodes in turn.
	type job struct {
		id    string
		light int
		value int
	}
	var jobs []job
	seq := 0
	queueWrites := func(n, skip int) {
		for k := 0; k < n; k++ {
			li, val := seq%nQueue, seq/nQueue
			seq++
			d := e.nodes[k%3].d
			if k%3 == skip {
				d = live(skip)
			}
			code, v := d.call("PUT", fmt.Sprintf("/devices/%s/data/3311/0/5851", qL[li].Name), fmt.Sprintf(`{"value":%d}`, val))
			if code != 202 && code != 200 {
				t.Fatalf("write %d to %s: %d %v", val, qL[li].Name, code, v)
			}
			j, _ := v["job"].(map[string]any)
			jobs = append(jobs, job{id: fmt.Sprint(j["id"]), light: li, value: val})
		}
	}

	// The image, in the firmware dir all nodes share.
	pkg, err := firmware.BuildPackage("2.0.0", bytes.Repeat([]byte("cluster firmware 2.0.0 "), 64))
	if err != nil {
		t.Fatal(err)
	}
	pkgFile := filepath.Join(e.dir, "sl-2.0.0.bin")
	os.WriteFile(pkgFile, pkg, 0o600)
	img := e.nodes[0].d.cli("fw", "upload", pkgFile, "-version", "2.0.0")
	imgID, _ := img["id"].(string)
	code, v := e.nodes[0].d.call("POST", "/campaigns", fmt.Sprintf(`{"image":%q,"prefix":"f-","concurrency":%d,"retries":5,"backoff":"2s"}`, imgID, max(1, nUDP/200)))
	if code != 201 {
		t.Fatalf("campaign: %d %v", code, v)
	}
	campID, _ := v["id"].(string)
	// Each node in turn: SIGKILL mid-campaign (at 1/8, 3/8 and 5/8 of
	// the lights done), back after the heartbeat and lease TTLs.
	for i := range e.nodes {
		if os.Getenv("M2M_CLUSTER_NOKILL") != "" {
			queueWrites(34, -1)
			continue
		}
		want := float64(nUDP * (2*i + 1) / 8)
		deadline := time.Now().Add(time.Duration(60+nUDP/10) * time.Second)
		var counts map[string]any
		for {
			counts, _ = campaignCounts(t, live(i), campID).(map[string]any)
			if done, _ := counts["done"].(float64); done >= want || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		queueWrites(34, i) // 102 writes queued around the kills
		t.Logf("SIGKILL %s; campaign so far %v", e.nodes[i].name, counts)
		e.kill(i)
		time.Sleep(4 * time.Second) // heartbeat TTL 1.5 s, lease TTL 3 s
		e.start(i)
	}

	// Redis SIGKILLed and restarted from its AOF with 30 writes queued.
	queueWrites(30, -1)
	e.redis.Kill()
	time.Sleep(2 * time.Second)
	e.redis.Restart()

	for _, j := range jobs {
		deadline := time.Now().Add(3 * time.Minute)
		for {
			code, v := e.nodes[j.light%3].d.call("GET", "/jobs/"+j.id, "")
			if code == 200 && v["state"] == "done" {
				if r, _ := v["result"].(map[string]any); r["code"] != "2.04" {
					t.Fatalf("job %s (write %d to %s): %v", j.id, j.value, qL[j.light].Name, v)
				}
				break
			}
			if code == 200 && v["state"] != "queued" && v["state"] != "sending" || time.Now().After(deadline) {
				_, cv := e.nodes[0].d.call("GET", "/cluster", "")
				t.Logf("cluster: holder of %s: %v; leases %v; nodes %v", qL[j.light].Name, cv["devices"].(map[string]any)[qL[j.light].Name], cv["leases"], cv["nodes"])
				for _, n := range e.nodes {
					for _, l := range strings.Split(n.d.metrics(), "\n") {
						if strings.HasPrefix(l, "smsgw_queue") || strings.HasPrefix(l, "smsgw_cluster") || strings.HasPrefix(l, "smsgw_sms_") {
							t.Logf("%s %s", n.name, l)
						}
					}
				}
				t.Fatalf("job %s (write %d to %s): %d %v", j.id, j.value, qL[j.light].Name, code, v)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	for _, j := range jobs {
		key := fmt.Sprintf("/3311/0/5851=%d", j.value)
		if n := qL[j.light].Writes()[key]; n != 1 {
			_, v := e.nodes[0].d.call("GET", "/jobs/"+j.id, "")
			t.Errorf("%s applied write %d %d times (job %v; light's writes %v)", qL[j.light].Name, j.value, n, v, qL[j.light].Writes())
		}
	}
	rep := waitCampaign(t, e.nodes[0].d, campID, time.Duration(3+nUDP/100)*time.Minute)
	counts := rep["campaign"].(map[string]any)["counts"]
	twice := 0
	for _, l := range udpL {
		if n := l.FirmwareApplied(); n != 1 {
			twice++
			t.Errorf("%s applied the update %d times", l.Name, n)
		}
	}
	t.Logf("%d queued writes applied once each across 3 node kills and a Redis restart; campaign over %d lights %v; lights updated != once: %d",
		len(jobs), nUDP, counts, twice)
}

// campaignCounts returns the campaign's device counts as seen by d.
func campaignCounts(t *testing.T, d *daemon, id string) any {
	t.Helper()
	_, v := d.call("GET", "/campaigns/"+id, "")
	c, _ := v["campaign"].(map[string]any)
	return c["counts"]
}
