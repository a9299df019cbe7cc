package gateway

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/oscore"
	"github.com/m2mbearer/m2mbearer/bearer/secure"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/modemlink"
	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
	"github.com/m2mbearer/m2mbearer/bearer/sms/pdu"
	"github.com/m2mbearer/m2mbearer/bearer/sms/route"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smpp/smsc"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/state"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
	"github.com/m2mbearer/m2mbearer/modem"
	"github.com/m2mbearer/m2mbearer/modem/quarantine"
	"github.com/m2mbearer/m2mbearer/modem/sim"
	"github.com/m2mbearer/m2mbearer/redisstore"
)

// Gateway is a running smsgw. New starts it; Shutdown stops it.
type Gateway struct {
	cfg   *config.Config
	log   *slog.Logger
	model *model.Registry
	token string
	// tokenFile is the file the token came from ("" for api.token);
	// tokenSource says how: api.token, api.token_file, data dir, generated.
	tokenFile, tokenSource string

	lock *state.Lock         // the data dir's, held until Shutdown's end
	dbs  map[string]*bolt.DB // state files the gateway opened, by name
	web  *httpGuard          // HTTP limits and their counters

	metrics *Metrics
	hub     *hub

	simNet    *sim.Network
	simModems []*sim.Modem
	modems    []*modem.Modem
	pool      *modem.Pool
	link      *modemlink.Link
	smsB      *sms.Bearer
	simSMSC   *smsc.Server // simulator.smpp
	smppLinks []smppLink
	mux       *route.Mux                 // over the SMPP links and the modems, when there are links
	quar      *quarantine.Store          // received SMS that cannot be delivered
	oscore    map[string]*oscore.Context // endpoint → context (startOSCORE)
	oscStore  *oscore.BoltStore
	oscCount  map[string]*oscore.Counters // transport → counts

	regs registry.Store
	qs   queue.Store
	rdb  *redisstore.DB // the shared store (store: redis://...); nil for bbolt
	// cluster is this node's part in a cluster on rdb (cluster.go); nil for bbolt.
	cluster *cluster
	// sharedBind is the provisioning store in Redis (nil for bbolt).
	sharedBind *redisstore.Bindings
	srv        *server.Server
	udpEP      *bearer.Endpoint
	dtlsEP     *bearer.Endpoint
	dtls       *secure.Server
	smsEP      *bearer.Endpoint
	// DTLS over SMS and the session cache of both listeners (dtlssms.go).
	dtlsSMS     *secure.Server
	dtlsSess    *secure.SessionCache
	dtlsMetrics bool
	proxy       *proxy
	psk         map[string]config.PSK // identity → entry
	qm          *queue.Manager
	squeue      *server.Queue
	fleet       *Fleet
	fw          *fw
	wakes       *wakeBook       // wake-up latencies (wakeups.go)
	spend       *spendBook      // SMS spend per day (smsspend.go)
	models      []ModelObject   // objects loaded from lwm2m.models
	ctx         context.Context // the gateway's life; ends at Shutdown

	devMu   sync.RWMutex
	devices map[string]config.SMSDevice // endpoint → SMS rule
	plan    []*Light

	httpSrv *http.Server
	apiLn   net.Listener

	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once
}

// Info says where to look. It never holds the API token.
type Info struct {
	API, Metrics, OpenAPI string
	// TokenFile is the file holding the API token ("" when it came from
	// api.token); TokenSource says where it came from: api.token,
	// api.token_file, data dir (kept from an earlier start), generated.
	TokenFile, TokenSource string
	UDP, DTLS              string
	DataDir                string
	PTYs                   map[string]string // server SIM → pty path
	Lights                 []LightInfo
}

// LightInfo describes a demo light.
type LightInfo struct{ Name, Kind, MSISDN, ServerSIM string }

