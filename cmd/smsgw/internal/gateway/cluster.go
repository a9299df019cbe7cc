package gateway

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/redisstore"
)

// cluster is this node's part in a deployment of several smsgw nodes on
// one Redis store (docs/cluster.md): its heartbeat and the others' liveness,
// which node holds which device, API calls forwarded to the node holding
// the device (rpc.go), SMS handed to the node whose modem has the SIM
// (smsrelay.go), and the request queue's change stream. nil on a gateway
// with bbolt state.
type cluster struct {
	g    *Gateway
	db   *redisstore.DB
	self string
	hb   time.Duration // heartbeat TTL
	rpc  time.Duration // forwarded call timeout beyond its ?wait=

	localSIMs map[string]bool
	started   time.Time

	alive atomic.Pointer[map[string]bool] // live nodes, from the last heartbeat round
	nodes atomic.Pointer[[]redisstore.NodeStatus]

	met clusterMetrics

	sem    chan struct{} // forwarded calls served at once
	wg     sync.WaitGroup
	cancel context.CancelFunc
}

type clusterMetrics struct {
	forwarded *prometheus.CounterVec // result: ok, timeout, holder_down, error
	served    prometheus.Counter
	rpcDrop   *prometheus.CounterVec // reason: unreadable, late
	relayed   *prometheus.CounterVec // direction: out (to another node's SIM), in (sent here), dropped
	hbErrors  prometheus.Counter
	alive     prometheus.Gauge
	held      prometheus.Gauge
	leases    prometheus.Gauge
	takeovers prometheus.Counter
	info      *prometheus.GaugeVec
}

func newClusterMetrics(reg *prometheus.Registry, node string) (clusterMetrics, error) {
	m := clusterMetrics{
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "smsgw_cluster_forwarded_total",
			Help: "API calls this node forwarded to the node holding the device, by result (ok, timeout, holder_down, error)."}, []string{"result"}),
		served: prometheus.NewCounter(prometheus.CounterOpts{Name: "smsgw_cluster_rpc_served_total",
			Help: "API calls other nodes forwarded to this one and it answered."}),
		rpcDrop: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "smsgw_cluster_rpc_dropped_total",
			Help: "Forwarded calls this node did not run, by reason (unreadable; late: past the caller's deadline)."}, []string{"reason"}),
		relayed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "smsgw_cluster_sms_relayed_total",
			Help: "SMS datagrams handed between nodes by SIM stream: out (to the node with the SIM), in (taken from this node's SIM streams into its outbox), dropped (expired or refused, logged)."},
			[]string{"direction"}),
		hbErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "smsgw_cluster_heartbeat_errors_total",
			Help: "Heartbeats that did not reach Redis."}),
		alive: prometheus.NewGauge(prometheus.GaugeOpts{Name: "smsgw_cluster_nodes_alive", Help: "Live nodes as this node saw them last."}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{Name: "smsgw_cluster_devices_held",
			Help: "Registrations whose session this node holds."}),
		leases: prometheus.NewGauge(prometheus.GaugeOpts{Name: "smsgw_cluster_request_leases",
			Help: "Queued requests this node is sending now (their leases)."}),
		takeovers: prometheus.NewCounter(prometheus.CounterOpts{Name: "smsgw_cluster_node_down_total",
			Help: "Times this node saw another node go down (its devices' queues then wake from a live node)."}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "smsgw_node_info", Help: "This node's name (value 1)."}, []string{"node"}),
	}
	m.info.WithLabelValues(node).Set(1)
	for _, c := range []prometheus.Collector{m.forwarded, m.served, m.rpcDrop, m.relayed, m.hbErrors, m.alive, m.held, m.leases, m.takeovers, m.info} {
		if err := reg.Register(c); err != nil {
			return m, err
		}
	}
	return m, nil
}

// newCluster prepares the cluster part when the store is Redis; it starts
// with start, once the gateway's listeners are up.
func (g *Gateway) newCluster(localSIMs []string) error {
	if g.rdb == nil {
		return nil
	}
	m, err := newClusterMetrics(g.metrics.reg, g.rdb.Node())
	if err != nil {
		return err
	}
	c := &cluster{g: g, db: g.rdb, self: g.rdb.Node(), hb: g.cfg.Cluster.HeartbeatTTL, rpc: g.cfg.Cluster.RPCTimeout,
		localSIMs: map[string]bool{}, started: time.Now().UTC(), met: m, sem: make(chan struct{}, 64)}
	for _, s := range localSIMs {
		c.localSIMs[s] = true
	}
	empty := map[string]bool{c.self: true}
	c.alive.Store(&empty)
	g.cluster = c
	return nil
}

