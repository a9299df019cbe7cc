package gateway

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/secure"
	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// policyOptions turns the configuration into the LwM2M server's
// registration security policy (SECURITY.md): every PSK identity binds its
// endpoint name, every sms.devices entry binds its name to its number
// (registering only over SMS from it, or also over UDP without DTLS with
// nosec: true), lwm2m.nosec says which other names may register without
// DTLS, and the limits bound what one source may register.
func (g *Gateway) policyOptions() ([]server.Option, error) {
	bindings, err := g.bindings()
	if err != nil {
		return nil, err
	}
	l := g.cfg.LwM2M
	var nosec server.NoSecRule
	switch {
	case l.NoSec.All:
		nosec = server.NoSecAll()
	case len(l.NoSec.Names) > 0:
		if nosec, err = server.NoSecNames(l.NoSec.Names...); err != nil {
			return nil, fmt.Errorf("lwm2m.nosec: %w", err)
		}
	default:
		nosec = server.NoSecNone()
	}
	lim := server.Limits{SourceRate: l.RegisterRate, SourceBurst: l.RegisterBurst,
		MinLifetime: l.LifetimeMin, MaxLifetime: l.LifetimeMax}
	g.log.Info("registration policy", "nosec", l.NoSec.String(), "bindings", bindings.Len(),
		"register_rate", l.RegisterRate, "lifetime_max", l.LifetimeMax, "max_registrations", l.MaxRegistrations)
	var sec server.IdentityBinding = bindings
	if shared, err := g.redisBindings(bindings); err != nil {
		return nil, err
	} else if shared != nil {
		sec = shared
	}
	return []server.Option{server.WithSecurity(sec), server.WithNoSecRule(nosec), server.WithLimits(lim),
		server.WithPeerCheck(g.smsPeerCheck)}, nil
}

// bindings builds the binding table from lwm2m.psk and lwm2m.oscore (with
// the demo lights' PSKs and OSCORE contexts) and sms.devices.
func (g *Gateway) bindings() (*server.StaticSecurity, error) {
	g.devMu.RLock()
	defer g.devMu.RUnlock()
	sec := server.NewStaticSecurity(len(g.psk) + len(g.oscore) + len(g.devices) + 1)
	byEP := map[string]server.Binding{}
	for id, p := range g.psk {
		b := byEP[p.Endpoint]
		b.Identity = bearer.Identity{Mode: "psk", PSKIdentity: []byte(id)}
		b.PSK, _ = p.KeyBytes()
		byEP[p.Endpoint] = b
	}
	for ep, x := range g.oscore {
		b := byEP[ep]
		b.Identity = x.Identity() // an OSCORE context authenticates one device
		byEP[ep] = b
	}
	certs, err := g.certBindings() // lwm2m.rpk and lwm2m.x509 (dtlssms.go)
	if err != nil {
		return nil, err
	}
	for ep, id := range certs {
		b := byEP[ep]
		b.Identity = id
		byEP[ep] = b
	}
	for ep, d := range g.devices {
		b := byEP[ep]
		b.MSISDN, b.NoSec = d.MSISDN, d.NoSec
		b.SMSSecured = g.smsSecurity(d) != config.SMSNoSec // DTLS or OSCORE over SMS (dtlssms.go)
		byEP[ep] = b
	}
	for ep, b := range byEP {
		if err := sec.Set(ep, b); err != nil {
			return nil, fmt.Errorf("binding of %s: %w", ep, err)
		}
	}
	return sec, nil
}

// queueWaker is the queue's SMS waker, or nil (no SMS bearer, or
// queue.wake_max 0, which means no wake-up SMS at all, as the queue's
// WakePolicy.MaxWakes new(0) does). No Peers: the SMS peer
// table stays exactly sms.devices, and wake-ups go only to configured
// numbers, which are all peers already.
func (g *Gateway) queueWaker() queue.Waker {
	if g.smsB == nil || g.cfg.Queue.WakeMax == 0 {
		return nil
	}
	return g.smsWaker()
}

// policyCollector exports the server's registration-interface counters:
// requests refused by reason, log lines held back, sources tracked.
type policyCollector struct {
	srv               *server.Server
	dtls              *secure.Server // nil without the DTLS listener
	refused, suppress *prometheus.Desc
}

func newPolicyCollector(srv *server.Server, dtls *secure.Server) *policyCollector {
	return &policyCollector{srv: srv, dtls: dtls,
		refused: prometheus.NewDesc("smsgw_lwm2m_refused_total",
			"LwM2M registration-interface requests refused, by reason (forbidden: 4.03 by the security policy; "+
				"wrong_source: 4.04 for a NoSec registration's Update/De-register from another address; rate_limited: 4.29; "+
				"lifetime: 4.00 out of bounds; too_large: 4.13; registry_full: 5.03; other: any other refusal).",
			[]string{"reason"}, nil),
		suppress: prometheus.NewDesc("smsgw_log_suppressed_total",
			"Log lines about traffic anyone can send that the log limit held back, by source (lwm2m refusals, dtls handshakes).",
			[]string{"source"}, nil),
	}
}

func (c *policyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.refused
	ch <- c.suppress
}

func (c *policyCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.srv.Stats()
	by := map[string]uint64{
		"forbidden": st.Forbidden.Load(), "wrong_source": st.WrongSource.Load(), "rate_limited": st.RateLimited.Load(),
		"lifetime": st.BadLifetime.Load(), "too_large": st.TooLarge.Load(), "registry_full": st.Full.Load(),
	}
	var named uint64
	for _, v := range by {
		named += v
	}
	by["other"] = st.Rejected.Load() - min(named, st.Rejected.Load())
	for reason, v := range by {
		ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(v), reason)
	}
	ch <- prometheus.MustNewConstMetric(c.suppress, prometheus.CounterValue, float64(st.LogSuppressed.Load()), "lwm2m")
	if c.dtls != nil {
		ch <- prometheus.MustNewConstMetric(c.suppress, prometheus.CounterValue, float64(c.dtls.Stats().LogSuppressed), "dtls")
	}
}