// New starts a gateway with cfg. The caller owns it and calls Shutdown.
//
// Before anything else it takes the data dir's lock (a second gateway on
// the same data dir fails at once, with an error wrapping state.ErrLocked,
// and changes nothing) and checks every state file (state.Preflight: a
// missing, empty, truncated or damaged file fails with a *state.FileError
// naming it). Errors an option can fix are a *StartError naming it. On any
// error, what was started is stopped again.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.DataDir == "" {
		return nil, &StartError{Option: "data_dir", Err: errors.New("empty")}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, &StartError{Option: "data_dir", Value: cfg.DataDir, Err: err}
	}
	lock, err := state.Acquire(cfg.DataDir)
	if err != nil {
		if errors.Is(err, state.ErrLocked) {
			return nil, fmt.Errorf("data_dir %w; stop that smsgw first or give this one another data dir", err)
		}
		return nil, &StartError{Option: "data_dir", Value: cfg.DataDir, Err: err}
	}
	if err := state.Preflight(cfg.DataDir); err != nil {
		lock.Release()
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	g := &Gateway{cfg: cfg, log: log, model: model.DefaultRegistry(), metrics: newMetrics(),
		hub: newHub(64), devices: map[string]config.SMSDevice{}, cancel: cancel, ctx: ctx,
		lock: lock, dbs: map[string]*bolt.DB{}}
	g.wakes, g.spend = newWakeBook(g.metrics.wakeLatency), &spendBook{}
	g.metrics.reg.MustRegister(g.wakes.collectors()...)
	if err := g.start(ctx); err != nil {
		g.Shutdown(context.Background())
		return nil, err
	}
	return g, nil
}

// start starts the parts in order; New stops them again on an error.
// The order matters: each part uses the ones started before it (the
// LwM2M server the SMS bearers, the queue the server, the API both), and
// the data dir is marked initialised last, once everything runs.
func (g *Gateway) start(ctx context.Context) error {
	err := g.setToken()
	if err != nil {
		return err
	}
	if err = g.openRedis(ctx); err != nil {
		return err
	}
	g.indexDevices()
	sims, err := g.startSMSBearers(ctx)
	if err != nil {
		return err
	}
	if err = g.startLwM2M(ctx, sims); err != nil {
		return err
	}
	if err = g.startAPI(); err != nil {
		return err
	}
	if err = g.cluster.start(ctx); err != nil {
		return err
	}
	if err = g.startFirmware(ctx); err != nil {
		return err
	}
	if err = g.startDemoFleet(ctx, sims); err != nil {
		return err
	}
	if err := g.lock.SetAPI(strings.TrimSuffix(g.Info().API, "/api/v1")); err != nil {
		return err
	}
	return state.MarkInitialised(g.cfg.DataDir)
}

// indexDevices indexes the configured SMS devices by endpoint and the
// configured PSKs by identity (startModems adds the demo lights').
func (g *Gateway) indexDevices() {
	for _, d := range g.cfg.SMS.Devices {
		g.devices[d.Endpoint] = d
	}
	g.psk = map[string]config.PSK{}
	for _, p := range g.cfg.LwM2M.PSK {
		g.psk[p.Identity] = p
	}
}

// startSMSBearers opens the modems, the simulated SMSC and the SMPP links,
// the OSCORE contexts and the SMS bearer over them, and returns the server
// SIMs (the modems' first, then the SMPP links').
func (g *Gateway) startSMSBearers(ctx context.Context) ([]string, error) {
	sims, err := g.startModems(ctx)
	if err != nil {
		return nil, err
	}
	var simLinks []config.SMPPLink
	if g.cfg.Simulator.Enabled && g.cfg.Simulator.SMPP {
		l, err := g.startSimSMSC()
		if err != nil {
			return nil, err
		}
		simLinks = append(simLinks, l)
	}
	modemSIMs := sims
	smppSIMs, err := g.startSMPP(simLinks)
	if err != nil {
		return nil, err
	}
	sims = append(append([]string(nil), sims...), smppSIMs...)
	if err = g.startOSCORE(); err != nil {
		return nil, err
	}
	if err = g.startSMS(sims, modemSIMs); err != nil {
		return nil, err
	}
	return sims, nil
}

// startLwM2M starts the LwM2M side on the bearers: the cluster, the
// firmware store, the object models, the server and its queue, the stored
// values and SMS spend, and the loops that keep them (stopped by the
// gateway's context and waited for by Shutdown).
func (g *Gateway) startLwM2M(ctx context.Context, sims []string) error {
	err := g.newCluster(sims)
	if err != nil {
		return err
	}
	if err = g.openFirmwareStore(); err != nil {
		return err
	}
	if err = g.loadModels(); err != nil {
		return err
	}
	if err = g.startServer(); err != nil {
		return err
	}
	if err = g.startQueue(); err != nil {
		return err
	}
	if err = g.metrics.reg.Register(newLwM2MCollector(g)); err != nil {
		return err
	}
	if err = g.loadValues(); err != nil {
		return err
	}
	g.loadSpend()
	g.wg.Add(4)
	go g.jobValues(ctx, g.qm.Subscribe(256))
	go g.snapshotValues(ctx)
	go g.events(ctx)
	go g.spendLoop(ctx)
	return nil
}

