package gateway

import (
	"crypto"
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/secure"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
)

// DTLS over SMS in the daemon.
//
// Each SMS device has a security mode (sms.devices[].security, the demo
// lights' kinds): nosec and oscore devices speak CoAP on the SMS, psk, rpk
// and x509 devices speak DTLS. The SMS bearer is split by that configured
// mode (sms.Config.SplitDTLS): the DTLS peers' datagrams feed a
// secure.Server, the others the (OSCORE-wrapped) plain side, and
// secure.Mixed joins both under the one "sms" Endpoint the LwM2M server
// uses, so registrations, reads, writes, queue mode and firmware work the
// same for every mode. A datagram whose content does not match its
// sender's mode is dropped and counted by the SMS bearer
// (smsgw_sms_total{what="dropped_security"}); a registration over SMS
// without the identity the mode requires is refused by the policy
// (smsPeerCheck, 4.03).
//
// Both DTLS listeners share one session cache (<data_dir>/dtls-sessions.db,
// lwm2m.dtls_session_ttl): a device that restarts, or that moves between
// UDP and SMS with its session, resumes with an abbreviated handshake.

// smsSecurity is a device's SMS security mode (config.SecurityMode, with
// the demo lights' OSCORE contexts).
func (g *Gateway) smsSecurity(d config.SMSDevice) string {
	if d.Security != "" {
		return d.Security
	}
	if g.oscore[d.Endpoint] != nil {
		return config.SMSOSCORE
	}
	return config.SMSNoSec
}

// smsPeerMode maps a configured mode to the SMS bearer's.
func smsPeerMode(mode string) sms.Mode {
	switch mode {
	case config.SMSPSK, config.SMSRPK, config.SMSX509:
		return sms.ModeDTLS
	case config.SMSOSCORE:
		return sms.ModeOSCORE
	}
	return sms.ModeNoSec
}

// dtlsOverSMS reports whether any SMS device speaks DTLS.
func (g *Gateway) dtlsOverSMS() bool {
	for _, d := range g.devices {
		if smsPeerMode(g.smsSecurity(d)) == sms.ModeDTLS {
			return true
		}
	}
	return false
}

// DTLS-over-SMS handshake timing: SMS takes seconds per flight, and every
// retransmitted flight is SMS paid for.
const (
	smsFlightInterval    = 10 * time.Second
	smsHandshakeTimeout  = 3 * time.Minute
	smsHandshakeMTU      = secure.SMSHandshakeMTU // a flight in one concatenated SMS
	defaultDTLSSMSIdle   = 10 * time.Minute
	dtlsSessionsFileName = "dtls-sessions.db"
)

// sessions returns the DTLS session cache shared by both listeners, or nil
// when resumption is off (lwm2m.dtls_session_ttl 0).
func (g *Gateway) sessions() (*secure.SessionCache, error) {
	if g.dtlsSess != nil || g.cfg.LwM2M.DTLSSessionTTL <= 0 {
		return g.dtlsSess, nil
	}
	var c *secure.SessionCache
	err := guardOpen(g.cfg.DataDir, dtlsSessionsFileName, func() (err error) {
		c, err = secure.OpenSessionCache(filepath.Join(g.cfg.DataDir, dtlsSessionsFileName),
			secure.WithSessionTTL(g.cfg.LwM2M.DTLSSessionTTL))
		return err
	})
	if err != nil {
		return nil, err
	}
	g.dtlsSess = c
	return c, g.registerDTLSMetrics()
}

// registerDTLSMetrics registers the DTLS-over-SMS and session cache
// collector once.
func (g *Gateway) registerDTLSMetrics() error {
	if g.dtlsMetrics {
		return nil
	}
	g.dtlsMetrics = true
	return g.metrics.reg.Register(&dtlsSMSCollector{g: g})
}

