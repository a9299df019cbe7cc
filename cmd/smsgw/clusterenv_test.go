package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/gateway"
	"github.com/m2mbearer/m2mbearer/modem/sim"
	"github.com/m2mbearer/m2mbearer/redisstore/redistest"
)

// clusterEnv is a cluster on loopback for the proofs of issue 15: one real
// redis-server (AOF, appendfsync always), n smsgw processes (the binary),
// and, in the test process, one simulated SMS network. Each node's server
// SIMs are virtual modems of that network on pseudo-terminals, which the
// node opens with the real modem driver (modems: in its config), as it
// would open USB modems; the lights are LwM2M clients in the test process
// on the same network (SMS) and on loopback UDP, behind a UDP load
// balancer (lb) or pointed at one node. So the SMS network is shared
// across processes without a bridge: it lives in one process and the
// gateways reach it over their serial ports, as they reach a real one.
type clusterEnv struct {
	t      *testing.T
	ctx    context.Context
	bin    string
	dir    string
	redis  *redistest.Server
	net    *sim.Network
	nodes  []*clusterNode
	lb     *udpLB
	fwDir  string
	device string // sms.devices YAML of every node
	prefix string
}

type clusterNode struct {
	name string
	sim  string // its server SIM
	pty  string
	data string
	cfg  string
	d    *daemon
	udp  string
}

const clusterToken = fwProofToken

var clusterNames = []string{"gw-a", "gw-b", "gw-c"}

// clusterSIM is node i's server SIM.
func clusterSIM(i int) string { return fmt.Sprintf("+4917100009%02d", i+1) }