// startDemoFleet starts the simulator's demo lights (when there are any)
// against the server's UDP and DTLS addresses and sims.
func (g *Gateway) startDemoFleet(ctx context.Context, sims []string) error {
	cfg := g.cfg
	if !cfg.Simulator.Enabled || len(g.plan) == 0 {
		return nil
	}
	f := cfg.Simulator.Fleet
	spec := FleetSpec{UDP: f.UDP, Queue: f.Queue, SMS: f.SMS, DTLS: f.DTLS, OSCORE: f.OSCORE, OSCORESMS: f.OSCORESMS, DTLSSMS: f.DTLSSMS, OSCOREQueue: f.OSCOREQueue, Awake: f.Awake,
		ServerUDP: g.udpEP.LocalAddr(), ServerSIMs: sims, Network: g.simNet,
		StateDir: filepath.Join(cfg.DataDir, "fleet"), Logger: g.log.With("component", "fleet")}
	if g.dtlsEP != nil {
		spec.ServerDTLS = g.dtlsEP.LocalAddr()
	}
	var err error
	g.fleet, err = StartFleet(ctx, spec, g.plan)
	return err
}

// startModems opens the modems (virtual ones on ptys in simulator mode) and
// returns the server SIM numbers.
func (g *Gateway) startModems(ctx context.Context) ([]string, error) {
	pool, err := modem.NewPool(modem.WithPoolLogger(g.log.With("component", "pool")))
	if err != nil {
		return nil, err
	}
	g.pool = pool
	if err := g.openQuarantine(); err != nil {
		return nil, err
	}
	var cfgs []modem.Config
	if g.cfg.Simulator.Enabled {
		if cfgs, err = g.startSimModems(); err != nil {
			return nil, err
		}
	} else {
		for _, m := range g.cfg.Modems {
			a, _ := sms.ParseMSISDN(m.MSISDN)
			cfgs = append(cfgs, modem.Config{Device: m.Device, Baud: m.Baud, PIN: m.PIN, MSISDN: a.String(), Profile: m.Profile})
		}
	}
	var out []string
	for i, c := range cfgs {
		option := fmt.Sprintf("modems.%d.device", i)
		if g.cfg.Simulator.Enabled {
			option = fmt.Sprintf("simulator.server_sims.%d", i)
		}
		if _, err := os.Stat(c.Device); err != nil {
			return nil, &StartError{Option: option, Value: c.Device, Err: fmt.Errorf("%w (check the path, the cable, and the udev name)", netCause(err))}
		}
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		m, err := modem.Open(octx, c, modem.WithLogger(g.log.With("component", "modem", "modem", c.MSISDN)), modem.WithMetrics(g.metrics.Modem),
			modem.WithQuarantine(g.quar))
		cancel()
		if err != nil {
			return nil, &StartError{Option: option, Value: c.Device, Err: fmt.Errorf("modem %s: %w", c.MSISDN, err)}
		}
		g.modems = append(g.modems, m)
		if err := g.pool.Add(m); err != nil {
			m.Close()
			return nil, &StartError{Option: option, Value: c.Device, Err: fmt.Errorf("modem %s: %w", c.MSISDN, err)}
		}
		out = append(out, c.MSISDN)
	}
	return out, nil
}