// start sends the first heartbeat (a node that cannot reach Redis does
// not start) and starts the loops: heartbeat, forwarded calls, SIM streams,
// the queue's change stream.
func (c *cluster) start(ctx context.Context) error {
	if c == nil {
		return nil
	}
	if err := c.beat(ctx); err != nil {
		return err
	}
	ctx, c.cancel = context.WithCancel(ctx)
	if q, ok := c.g.qs.(*redisstore.Queue); ok {
		q.SetLeaseTTL(c.g.cfg.Cluster.LeaseTTL)
		if err := q.Watch(func(ids []uint64) error { return c.g.qm.Refresh(ids...) }, c.g.qm.Resync, c.g.log.With("component", "queue-feed")); err != nil {
			return err
		}
	}
	from, err := c.rpcFrom(ctx)
	if err != nil {
		return err
	}
	c.wg.Add(2)
	go c.heartbeats(ctx)
	go c.serveRPC(ctx, from)
	for sim := range c.localSIMs {
		c.wg.Add(1)
		go c.consumeSIM(ctx, sim)
	}
	return nil
}

// stop ends the loops and tells the others this node is gone, so its
// devices' queues are woken from a live node at once.
func (c *cluster) stop() {
	if c == nil || c.cancel == nil {
		return
	}
	c.cancel()
	c.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = c.db.Leave(ctx)
}

func (c *cluster) heartbeats(ctx context.Context) {
	defer c.wg.Done()
	t := time.NewTicker(c.hb / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		bctx, cancel := context.WithTimeout(ctx, c.hb/3)
		if err := c.beat(bctx); err != nil && ctx.Err() == nil {
			c.met.hbErrors.Inc()
			c.g.log.Warn("cluster: heartbeat", "err", err)
		}
		cancel()
	}
}

// beat sends this node's heartbeat and reads every node's.
func (c *cluster) beat(ctx context.Context) error {
	g := c.g
	info := redisstore.NodeInfo{UDP: addrString(g.udpEP), DTLS: addrString(g.dtlsEP), Started: c.started, Beat: time.Now().UTC()}
	if g.apiLn != nil {
		info.API = "http://" + g.apiLn.Addr().String()
	}
	for s := range c.localSIMs {
		info.SIMs = append(info.SIMs, s)
	}
	slices.Sort(info.SIMs)
	held := 0
	if g.regs != nil {
		g.regs.Range(func(r *registry.Registration) bool {
			if r.Node() == c.self {
				held++
			}
			return true
		})
	}
	info.Devices = held
	c.met.held.Set(float64(held))
	if q, ok := g.qs.(*redisstore.Queue); ok {
		n := len(q.Claims())
		c.met.leases.Set(float64(n))
		info.Stats = map[string]float64{"request_leases": float64(n)}
	}
	if g.qm != nil {
		st := g.qm.Stats()
		if info.Stats == nil {
			info.Stats = map[string]float64{}
		}
		info.Stats["queue_live"] = float64(st.Live)
	}
	if err := c.db.Heartbeat(ctx, info, c.hb); err != nil {
		return err
	}
	ns, err := c.db.Nodes(ctx)
	if err != nil {
		return err
	}
	alive := map[string]bool{}
	for _, n := range ns {
		if n.Alive {
			alive[n.Name] = true
		}
	}
	alive[c.self] = true
	old := *c.alive.Load()
	c.alive.Store(&alive)
	c.nodes.Store(&ns)
	c.met.alive.Set(float64(len(alive)))
	down := false
	for n := range old {
		if !alive[n] {
			down = true
			c.met.takeovers.Inc()
			g.log.Warn("cluster: node down; its devices are served by the live nodes", "node", n)
		}
	}
	if down && g.qm != nil {
		g.qm.Reschedule()
	}
	return nil
}

func addrString(ep *bearer.Endpoint) string {
	if ep == nil {
		return ""
	}
	return ep.LocalAddr().String()
}

// isAlive reports whether node sent a heartbeat within its TTL (as of the
// last round).
func (c *cluster) isAlive(node string) bool { return (*c.alive.Load())[node] }

// holder returns the node holding ep's session, whether that node is
// alive, and whether ep is registered.
func (c *cluster) holder(ep string) (node string, alive, ok bool) {
	reg, ok := c.g.regs.ByEndpoint(ep)
	if !ok {
		return "", false, false
	}
	n := reg.Node()
	if n == "" {
		n = c.self
	}
	return n, c.isAlive(n), true
}

// holds says whether this node wakes and drains ep: it holds the device's
// session, or that node is down and this one is the live node chosen for
// ep by rendezvous hashing (every node computes the same choice from the
// same live set, so one node takes each device over).
func (c *cluster) holds(ep string) bool {
	reg, ok := c.g.regs.ByEndpoint(ep)
	if !ok || reg.Node() == "" {
		// Not registered (its requests wait for it), or registered by a
		// gateway that did not name itself: one node, by the same rule.
		return c.successor(ep) == c.self
	}
	n, alive, _ := c.holder(ep)
	if n == c.self {
		return true
	}
	if alive {
		return false
	}
	return c.successor(ep) == c.self
}