// newClusterEnv starts n nodes; with sharedFW they share one firmware
// directory, else each has its own (images uploaded on one node are
// fetched from it by the others).
func newClusterEnv(t *testing.T, ctx context.Context, n int, devices string, sharedFW bool) *clusterEnv {
	t.Helper()
	dir := t.TempDir()
	e := &clusterEnv{t: t, ctx: ctx, dir: dir, device: devices, prefix: "cl:"}
	if sharedFW {
		e.fwDir = filepath.Join(dir, "firmware")
	}
	e.bin = buildSmsgw(t, ".", filepath.Join(dir, "smsgw"))
	e.redis = redistest.Start(t, redistest.Options{AOF: true})
	var err error
	e.net, err = sim.NewNetwork(sim.WithConditions(sim.Conditions{Latency: sim.Fixed(20 * time.Millisecond)}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.net.Close() })
	for i := 0; i < n; i++ {
		nd := &clusterNode{name: clusterNames[i], sim: clusterSIM(i), data: filepath.Join(dir, clusterNames[i])}
		m, err := e.net.AddModem(nd.sim, sim.WithSendTime(5*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if nd.pty, err = m.OpenPTY(); err != nil {
			t.Fatal(err)
		}
		e.nodes = append(e.nodes, nd)
	}
	for i := range e.nodes {
		e.start(i)
	}
	return e
}

// start starts node i (again, after a kill: same data dir, same modem).
func (e *clusterEnv) start(i int) {
	t := e.t
	nd := e.nodes[i]
	nd.cfg = filepath.Join(e.dir, nd.name+".yaml")
	fwDir := e.fwDir
	if fwDir == "" {
		fwDir = filepath.Join(e.dir, nd.name+"-firmware")
	}
	cfg := fmt.Sprintf(`store: %s
store_prefix: %q
node: %s
cluster: {heartbeat_ttl: 1500ms, lease_ttl: 3s, rpc_timeout: 20s}
api: {listen: 127.0.0.1:0, token: %s}
lwm2m: {udp: 127.0.0.1:0, dtls: ""}
log: {level: %s}
modems:
  - {device: %s, msisdn: "%s"}
sms:
  devices:
%s
queue: {awake_window: 2s, wake_timeout: 6s, wake_max: 20, expiry: 10m}
firmware: {dir: %s, concurrency: 20, retries: 3}
simulator: {enabled: false}
`, e.redis.URL(), e.prefix, nd.name, clusterToken, logLevel(), nd.pty, nd.sim, e.device, fwDir)
	if err := os.WriteFile(nd.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	nd.d = startDaemon(t, e.ctx, e.bin, "-config", nd.cfg, "-data", nd.data)
	nd.udp = nd.d.bannerAddr(`LwM2M UDP:\s+coap://(\S+)`)
	if e.lb != nil {
		e.lb.setBackend(i, nd.udp)
	}
}

// kill SIGKILLs node i and takes it out of the load balancer.
func (e *clusterEnv) kill(i int) {
	if e.lb != nil {
		e.lb.down(i)
	}
	e.nodes[i].d.kill()
}

// devicesYAML lists the lights for sms.devices.
func devicesYAML(lights []*gateway.Light) string {
	var b strings.Builder
	for _, l := range lights {
		if l.MSISDN == "" {
			continue
		}
		fmt.Fprintf(&b, "    - {endpoint: %s, msisdn: %q, server_sim: %q, trigger: %v, nosec: true}\n",
			l.Name, l.MSISDN, l.ServerSIM, l.Kind == gateway.KindQueue)
	}
	if b.Len() == 0 {
		return "    []\n"
	}
	return b.String()
}

// lights plans n lights of kind named prefix-1..n; SMS-capable ones get
// numbers from base and server SIMs round-robin over the nodes.
func planLights(kind, prefix string, n, base, nodes int) []*gateway.Light {
	spec := gateway.FleetSpec{}
	switch kind {
	case gateway.KindQueue:
		spec.Queue = n
	default:
		spec.UDP = n
	}
	for i := 0; i < nodes; i++ {
		spec.ServerSIMs = append(spec.ServerSIMs, clusterSIM(i))
	}
	plan := gateway.FleetPlan(spec)
	for i, l := range plan {
		l.Name = fmt.Sprintf("%s-%d", prefix, i+1)
		if l.MSISDN != "" {
			l.MSISDN = gateway.DeviceMSISDN(base + i)
		}
	}
	return plan
}

// startLights runs the lights in the test process, registering at server.
func (e *clusterEnv) startLights(lights []*gateway.Light, server net.Addr, awake time.Duration) *gateway.Fleet {
	e.t.Helper()
	f, err := gateway.StartFleet(e.ctx, gateway.FleetSpec{Awake: awake, ServerUDP: server, Network: e.net,
		StateDir: filepath.Join(e.dir, "lights"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, lights)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(f.Close)
	return f
}

// waitRegistered waits until node i lists n devices.
func (e *clusterEnv) waitRegistered(i, n int, within time.Duration) {
	e.nodes[i].d.waitFleet(n, within)
}

// udpLB is a UDP load balancer for the test: devices talk to one address
// (the VIP); each device flow gets its own socket towards the nodes, so a
// node sees a device at one stable address whichever node it talks to. A
// device's requests (Register, Update, notifications' first hop) go to the
// node the flow is assigned to (round-robin; moved to a live node when its
// node is taken down); a device's answers (ACK, RST, responses) go to the
// node that last sent to the device on that flow, like a NAT's
// connection tracking. Datagrams (at most 2 KiB) are delayed 15 ms each
// way, a WAN's latency, so a campaign over 100 lights lasts long enough to
// kill nodes in the middle of it.
type udpLB struct {
	vip *net.UDPConn

	delay time.Duration // one-way, each direction: a WAN's latency

	mu       sync.Mutex
	backends []*net.UDPAddr // by node index; nil when down
	flows    map[string]*lbFlow
	next     int
	wg       sync.WaitGroup
}

type lbFlow struct {
	client   *net.UDPAddr
	sock     *net.UDPConn
	assigned int
	last     int // node that last sent to the device, -1 none
}

func newUDPLB(t *testing.T, n int) *udpLB {
	t.Helper()
	vip, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	lb := &udpLB{vip: vip, delay: 15 * time.Millisecond, backends: make([]*net.UDPAddr, n), flows: map[string]*lbFlow{}}
	lb.wg.Add(1)
	go lb.serve()
	t.Cleanup(func() {
		vip.Close()
		lb.mu.Lock()
		for _, f := range lb.flows {
			f.sock.Close()
		}
		lb.mu.Unlock()
		lb.wg.Wait()
	})
	return lb
}

func (lb *udpLB) addr() net.Addr { return lb.vip.LocalAddr() }

func (lb *udpLB) setBackend(i int, addr string) {
	a, _ := net.ResolveUDPAddr("udp", addr)
	lb.mu.Lock()
	lb.backends[i] = a
	lb.mu.Unlock()
}

func (lb *udpLB) down(i int) {
	lb.mu.Lock()
	lb.backends[i] = nil
	lb.mu.Unlock()
}

// pickLocked returns a live node, round-robin.
func (lb *udpLB) pickLocked() int {
	for k := 0; k < len(lb.backends); k++ {
		i := (lb.next + k) % len(lb.backends)
		if lb.backends[i] != nil {
			lb.next = i + 1
			return i
		}
	}
	return -1
}

func (lb *udpLB) serve() {
	defer lb.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, from, err := lb.vip.ReadFromUDP(buf)
		if err != nil {
			return
		}
		pkt := append([]byte(nil), buf[:n]...)
		lb.mu.Lock()
		f := lb.flows[from.String()]
		if f == nil {
			sock, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				lb.mu.Unlock()
				continue
			}
			f = &lbFlow{client: from, sock: sock, assigned: lb.pickLocked(), last: -1}
			lb.flows[from.String()] = f
			lb.wg.Add(1)
			go lb.back(f)
		}
		to := f.assigned
		answer := n >= 2 && (pkt[0]>>4&3 >= 2 || pkt[1] >= 0x40) // ACK/RST, or a response code
		if answer && f.last >= 0 && lb.backends[f.last] != nil {
			to = f.last
		}
		if to < 0 || lb.backends[to] == nil {
			f.assigned = lb.pickLocked()
			to = f.assigned
		}
		var dst *net.UDPAddr
		if to >= 0 {
			dst = lb.backends[to]
		}
		lb.mu.Unlock()
		if dst != nil {
			sock := f.sock
			time.AfterFunc(lb.delay, func() { sock.WriteToUDP(pkt, dst) })
		}
	}
}

// back forwards what the nodes send on a flow to its device.
func (lb *udpLB) back(f *lbFlow) {
	defer lb.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, from, err := f.sock.ReadFromUDP(buf)
		if err != nil {
			return
		}
		lb.mu.Lock()
		for i, b := range lb.backends {
			if b != nil && b.Port == from.Port && b.IP.Equal(from.IP) {
				f.last = i
			}
		}
		lb.mu.Unlock()
		pkt := append([]byte(nil), buf[:n]...)
		time.AfterFunc(lb.delay, func() { lb.vip.WriteToUDP(pkt, f.client) })
	}
}

func logLevel() string {
	if l := os.Getenv("M2M_CLUSTER_LOG"); l != "" {
		return l
	}
	return "warn"
}

// logOnFailure logs the end of each node's stderr when the test failed
// (the last 3 KiB; 20 KB with M2M_CLUSTER_LOG set, which also writes each
// node's whole stderr to $TMPDIR/cluster-<node>.log).
func (e *clusterEnv) logOnFailure() {
	if !e.t.Failed() {
		return
	}
	n := 3072
	if os.Getenv("M2M_CLUSTER_LOG") != "" {
		n = 20000
	}
	for _, nd := range e.nodes {
		e.t.Logf("%s stderr (last %d bytes):\n%s", nd.name, n, tail(nd.d.stderr.String(), n))
		if os.Getenv("M2M_CLUSTER_LOG") != "" {
			os.WriteFile(filepath.Join(os.TempDir(), "cluster-"+nd.name+".log"), []byte(nd.d.stderr.String()), 0o600)
		}
	}
}

// waitMetric waits until series reaches at least min and returns its last
// value (below min when within passed). A node counts what it did after
// doing it: B pushes a forwarded call's answer, then counts it as served,
// so the caller may have the answer before B's counter moved.
func (d *daemon) waitMetric(series string, min float64, within time.Duration) float64 {
	d.t.Helper()
	deadline := time.Now().Add(within)
	for {
		v := d.metric(series)
		if v >= min || time.Now().After(deadline) {
			return v
		}
		time.Sleep(50 * time.Millisecond)
	}
}