// startSimModems starts the simulated network and its server modems (on
// ptys, unless the simulated SMSC serves the server SIMs over SMPP), plans
// the demo fleet and records its lights' PSKs and SMS devices, and returns
// the modems' configs.
func (g *Gateway) startSimModems() ([]modem.Config, error) {
	s := g.cfg.Simulator
	var err error
	g.simNet, err = sim.NewNetwork(sim.WithSeed(uint64(time.Now().UnixNano())),
		sim.WithConditions(sim.Conditions{Latency: sim.Fixed(s.Latency)}), sim.WithLogger(g.log.With("component", "simnet")))
	if err != nil {
		return nil, fmt.Errorf("simulated network: %w", err)
	}
	var cfgs []modem.Config
	for _, n := range s.ServerSIMs {
		if s.SMPP {
			break // served by the simulated SMSC over SMPP (startSimSMSC)
		}
		a, _ := sms.ParseMSISDN(n)
		m, err := g.simNet.AddModem(a.String(), sim.WithSendTime(s.SendTime))
		if err != nil {
			return nil, fmt.Errorf("simulated modem %s: %w", a, err)
		}
		p, err := m.OpenPTY()
		if err != nil {
			return nil, fmt.Errorf("simulated modem %s: pty: %w", a, err)
		}
		g.simModems = append(g.simModems, m)
		cfgs = append(cfgs, modem.Config{Device: p, MSISDN: a.String()})
	}
	f := s.Fleet
	g.plan = FleetPlan(FleetSpec{UDP: f.UDP, Queue: f.Queue, SMS: f.SMS, DTLS: f.DTLS, OSCORE: f.OSCORE, OSCORESMS: f.OSCORESMS, DTLSSMS: f.DTLSSMS, OSCOREQueue: f.OSCOREQueue, ServerSIMs: sims(s.ServerSIMs),
		StateDir: filepath.Join(g.cfg.DataDir, "fleet")})
	for _, l := range g.plan {
		if l.PSK != nil {
			g.psk[string(l.PSK.Identity)] = config.PSK{Identity: l.PSK.Identity, Key: hex.EncodeToString(l.PSK.Key), Endpoint: l.Name}
		}
		if l.MSISDN != "" {
			g.devices[l.Name] = config.SMSDevice{Endpoint: l.Name, MSISDN: l.MSISDN, ServerSIM: l.ServerSIM,
				Trigger: l.sleeps(), NoSec: l.Kind == KindQueue}
			if l.Kind == KindDTLSSMS {
				d := g.devices[l.Name]
				d.Security = config.SMSPSK
				g.devices[l.Name] = d
			}
		}
	}
	return cfgs, nil
}

func sims(in []string) []string {
	out := make([]string, 0, len(in))
	for _, n := range in {
		if a, err := sms.ParseMSISDN(n); err == nil {
			out = append(out, a.String())
		}
	}
	return out
}

func (g *Gateway) framing() sms.Framing {
	if g.cfg.SMS.Framing == "wap-push" {
		return sms.FramingWAPPush
	}
	return sms.FramingCoAP
}