// dtlsConfig is the DTLS server configuration of a listener ("udp" or
// "sms"): the PSK store, the server's certificate or raw key, the CAs of
// x509 devices and the pinned raw keys of rpk devices, and the shared
// session cache; on SMS also one-segment handshake datagrams, no cookie
// exchange (the mobile network vouches for the number), no connection ID
// (the number does not change), long flights and quiet session ends.
func (g *Gateway) dtlsConfig(transport string) (*secure.Config, error) {
	l := g.cfg.LwM2M
	c := &secure.Config{PSKLookup: g.pskLookup, Logger: g.log.With("component", "dtls")}
	cert, err := l.ServerCertificate(func(key any) (tls.Certificate, error) {
		s, ok := key.(crypto.Signer)
		if !ok {
			return tls.Certificate{}, fmt.Errorf("lwm2m.private_key: %T cannot sign", key)
		}
		return secure.NewRawKeyCertificate(s)
	})
	if err != nil {
		return nil, fmt.Errorf("lwm2m server credentials: %w", err)
	}
	c.Certificate = cert
	if l.CA != "" {
		if c.RootCAs, err = l.CAPool(); err != nil {
			return nil, err
		}
	}
	if len(l.RPK) > 0 {
		var keys [][]byte
		for _, r := range l.RPK {
			k, err := r.SPKI()
			if err != nil {
				return nil, fmt.Errorf("lwm2m.rpk %s: %w", r.Endpoint, err)
			}
			keys = append(keys, k)
		}
		c.VerifyRawKey = secure.TrustKeys(keys...)
	}
	if cert != nil && c.RootCAs == nil && c.VerifyRawKey == nil {
		// A certificate with nobody to trust: PSK only (the certificate
		// then serves no handshake, but the config stays valid).
		c.Certificate = nil
	}
	if c.Sessions, err = g.sessions(); err != nil {
		return nil, err
	}
	if transport == "sms" {
		c.Logger = g.log.With("component", "dtls-sms")
		c.MTU = smsHandshakeMTU
		c.SkipHelloVerify = true
		c.CIDLength = new(0)
		c.QuietClose = true
		c.FlightInterval = smsFlightInterval
		c.HandshakeTimeout = smsHandshakeTimeout
		c.IdleTimeout = g.cfg.SMS.DTLSIdle
		if c.IdleTimeout == 0 {
			c.IdleTimeout = defaultDTLSSMSIdle
		}
	}
	return c, nil
}

// smsServerBearer is the bearer of the LwM2M server's "sms" Endpoint: the
// SMS bearer under OSCORE (when contexts exist), joined with a DTLS server
// on the bearer's DTLS view when any device speaks DTLS over SMS.
func (g *Gateway) smsServerBearer() (bearer.Bearer, error) {
	plain, err := g.wrapOSCORE(g.smsRelayed(), "sms") // cluster: other nodes' SIMs by their streams
	if err != nil {
		return nil, err
	}
	if g.smsB.DTLS() == nil {
		return plain, nil
	}
	cfg, err := g.dtlsConfig("sms")
	if err != nil {
		return nil, err
	}
	srv, err := secure.NewServer(g.smsB.DTLS(), cfg)
	if err != nil {
		return nil, fmt.Errorf("dtls over sms: %w", err)
	}
	g.dtlsSMS = srv
	m, err := secure.NewMixed(plain, srv, g.smsDTLSPeer)
	if err != nil {
		srv.Close()
		return nil, err
	}
	if err := g.registerDTLSMetrics(); err != nil {
		m.Close()
		return nil, err
	}
	g.log.Info("DTLS over SMS", "idle", cfg.IdleTimeout, "resumption", cfg.Sessions != nil)
	return m, nil
}

// smsDTLSPeer reports whether an SMS peer is configured for DTLS.
func (g *Gateway) smsDTLSPeer(peer net.Addr) bool {
	mode, ok := g.smsB.PeerMode(peer)
	return ok && mode == sms.ModeDTLS
}

// smsPeerCheck is the policy's last rule for SMS devices: over SMS a
// device presents the identity its mode requires (DTLS: a PSK, raw key or
// certificate identity; OSCORE: its context), and a nosec device registers
// over SMS only where lwm2m.nosec allows its name. The SMS bearer already
// refuses datagrams in the wrong mode; this is the same rule where the
// registration is decided.
func (g *Gateway) smsPeerCheck(ep, transport string, peer net.Addr, id bearer.Identity) error {
	if peer == nil || peer.Network() != sms.Network {
		return nil
	}
	g.devMu.RLock()
	d, ok := g.devices[ep]
	g.devMu.RUnlock()
	if !ok {
		return nil // the policy's bindings decide for unconfigured names
	}
	mode := g.smsSecurity(d)
	switch mode {
	case config.SMSNoSec:
		if id.IsZero() && !g.cfg.LwM2M.NoSec.Allows(ep) {
			return fmt.Errorf("endpoint %q registers over SMS without security, which lwm2m.nosec does not allow", ep)
		}
		return nil
	default:
		if id.Mode != mode {
			got := id.Mode
			if got == "" {
				got = "none"
			}
			return fmt.Errorf("endpoint %q must use %s over SMS, not %s", ep, mode, got)
		}
		return nil
	}
}

