package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/oscore"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
	"github.com/m2mbearer/m2mbearer/lwm2m/client"
)

// OSCOREKeys is a demo light's OSCORE keying material: its Object 21 and
// the server's matching context.
type OSCOREKeys struct {
	Secret           []byte
	DeviceID, Server []byte // Sender IDs
}

// newOSCOREKeys returns the i-th demo light's keys: the ones provisioned
// into <dir>/oscore-keys at its first start (its Object 21, which a real
// light keeps across reboots and storage loss), or new random ones when
// dir is empty or cannot be written.
func newOSCOREKeys(dir string, i int) *OSCOREKeys {
	k := &OSCOREKeys{Secret: make([]byte, 16), DeviceID: []byte{'L', byte(i >> 8), byte(i)}, Server: []byte{'S'}}
	file := filepath.Join(dir, "oscore-keys")
	if dir != "" {
		if b, err := os.ReadFile(file); err == nil {
			if s, err := hex.DecodeString(strings.TrimSpace(string(b))); err == nil && len(s) == 16 {
				k.Secret = s
				return k
			}
		}
	}
	_, _ = rand.Read(k.Secret)
	if dir != "" && os.MkdirAll(dir, 0o700) == nil {
		_ = os.WriteFile(file, []byte(hex.EncodeToString(k.Secret)+"\n"), 0o600)
	}
	return k
}

// config is the server's half of the light's context; demo lights run
// Appendix B.2 (rederive), so one whose OSCORE state is lost comes back.
func (k *OSCOREKeys) config(ep string) config.OSCORE {
	return config.OSCORE{Endpoint: ep, MasterSecret: hex.EncodeToString(k.Secret),
		SenderID: hex.EncodeToString(k.Server), RecipientID: hex.EncodeToString(k.DeviceID), Rederive: true}
}

// wrapOSCORE gives a demo light its Object 21 and puts its bearer under
// OSCORE with the context built from it, the sequence numbers and the ID
// Context of its last Appendix B.2 run kept in <dir>/oscore.db (Appendix
// B.1.1; B.2 when that file is lost). server is the peer on b; reg the
// server the light registers with (its Security object's URI). A light
// with two bearers (an OSCORE queue light: UDP, and SMS for the triggers)
// uses one context on both: a second context from the same keys and store
// would reuse nonces.
func (l *Light) wrapOSCORE(dir string, b bearer.Bearer, server, reg net.Addr) (bearer.Bearer, error) {
	if l.oscCtx != nil {
		return oscore.New(b, oscore.WithPeer(server, l.oscCtx))
	}
	uri := "coap://" + reg.String()
	if reg.Network() == sms.Network {
		uri = "sms://" + reg.String()
	}
	if err := l.c.AddSecurity(client.Security{ServerURI: uri, Mode: 3, ShortID: 101}); err != nil {
		return nil, err
	}
	if err := l.c.AddOSCORE(0, client.OSCORE{MasterSecret: l.OSCORE.Secret, SenderID: l.OSCORE.DeviceID, RecipientID: l.OSCORE.Server}); err != nil {
		return nil, err
	}
	p, err := l.c.OSCOREParams(0)
	if err != nil {
		return nil, err
	}
	if l.oscSt == nil {
		if l.oscSt, err = oscore.OpenBoltStore(filepath.Join(dir, "oscore.db")); err != nil {
			return nil, err
		}
	}
	x, err := oscore.NewContext(p, l.oscSt, oscore.WithRederivation())
	if err != nil {
		return nil, err
	}
	l.oscCtx = x
	return oscore.New(b, oscore.WithPeer(server, x))
}

// startOSCORE builds the server's OSCORE contexts: the configured ones and
// the demo lights', with sequence numbers in <data_dir>/oscore.db.
func (g *Gateway) startOSCORE() error {
	g.oscore = map[string]*oscore.Context{}
	list := append([]config.OSCORE(nil), g.cfg.LwM2M.OSCORE...)
	for _, l := range g.plan {
		if l.OSCORE != nil {
			list = append(list, l.OSCORE.config(l.Name))
		}
	}
	if len(list) == 0 {
		return nil
	}
	var st *oscore.BoltStore
	_, err := g.openStateDB("oscore.db", func(db *bolt.DB) (err error) {
		st, err = oscore.NewBoltStore(db)
		return err
	})
	if err != nil {
		return err
	}
	g.oscStore = st
	for _, o := range list {
		p, err := o.Params()
		if err != nil {
			return fmt.Errorf("oscore context of %s: %w", o.Endpoint, err)
		}
		x, err := oscore.NewContext(p, st, o.ContextOptions()...)
		if err != nil {
			return fmt.Errorf("oscore context of %s: %w", o.Endpoint, err)
		}
		g.oscore[o.Endpoint] = x
	}
	return g.metrics.reg.Register(&oscoreCollector{g: g})
}

// wrapOSCORE puts a listener's bearer under OSCORE when contexts exist:
// protected messages are verified with the device's context, the others
// pass as NoSec (and the registration policy decides). On SMS, a device
// with a context is bound to its number and may not fall back to NoSec.
func (g *Gateway) wrapOSCORE(b bearer.Bearer, transport string) (bearer.Bearer, error) {
	if len(g.oscore) == 0 {
		return b, nil
	}
	opts := []oscore.ConnOption{oscore.AllowPlain(), oscore.WithMetrics(g.oscoreCounters(transport)),
		oscore.WithLogger(g.log.With("component", "oscore-"+transport))}
	for ep, x := range g.oscore {
		d, ok := g.devices[ep]
		if transport == "sms" && ok {
			a, err := sms.ParseMSISDN(d.MSISDN)
			if err != nil {
				return nil, err
			}
			opts = append(opts, oscore.WithPeer(a, x))
			continue
		}
		opts = append(opts, oscore.WithContext(x))
	}
	return oscore.New(b, opts...)
}

func (g *Gateway) oscoreCounters(transport string) *oscore.Counters {
	if g.oscCount == nil {
		g.oscCount = map[string]*oscore.Counters{}
	}
	c := &oscore.Counters{}
	g.oscCount[transport] = c
	return c
}

// oscoreCollector exports smsgw_oscore_events_total{transport,event}.
type oscoreCollector struct{ g *Gateway }

var oscoreDesc = prometheus.NewDesc("smsgw_oscore_events_total",
	"OSCORE (RFC 8613) events by transport: protected, verified, replay, decrypt_failed, echo_challenge, ...",
	[]string{"transport", "event"}, nil)

func (c *oscoreCollector) Describe(ch chan<- *prometheus.Desc) { ch <- oscoreDesc }

func (c *oscoreCollector) Collect(ch chan<- prometheus.Metric) {
	for tr, cs := range c.g.oscCount {
		for ev, n := range cs.Snapshot() {
			ch <- prometheus.MustNewConstMetric(oscoreDesc, prometheus.CounterValue, float64(n), tr, ev)
		}
	}
}