func (g *Gateway) startSMS(sims, modemSIMs []string) error {
	if len(sims) == 0 {
		return nil
	}
	if len(modemSIMs) > 0 {
		link, err := modemlink.New(g.pool, modemlink.WithQuarantine(g.quar), modemlink.WithLogger(g.log.With("component", "modemlink")))
		if err != nil {
			return err
		}
		g.link = link
	}
	tr, err := g.transport(modemSIMs)
	if err != nil {
		return err
	}
	peers := map[string]sms.Peer{}
	for _, d := range g.devices {
		sim := d.ServerSIM
		if sim == "" {
			sim = sims[0]
		}
		mode := smsPeerMode(g.smsSecurity(d))
		framing := g.framing()
		if mode == sms.ModeDTLS {
			framing = sms.FramingCoAP // DTLS records go bare, never WAP-Push framed
		}
		peers[d.MSISDN] = sms.Peer{Security: mode, SIM: sim, Framing: framing}
	}
	dir := filepath.Join(g.cfg.DataDir, "sms")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	st, lim, ob := g.smsShared(sims)
	var b *sms.Bearer
	err = guardOpen(g.cfg.DataDir, "sms/", func() (err error) {
		b, err = sms.New(tr, sms.Config{
			StateDir: dir, Peers: peers, State: st, RateLimiter: lim, OutboxBackend: ob,
			DailyBudget: smsBudget(g.cfg.SMS.DailyBudget), DailyBudgetPerDevice: smsBudget(g.cfg.SMS.DailyBudgetPerDevice),
			PeerRate: g.cfg.SMS.PeerRate, PeerBurst: g.cfg.SMS.PeerBurst,
			BudgetWarnRatio: g.cfg.SMS.BudgetWarn, OnBudget: g.onBudget,
			LoopMax: g.cfg.SMS.LoopMax, LoopWindow: g.cfg.SMS.LoopWindow, OnLoop: g.onLoop,
			SplitDTLS: g.dtlsOverSMS() && g.cfg.Mode != "proxy",
			Submit:    []pdu.Option{pdu.WithStatusReport(g.cfg.SMS.StatusReports)},
			// 64 sends in flight keep 8 modems or an SMPP window busy (docs/smpp.md, TestWakeupThroughput).
			Worker: outbox.WorkerConfig{Poll: 20 * time.Millisecond, BackoffMin: 100 * time.Millisecond, BackoffMax: 30 * time.Second, MaxInFlight: 64},
			Logger: g.log.With("component", "sms"),
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("sms bearer: %w", err)
	}
	g.smsB = b
	if len(g.smppLinks) > 0 {
		if err := g.metrics.reg.Register(newSMPPCollector(g.smppLinks, g.mux)); err != nil {
			return err
		}
	}
	if err := g.metrics.reg.Register(newSMSPurposeCollector(func() *sms.Bearer { return g.smsB })); err != nil {
		return err
	}
	return g.metrics.reg.Register(newSMSCollector(b, g.pool, func() []*modem.Modem { return g.modems }))
}

// startServer opens the registration store and starts the LwM2M server,
// then attaches its bearers in order: UDP, DTLS, SMS (or, in proxy mode,
// the proxy of the SMS devices).
func (g *Gateway) startServer() error {
	err := g.openRegistry()
	if err != nil {
		return err
	}
	policy, err := g.policyOptions()
	if err != nil {
		return err
	}
	opts := append([]server.Option{server.WithLogger(g.log.With("component", "lwm2m")), server.WithModel(g.model),
		server.WithStrictBinding(g.cfg.LwM2M.StrictBinding)}, append(policy, g.serverNode()...)...)
	g.srv, err = server.New(g.regs, opts...)
	if err != nil {
		return err
	}
	if err = g.attachUDP(); err != nil {
		return err
	}
	if err = g.attachDTLS(); err != nil {
		return err
	}
	if err = g.attachSMS(); err != nil {
		return err
	}
	return g.metrics.reg.Register(newPolicyCollector(g.srv, g.dtls))
}

// openRegistry opens the registration store (g.regs): the shared one in
// Redis, else registrations.db.
func (g *Gateway) openRegistry() error {
	ropts := registry.Options{Grace: 30 * time.Second, MaxRegistrations: g.cfg.LwM2M.MaxRegistrations}
	dec := func(network, addr string) (net.Addr, error) {
		if network == sms.Network {
			return sms.ParseMSISDN(addr)
		}
		return nil, fmt.Errorf("unknown network %q", network)
	}
	regs, err := g.redisRegistry(ropts, dec)
	if err != nil {
		return err
	}
	if regs == nil {
		var b *registry.Bolt
		_, err = g.openStateDB("registrations.db", func(db *bolt.DB) (err error) {
			b, err = registry.NewBolt(db, registry.BoltOptions{Options: ropts, AddrDecoder: dec, Logger: g.log.With("component", "registry")})
			return err
		})
		if err != nil {
			return err
		}
		regs = b
	}
	g.regs = regs
	return nil
}

// attachUDP listens on lwm2m.udp (when set) and attaches the CoAP Endpoint
// there (OSCORE-wrapped when contexts are configured) to the server.
func (g *Gateway) attachUDP() error {
	if g.cfg.LwM2M.UDP == "" {
		return nil
	}
	u, err := udp.Listen("udp", g.cfg.LwM2M.UDP)
	if err != nil {
		return listenError("lwm2m.udp", g.cfg.LwM2M.UDP, err)
	}
	ub, err := g.wrapOSCORE(u, "udp")
	if err != nil {
		u.Close()
		return err
	}
	if g.udpEP, err = bearer.NewEndpoint(ub, bearer.WithHandler(g.lwm2mHandler("udp", &g.udpEP)),
		bearer.WithMetrics(endpointMetrics{g.metrics, "udp"}), bearer.WithLogger(g.log.With("component", "coap-udp"))); err != nil {
		u.Close()
		return err
	}
	g.srv.Attach("udp", g.udpEP)
	return nil
}

// attachDTLS listens on lwm2m.dtls (when set) and attaches the CoAP
// Endpoint over the DTLS server there (g.dtls) to the server.
func (g *Gateway) attachDTLS() error {
	if g.cfg.LwM2M.DTLS == "" {
		return nil
	}
	u, err := udp.Listen("udp", g.cfg.LwM2M.DTLS)
	if err != nil {
		return listenError("lwm2m.dtls", g.cfg.LwM2M.DTLS, err)
	}
	dcfg, err := g.dtlsConfig("udp")
	if err != nil {
		u.Close()
		return err
	}
	ds, err := secure.NewServer(u, dcfg)
	if err != nil {
		u.Close()
		return fmt.Errorf("dtls: %w", err)
	}
	g.dtls = ds
	if g.dtlsEP, err = bearer.NewEndpoint(ds, bearer.WithHandler(g.lwm2mHandler("dtls", &g.dtlsEP)),
		bearer.WithMetrics(endpointMetrics{g.metrics, "dtls"}), bearer.WithLogger(g.log.With("component", "coap-dtls"))); err != nil {
		ds.Close()
		return err
	}
	g.srv.Attach("dtls", g.dtlsEP)
	return g.metrics.reg.Register(newDTLSCollector(ds))
}

// attachSMS attaches the CoAP Endpoint over the SMS bearer (when there is
// one) to the server, or in proxy mode bridges the SMS devices that are
// not woken by trigger to the external server (g.proxy).
func (g *Gateway) attachSMS() error {
	if g.smsB == nil {
		return nil
	}
	var err error
	if g.cfg.Mode == "proxy" {
		bridged := map[string]string{}
		for _, d := range g.devices {
			if !d.Trigger {
				bridged[d.MSISDN] = d.Endpoint
			}
		}
		g.proxy, err = newProxy(g.smsB, g.cfg.Proxy.Server, g.cfg.Proxy.Bind, bridged, g.log.With("component", "proxy"))
		return err
	}
	sb, err := g.smsServerBearer()
	if err != nil {
		return err
	}
	if g.smsEP, err = bearer.NewEndpoint(sb, bearer.WithHandler(g.srv.Handler("sms")),
		bearer.WithMetrics(endpointMetrics{g.metrics, "sms"}), bearer.WithLogger(g.log.With("component", "coap-sms"))); err != nil {
		return err
	}
	g.srv.Attach("sms", g.smsEP)
	return nil
}

// pskLookup is the DTLS server's PSK store.
func (g *Gateway) pskLookup(identity []byte) ([]byte, error) {
	if g.sharedBind != nil {
		return server.PSKLookup(g.sharedBind)(identity)
	}
	p, ok := g.psk[string(identity)]
	if !ok {
		return nil, fmt.Errorf("unknown PSK identity %q", identity)
	}
	return p.KeyBytes()
}

// awakeWindow is how long the server takes a queue-mode device to listen
// after it sent something: configured, or half the demo lights' window (so
// the server never sends into a device that just fell asleep), or 0 for the
// bearer's MAX_TRANSMIT_WAIT.
func (g *Gateway) awakeWindow() time.Duration {
	if g.cfg.Queue.AwakeWindow > 0 {
		return g.cfg.Queue.AwakeWindow
	}
	if g.cfg.Simulator.Enabled {
		return g.cfg.Simulator.Fleet.Awake / 2
	}
	return 0
}

// startQueue turns on the LwM2M server's queue mode (server.EnableQueue):
// device management calls for queue-mode devices go through the durable
// lwm2m/queue Manager, the server is its Executor (CoAP token from the
// queue.Attempt, so a re-send after a crash is a duplicate the device
// answers from its cache), and registration traffic feeds awake tracking
// and SMS wake-ups.
func (g *Gateway) startQueue() error {
	qs, err := g.redisQueue()
	if err != nil {
		return err
	}
	if qs == nil {
		var bs *queue.BoltStore
		_, err = g.openStateDB("queue.db", func(db *bolt.DB) (err error) {
			bs, err = queue.NewBoltStore(db)
			return err
		})
		if err != nil {
			return err
		}
		qs = bs
	}
	g.qs = qs
	w := g.awakeWindow()
	qc := server.QueueConfig{
		Config: queue.Config{
			Store:         qs,
			DefaultWindow: w,
			ExecTimeout:   w,
			Limits:        queue.Limits{PerDevice: g.cfg.Queue.PerDevice},
			DefaultExpiry: g.cfg.Queue.Expiry,
			Wake:          queue.WakePolicy{Timeout: g.cfg.Queue.WakeTimeout, MaxWakes: new(g.cfg.Queue.WakeMax)},
			Metrics:       queueMetrics{g.metrics},
			OnEvent:       g.onQueueEvent,
		},
		Device: g.deviceSettings,
	}
	if g.cfg.Simulator.Enabled {
		qc.Wake.MinInterval = 2 * time.Second
	}
	qc.Waker = g.queueWaker()
	if g.cluster != nil {
		qc.Holds = g.cluster.holds
		qc.Triggers = g.rdb.Triggers()
		qc.Waker = g.cluster.wakeOnce(qc.Waker, qc.Wake.MinInterval)
	}
	if g.squeue, err = g.srv.EnableQueue(qc); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	g.qm = g.squeue.Manager()
	return nil
}

// deviceSettings gives the server's queue mode the device table's number,
// server SIM and framing of a device.
func (g *Gateway) deviceSettings(r *registry.Registration) server.DeviceSettings {
	g.devMu.RLock()
	d, ok := g.devices[r.Endpoint]
	g.devMu.RUnlock()
	ds := server.DeviceSettings{WAPPush: g.framing() == sms.FramingWAPPush, Window: g.awakeWindow()}
	if ok {
		ds.MSISDN, ds.SIM = d.MSISDN, d.ServerSIM
	}
	return ds
}

// wakeTarget says how a registered device would be woken, or nil; the API
// shows it ("wakeable"); the server's queue mode makes the real decision
// (it also reads /1/x/21 Trigger from the device).
func (g *Gateway) wakeTarget(r *registry.Registration) *queue.WakeTarget {
	if !r.Queue || !r.Binding.Has(registry.BindingS) && r.Version != registry.V1_0 {
		return nil
	}
	g.devMu.RLock()
	d, ok := g.devices[r.Endpoint]
	g.devMu.RUnlock()
	if !ok {
		return nil // only configured numbers are woken, never a registration's sms=
	}
	a, err := sms.ParseMSISDN(d.MSISDN)
	if err != nil {
		return nil
	}
	if rs, err := sms.ParseMSISDN(r.SMS); r.SMS != "" && (err != nil || rs != a) {
		// The device registered with another number than the one it is
		// configured with: do not wake a stranger.
		g.log.Warn("registration sms= does not match the configured number; no SMS wake-up",
			"endpoint", r.Endpoint, "sms", r.SMS, "configured", a.String())
		return nil
	}
	return &queue.WakeTarget{MSISDN: a.String(), Version: r.Version.String(),
		Binding: registry.BindingMode(r.Version, r.Binding, r.Queue), Trigger: d.Trigger,
		WAPPush: g.framing() == sms.FramingWAPPush, SIM: d.ServerSIM}
}

// events turns registration events into queue-mode state, metrics and SSE.
func (g *Gateway) events(ctx context.Context) {
	defer g.wg.Done()
	sub := g.srv.Subscribe(1024)
	if sub == nil {
		g.log.Error("no registration event subscription available")
		return
	}
	defer sub.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-sub.C:
			if !ok {
				return
			}
			g.onServerEvent(ev)
		}
	}
}

func (g *Gateway) onServerEvent(ev server.Event) {
	kind := strings.ToLower(ev.Kind.String())
	var ep string
	data := map[string]any{"time": ev.Time}
	switch ev.Kind {
	case server.Registered, server.Updated:
		g.metrics.registrations.WithLabelValues(kind).Inc()
		ep = ev.Registration.Endpoint
	case server.Deregistered, server.Expired:
		g.metrics.registrations.WithLabelValues(kind).Inc()
		ep = ev.Registration.Endpoint
	case server.Notified:
		ep = ev.Notification.Endpoint
	case server.Sent:
		ep = ev.Send.Endpoint
		// The values the device sent travel with the event (the server
		// also keeps them as last known values).
		data["path"] = "/dp"
		data["format"] = content.Format(ev.Send.Content.Format).String()
		if recs, err := ev.Send.Records(g.model); err == nil {
			data["values"] = recordsJSON(recs)
		} else {
			data["error"] = err.Error()
		}
	}
	data["endpoint"] = ep
	if ev.Notification != nil {
		data["path"] = pathsString(ev.Notification.Paths)
		data["format"] = content.Format(ev.Notification.Content.Format).String()
		if recs, err := ev.Notification.Values(); err == nil {
			data["values"] = recordsJSON(recs)
		} else {
			data["error"] = err.Error()
		}
	}
	g.hub.publish(kind, data)
}

func (g *Gateway) onQueueEvent(ev queue.Event) {
	g.wakes.event(ev)
	data := map[string]any{"endpoint": ev.Endpoint, "time": ev.Time}
	if ev.ID != 0 {
		data["job"] = ev.ID
		data["state"] = ev.State.String()
	}
	if ev.Err != nil {
		data["error"] = ev.Err.Error()
	}
	g.hub.publish("job-"+ev.Type.String(), data)
}

// Info returns where to look.
func (g *Gateway) Info() Info {
	in := Info{TokenFile: g.tokenFile, TokenSource: g.tokenSource, DataDir: g.cfg.DataDir, PTYs: map[string]string{}}
	if g.apiLn != nil {
		base := "http://" + g.apiLn.Addr().String()
		in.API, in.Metrics, in.OpenAPI = base+"/api/v1", base+"/metrics", base+"/openapi.json"
	}
	if g.udpEP != nil {
		in.UDP = g.udpEP.LocalAddr().String()
	}
	if g.dtlsEP != nil {
		in.DTLS = g.dtlsEP.LocalAddr().String()
	}
	for _, m := range g.simModems {
		in.PTYs[m.MSISDN()] = m.PTYPath()
	}
	for _, l := range g.plan {
		in.Lights = append(in.Lights, LightInfo{l.Name, l.Kind, l.MSISDN, l.ServerSIM})
	}
	return in
}

// Shutdown stops the API (waiting for requests in flight until ctx ends),
// the fleet, the queue (queued requests stay in the store for the next
// start), the server, the bearers (the SMS outbox keeps what is not sent)
// and the modems, and closes the state files.
func (g *Gateway) Shutdown(ctx context.Context) error {
	var errs []error
	g.closed.Do(func() {
		errs = append(errs, g.stopAPI(ctx)...)
		if g.fleet != nil {
			g.fleet.Close()
		}
		g.cluster.stop()
		g.cancel()
		errs = append(errs, g.stopLwM2M()...)
		errs = append(errs, g.closeBearers(ctx)...)
		errs = append(errs, g.closeModems()...)
		errs = append(errs, g.closeStores()...)
	})
	return errors.Join(errs...)
}

// stopAPI stops the event streams and the HTTP server, waiting for the
// requests in flight until ctx ends (then it closes their connections).
func (g *Gateway) stopAPI(ctx context.Context) []error {
	if g.httpSrv == nil {
		return nil
	}
	g.hub.close()
	if err := g.httpSrv.Shutdown(ctx); err != nil {
		g.httpSrv.Close()
		return []error{fmt.Errorf("http: %w", err)}
	}
	return nil
}

// stopLwM2M stops firmware updates, the queue (queued requests stay in the
// store) and the server, then waits for the gateway's loops (start).
func (g *Gateway) stopLwM2M() []error {
	errs := []error{g.closeFirmware()}
	if g.squeue != nil {
		errs = append(errs, g.squeue.Close())
	}
	if g.srv != nil {
		errs = append(errs, g.srv.Close())
	}
	g.wg.Wait()
	return errs
}

// closeBearers closes the CoAP Endpoints and their bearers (the SMS outbox
// keeps what is not sent), the proxy (de-registering its devices upstream
// first), the SMPP links and the security state (OSCORE contexts, DTLS
// sessions).
func (g *Gateway) closeBearers(ctx context.Context) []error {
	var errs []error
	if g.udpEP != nil {
		errs = append(errs, g.udpEP.Close())
	}
	if g.dtlsEP != nil {
		errs = append(errs, g.dtlsEP.Close()) // closes g.dtls
	}
	if g.proxy != nil {
		// De-register the bridged devices upstream while their
		// sockets are still open (the external server would
		// otherwise keep them until their lifetime runs out).
		g.proxy.deregisterAll(ctx)
		g.proxy.Close()
	}
	if g.smsEP != nil {
		errs = append(errs, g.smsEP.Close()) // closes g.smsB
	} else if g.smsB != nil {
		errs = append(errs, g.smsB.Close())
	}
	if g.proxy != nil {
		g.proxy.wait()
	}
	g.closeSMPP()
	if g.oscStore != nil {
		errs = append(errs, g.oscStore.Close())
	}
	if g.dtlsSess != nil {
		errs = append(errs, g.dtlsSess.Close())
	}
	return errs
}

// closeModems closes the modem link, the pool and the modems, the
// quarantine of undeliverable SMS, and the simulated network.
func (g *Gateway) closeModems() []error {
	if g.link != nil {
		g.link.Close()
	}
	if g.pool != nil {
		g.pool.Close()
	}
	for _, m := range g.modems {
		m.Close()
	}
	var errs []error
	if g.quar != nil {
		errs = append(errs, g.quar.Close())
	}
	if g.simNet != nil {
		g.simNet.Close()
	}
	return errs
}

// closeStores closes the queue and registration stores, the shared store,
// the state files, and releases the data dir's lock last.
func (g *Gateway) closeStores() []error {
	var errs []error
	if g.qs != nil {
		errs = append(errs, g.qs.Close())
	}
	if g.regs != nil {
		errs = append(errs, g.regs.Close())
	}
	if g.sharedBind != nil {
		errs = append(errs, g.sharedBind.Close())
	}
	if g.rdb != nil {
		errs = append(errs, g.rdb.Close())
	}
	errs = append(errs, g.closeStateDBs())
	errs = append(errs, g.lock.Release())
	return errs
}