// certBindings returns the lwm2m.rpk and lwm2m.x509 identities by
// endpoint name, for the binding table.
func (g *Gateway) certBindings() (map[string]bearer.Identity, error) {
	byEP := map[string]bearer.Identity{}
	for _, r := range g.cfg.LwM2M.RPK {
		k, err := r.SPKI()
		if err != nil {
			return nil, fmt.Errorf("lwm2m.rpk %s: %w", r.Endpoint, err)
		}
		byEP[r.Endpoint] = bearer.Identity{Mode: "rpk", PublicKey: k}
	}
	for _, x := range g.cfg.LwM2M.X509 {
		leaf, err := x.Leaf()
		if err != nil {
			return nil, fmt.Errorf("lwm2m.x509 %s: %w", x.Endpoint, err)
		}
		byEP[x.Endpoint] = bearer.Identity{Mode: "x509", Certificates: [][]byte{leaf}}
	}
	return byEP, nil
}

// dtlsSMSCollector exports the DTLS-over-SMS server's counters and the
// session cache's.
type dtlsSMSCollector struct{ g *Gateway }

var (
	dtlsSMSHandshakes = prometheus.NewDesc("smsgw_dtls_sms_handshakes_total",
		"DTLS-over-SMS handshakes by result: ok (resumed ones included), resumed (abbreviated, RFC 5246 §7.3), failed; "+
			"replaced: sessions ended by a new handshake from the same device.", []string{"result"}, nil)
	dtlsSMSSessions = prometheus.NewDesc("smsgw_dtls_sms_sessions", "DTLS-over-SMS sessions now (state: all, handshaking).", []string{"state"}, nil)
	dtlsSMSDropped  = prometheus.NewDesc("smsgw_dtls_sms_dropped_total", "DTLS-over-SMS datagrams and sessions dropped by reason.", []string{"reason"}, nil)
	dtlsCache       = prometheus.NewDesc("smsgw_dtls_session_cache_total", "The DTLS session cache shared by the UDP and SMS listeners: "+
		"lookups (hits, misses) and sessions stored, evicted (bound), expired (dtls_session_ttl).", []string{"what"}, nil)
	dtlsCacheEntries = prometheus.NewDesc("smsgw_dtls_session_cache_entries", "Sessions in the DTLS session cache.", nil, nil)
)

func (c *dtlsSMSCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- dtlsSMSHandshakes
	ch <- dtlsSMSSessions
	ch <- dtlsSMSDropped
	ch <- dtlsCache
	ch <- dtlsCacheEntries
}

func (c *dtlsSMSCollector) Collect(ch chan<- prometheus.Metric) {
	if s := c.g.dtlsSMS; s != nil {
		st := s.Stats()
		for k, v := range map[string]uint64{"ok": st.HandshakesOK, "resumed": st.Resumed, "failed": st.HandshakesFailed, "replaced": st.Replaced} {
			ch <- prometheus.MustNewConstMetric(dtlsSMSHandshakes, prometheus.CounterValue, float64(v), k)
		}
		ch <- prometheus.MustNewConstMetric(dtlsSMSSessions, prometheus.GaugeValue, float64(st.Sessions), "all")
		ch <- prometheus.MustNewConstMetric(dtlsSMSSessions, prometheus.GaugeValue, float64(st.Handshaking), "handshaking")
		for k, v := range map[string]uint64{"refused": st.Refused, "garbage": st.Garbage, "unknown_peer": st.UnknownPeer,
			"queue": st.QueueDrops, "expired": st.Expired, "evicted": st.Evicted} {
			ch <- prometheus.MustNewConstMetric(dtlsSMSDropped, prometheus.CounterValue, float64(v), k)
		}
	}
	if sc := c.g.dtlsSess; sc != nil {
		st := sc.Stats()
		ch <- prometheus.MustNewConstMetric(dtlsCacheEntries, prometheus.GaugeValue, float64(st.Entries))
		for k, v := range map[string]uint64{"hits": st.Hits, "misses": st.Misses, "stored": st.Stored, "evicted": st.Evicted, "expired": st.Expired} {
			ch <- prometheus.MustNewConstMetric(dtlsCache, prometheus.CounterValue, float64(v), k)
		}
	}
}

// registrationSecurity is the security mode a registration was made with
// (the part of its identity before ":"), "nosec" without one.
func registrationSecurity(r *registry.Registration) string {
	if mode, _, ok := strings.Cut(r.Identity, ":"); ok && mode != "" {
		return mode
	}
	return config.SMSNoSec
}
