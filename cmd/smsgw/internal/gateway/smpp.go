package gateway

import (
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/route"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smpp"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smpp/smsc"
	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
)

// Credentials of the simulated SMSC's account (simulator.smpp).
const simSystemID, simPassword = "smsgw", "sim"

// startSimSMSC starts the simulated SMSC on the simulated network, its
// account owning the server SIMs' numbers, and returns the link to it.
func (g *Gateway) startSimSMSC() (config.SMPPLink, error) {
	s := g.cfg.Simulator
	srv, err := smsc.Start(smsc.Config{Network: g.simNet, Logger: g.log.With("component", "simsmsc"),
		Accounts: []smsc.Account{{SystemID: simSystemID, Password: simPassword, Numbers: sims(s.ServerSIMs)}}})
	if err != nil {
		return config.SMPPLink{}, fmt.Errorf("simulated SMSC: %w", err)
	}
	g.simSMSC = srv
	host, port, _ := net.SplitHostPort(srv.Addr())
	p, _ := strconv.Atoi(port)
	return config.SMPPLink{Name: "simulator", Host: host, Port: p, SystemID: simSystemID, Password: simPassword,
		Sources: sims(s.ServerSIMs), Rate: s.SMPPRate, Window: 10}, nil
}

// startSMPP dials the configured SMPP links (and the simulated one) and
// returns the E.164 numbers they send from.
func (g *Gateway) startSMPP(extra []config.SMPPLink) ([]string, error) {
	var out []string
	for _, lc := range append(append([]config.SMPPLink(nil), g.cfg.SMPP...), extra...) {
		name := lc.Name
		if name == "" {
			name = net.JoinHostPort(lc.Host, strconv.Itoa(lc.Port))
		}
		concat, err := smpp.ParseConcat(lc.Concat)
		if err != nil {
			return nil, err
		}
		c := smpp.Config{Name: name, Addr: net.JoinHostPort(lc.Host, strconv.Itoa(lc.Port)),
			SystemID: lc.SystemID, Password: lc.Password, SystemType: lc.SystemType, Sources: lc.Sources,
			Window: lc.Window, Rate: lc.Rate, Burst: 1, Concat: concat, EnquireLink: lc.EnquireLink,
			StateDir: filepath.Join(g.cfg.DataDir, "sms"), Logger: g.log.With("component", "smpp")}
		if lc.Bind == "transmitter-receiver" {
			c.Bind = smpp.TransmitterReceiver
		}
		if lc.TLS {
			sn := lc.TLSServerName
			if sn == "" {
				sn = lc.Host
			}
			c.TLS = &tls.Config{ServerName: sn, MinVersion: tls.VersionTLS12}
		}
		l, err := smpp.Dial(c)
		if err != nil {
			return nil, fmt.Errorf("smpp link %s: %w", name, err)
		}
		g.smppLinks = append(g.smppLinks, smppLink{l: l, backup: lc.Backup})
		for _, s := range l.Sources() {
			if a, err := sms.ParseMSISDN(s); err == nil {
				out = append(out, a.String())
			}
		}
	}
	return out, nil
}

type smppLink struct {
	l      *smpp.Link
	backup bool
}

// transport is the SMS bearer's transport: the modem pool alone, or a
// route.Mux over the SMPP links and the pool (SMPP first unless a link is
// a backup).
func (g *Gateway) transport(modemSIMs []string) (sms.Transport, error) {
	if len(g.smppLinks) == 0 {
		return g.link, nil
	}
	var routes []route.Route
	add := func(backup bool) {
		for _, sl := range g.smppLinks {
			if sl.backup == backup {
				routes = append(routes, route.Route{Name: "smpp:" + sl.l.Name(), Transport: sl.l, Numbers: sl.l.Sources(), Ready: sl.l.Ready})
			}
		}
	}
	add(false)
	if g.link != nil && len(modemSIMs) > 0 {
		routes = append(routes, route.Route{Name: "modems", Transport: g.link, Numbers: modemSIMs})
	}
	add(true)
	m, err := route.New(routes, 0)
	if err != nil {
		return nil, err
	}
	g.mux = m
	return m, nil
}

func (g *Gateway) closeSMPP() {
	if g.mux != nil {
		g.mux.Close()
	}
	for _, sl := range g.smppLinks {
		sl.l.Close()
	}
	if g.simSMSC != nil {
		g.simSMSC.Close()
	}
}

// smppCollector exports the links' counters.
type smppCollector struct {
	links        []smppLink
	counter, gau *prometheus.Desc
}

func newSMPPCollector(links []smppLink) *smppCollector {
	return &smppCollector{links: links,
		counter: prometheus.NewDesc("smsgw_smpp_total", "SMPP link counters (binds, submits, throttling, receipts, malformed PDUs).", []string{"link", "what"}, nil),
		gau:     prometheus.NewDesc("smsgw_smpp_state", "SMPP link state: bound and receiving (0/1), awaiting_receipt.", []string{"link", "what"}, nil)}
}

func (c *smppCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.counter; ch <- c.gau }

func (c *smppCollector) Collect(ch chan<- prometheus.Metric) {
	for _, sl := range c.links {
		s := sl.l.Stats()
		n := sl.l.Name()
		for k, v := range map[string]uint64{
			"binds": s.Binds, "bind_failures": s.BindFailures, "link_drops": s.LinkDrops, "enquire_failures": s.EnquireFailures,
			"submitted": s.Submitted, "submit_errors": s.SubmitErrors, "throttled": s.Throttled, "timeouts": s.Timeouts,
			"refused": s.Refused, "received": s.Received, "receipts": s.Receipts, "receipts_intermediate": s.ReceiptsIntermediate,
			"receipts_unknown": s.ReceiptsUnknown, "receipts_unreadable": s.ReceiptsUnreadable, "malformed": s.Malformed,
			"late_responses": s.LateResponses, "inbound_rejected": s.InboundRejected,
		} {
			ch <- prometheus.MustNewConstMetric(c.counter, prometheus.CounterValue, float64(v), n, k)
		}
		bound := 0.0
		if s.Bound {
			bound = 1
		}
		ch <- prometheus.MustNewConstMetric(c.gau, prometheus.GaugeValue, bound, n, "bound")
		receiving := 0.0
		if s.Receiving {
			receiving = 1
		}
		ch <- prometheus.MustNewConstMetric(c.gau, prometheus.GaugeValue, receiving, n, "receiving")
		ch <- prometheus.MustNewConstMetric(c.gau, prometheus.GaugeValue, float64(s.AwaitingReceipt), n, "awaiting_receipt")
	}
}