// successor is the live node with the highest hash of (node, ep).
func (c *cluster) successor(ep string) string {
	best, bestH := "", uint64(0)
	for n := range *c.alive.Load() {
		h := fnv.New64a()
		h.Write([]byte(n))
		h.Write([]byte{0})
		h.Write([]byte(ep))
		if v := h.Sum64(); best == "" || v > bestH || v == bestH && n < best {
			best, bestH = n, v
		}
	}
	return best
}

// wakeOnce lets one node wake a device per interval: the lease wake:<ep>
// lives for the wake-up's minimum interval and is not released.
func (c *cluster) wakeOnce(w queue.Waker, minInterval time.Duration) queue.Waker {
	if c == nil || w == nil {
		return w
	}
	return queue.WakerFunc(func(ctx context.Context, ep string, t queue.WakeTarget) error {
		if _, err := c.db.Acquire(ctx, "wake:"+ep, max(minInterval, time.Second)); err != nil {
			if errors.Is(err, redisstore.ErrLeaseHeld) {
				c.g.log.Debug("cluster: another node woke the device just now", "endpoint", ep, "err", err)
				return nil
			}
			return err
		}
		return w.Wake(ctx, ep, t)
	})
}

// ClusterView is GET /api/v1/cluster.
type ClusterView struct {
	Node    string                  `json:"node"`
	Nodes   []redisstore.NodeStatus `json:"nodes"`
	Devices map[string]string       `json:"devices"` // endpoint -> node holding its session
	Modems  map[string]string       `json:"modems"`  // server SIM -> node with its modem or link
	Leases  []redisstore.Lease      `json:"leases"`  // requests in flight, campaign steps, wake-ups
	// Takeover is, for each device whose node is down, the live node that
	// wakes and drains it until it registers again.
	Takeover map[string]string `json:"takeover,omitempty"`
}

// maxViewLeases bounds the leases listed by GET /api/v1/cluster.
const maxViewLeases = 1000

func (g *Gateway) getCluster(w http.ResponseWriter, r *http.Request) {
	c := g.cluster
	if c == nil {
		writeError(w, http.StatusNotFound, "not a cluster: this gateway keeps its state in bbolt files (set store: redis://... and node: for cluster mode, docs/cluster.md)")
		return
	}
	ns, err := c.db.Nodes(r.Context())
	if err != nil {
		if storeDown(w, err) {
			return
		}
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	v := ClusterView{Node: c.self, Nodes: ns, Devices: map[string]string{}, Modems: map[string]string{}, Takeover: map[string]string{}}
	for _, n := range ns {
		for _, s := range n.SIMs {
			if n.Alive || v.Modems[s] == "" {
				v.Modems[s] = n.Name
			}
		}
	}
	g.regs.Range(func(reg *registry.Registration) bool {
		n := reg.Node()
		if n == "" {
			n = c.self
		}
		v.Devices[reg.Endpoint] = n
		if !c.isAlive(n) {
			v.Takeover[reg.Endpoint] = c.successor(reg.Endpoint)
		}
		return true
	})
	if v.Leases, err = c.db.Leases(r.Context(), "", maxViewLeases); err != nil {
		if storeDown(w, err) {
			return
		}
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// campaignOptions make the campaign Manager one of the cluster's: each
// device's steps run on the node holding it, under a step lease.
func (c *cluster) campaignOptions() []firmware.ManagerOption {
	if c == nil {
		return nil
	}
	ttl := c.g.cfg.Cluster.LeaseTTL
	return []firmware.ManagerOption{firmware.WithShared(firmware.Shared{
		Holds: c.holds,
		Lease: func(ctx context.Context, name string) (context.Context, func(), error) {
			return c.db.Hold(ctx, name, ttl)
		},
	})}
}

// fetchImage copies the bytes of an image uploaded on another node from
// that node's Package URI server (GET <api>/fw/<id>, the one devices pull
// from), trying the live nodes in turn; the store checks size and SHA-256.
func (c *cluster) fetchImage(ctx context.Context, info firmware.ImageInfo, w io.Writer) error {
	if c == nil {
		return errors.New("not a cluster")
	}
	var errs []error
	ns := c.nodes.Load()
	if ns == nil {
		return errors.New("no other node known yet")
	}
	for _, n := range *ns {
		if !n.Alive || n.Name == c.self || n.API == "" {
			continue
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.API+fwPrefix+info.ID, nil)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n.Name, err))
			continue
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			errs = append(errs, fmt.Errorf("%s: HTTP %d", n.Name, resp.StatusCode))
			continue
		}
		_, err = io.Copy(w, resp.Body)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", n.Name, err) // w has part of it: the store starts again next time
		}
		c.g.log.Info("cluster: firmware image fetched from another node", "image", info.ID, "node", n.Name, "bytes", info.Size)
		return nil
	}
	if len(errs) == 0 {
		return errors.New("no other live node to fetch from")
	}
	return errors.Join(errs...)
}
