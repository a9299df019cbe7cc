package gateway

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/route"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smpp"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smpp/smsc"
	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
)

// routeStateFile is the route mux's TP-MR map, relative to the data dir.
const routeStateFile = "sms/route.db"

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
	states := map[string]*smpp.State{} // account -> the state its links share
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
			if c.TLS, err = lc.TLSOptions().Config(lc.Host); err != nil {
				return nil, fmt.Errorf("smpp link %s: %w", name, err)
			}
		}
		sl := smppLink{backup: lc.Backup}
		if lc.Account != "" {
			// One correlation state and TP-MR space for the links of an
			// account: a receipt may come on any of them.
			if states[lc.Account] == nil {
				st, err := g.openSMPPState(&sl, c.StateDir, "account-"+lc.Account)
				if err != nil {
					return nil, fmt.Errorf("smpp account %s: %w", lc.Account, err)
				}
				states[lc.Account] = st
			}
			c.State, sl.space = states[lc.Account], "smpp-account:"+lc.Account
		} else {
			// The link's own state, opened here (the same file Dial would
			// open) so that it is opened under the guard and snapshot for
			// backups like the other state files.
			if c.State, err = g.openSMPPState(&sl, c.StateDir, name); err != nil {
				return nil, fmt.Errorf("smpp link %s: %w", name, err)
			}
		}
		l, err := smpp.Dial(c)
		if err != nil {
			sl.ownState.Close()
			return nil, fmt.Errorf("smpp link %s: %w", name, err)
		}
		sl.l = l
		g.smppLinks = append(g.smppLinks, sl)
		for _, s := range l.Sources() {
			if a, err := sms.ParseMSISDN(s); err == nil {
				out = append(out, a.String())
			}
		}
	}
	return out, nil
}

type smppLink struct {
	l         *smpp.Link
	backup    bool
	space     string      // the route's TP-MR space: its account's, or "" (its own)
	ownState  *smpp.State // the state this entry closes: its own, or its account's (the first link of an account)
	stateFile string      // ownState's file, relative to the data dir
}

// openSMPPState opens the SMPP state file called name (smpp.StateFile) in
// dir under the state file guard, for sl to own and close.
func (g *Gateway) openSMPPState(sl *smppLink, dir, name string) (*smpp.State, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	path := smpp.StateFile(dir, name)
	rel, err := filepath.Rel(g.cfg.DataDir, path)
	if err != nil {
		return nil, err
	}
	rel = filepath.ToSlash(rel)
	var st *smpp.State
	err = guardOpen(g.cfg.DataDir, rel, func() (err error) {
		st, err = smpp.OpenState(path)
		return err
	})
	if err != nil {
		return nil, err
	}
	sl.ownState, sl.stateFile = st, rel
	return st, nil
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
				routes = append(routes, route.Route{Name: "smpp:" + sl.l.Name(), Transport: sl.l, Numbers: sl.l.Sources(), Ready: sl.l.Ready,
					Space: sl.space})
			}
		}
	}
	add(false)
	if g.link != nil && len(modemSIMs) > 0 {
		routes = append(routes, route.Route{Name: "modems", Transport: g.link, Numbers: modemSIMs})
	}
	add(true)
	// A number on two routes (an SMPP account and a SIM, or two links) has
	// two TP-MR spaces; the mux keeps them apart in this file (route/mr.go).
	dir := filepath.Join(g.cfg.DataDir, "sms")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var m *route.Mux
	err := guardOpen(g.cfg.DataDir, routeStateFile, func() (err error) {
		m, err = route.New(routes, route.WithStateFile(filepath.Join(g.cfg.DataDir, routeStateFile)), route.WithLogger(g.log.With("component", "route")))
		return err
	})
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
	for _, sl := range g.smppLinks {
		sl.ownState.Close() // after every link of its account
	}
	if g.simSMSC != nil {
		g.simSMSC.Close()
	}
}

// smppCollector exports the links' counters and the route mux's.
type smppCollector struct {
	links        []smppLink
	mux          *route.Mux // nil without one
	counter, gau *prometheus.Desc
	routes, mr   *prometheus.Desc
	mrMapped     *prometheus.Desc
}

func newSMPPCollector(links []smppLink, mux *route.Mux) *smppCollector {
	return &smppCollector{links: links, mux: mux,
		counter: prometheus.NewDesc("smsgw_smpp_total", "SMPP link counters (binds, submits, throttling, receipts, malformed PDUs).", []string{"link", "what"}, nil),
		gau:     prometheus.NewDesc("smsgw_smpp_state", "SMPP link state: bound and receiving (0/1), awaiting_receipt, payload_sets (incomplete, payload mode).", []string{"link", "what"}, nil),
		routes:  prometheus.NewDesc("smsgw_sms_route_total", "SMS routes (SMPP links, modems): sends, failures, failovers, receptions.", []string{"route", "what"}, nil),
		mr: prometheus.NewDesc("smsgw_sms_tpmr_total", "TP-MR translation for numbers with several routes (docs/smpp.md): assigned, translated, unmapped, dropped, reused, expired, held.",
			[]string{"what"}, nil),
		mrMapped: prometheus.NewDesc("smsgw_sms_tpmr_mapped", "Sends over numbers with several routes awaiting their status report.", nil, nil)}
}

func (c *smppCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.counter
	ch <- c.gau
	ch <- c.routes
	ch <- c.mr
	ch <- c.mrMapped
}

func (c *smppCollector) Collect(ch chan<- prometheus.Metric) {
	if c.mux != nil {
		for _, r := range c.mux.Stats() {
			for k, v := range map[string]uint64{"sent": r.Sent, "failed": r.Failed, "failed_over": r.FailedOver, "received": r.Received} {
				ch <- prometheus.MustNewConstMetric(c.routes, prometheus.CounterValue, float64(v), r.Name, k)
			}
		}
		st := c.mux.MRStats()
		for k, v := range map[string]uint64{"assigned": st.Assigned, "translated": st.Translated, "unmapped": st.Unmapped,
			"dropped": st.Dropped, "reused": st.Reused, "expired": st.Expired, "held": st.Held} {
			ch <- prometheus.MustNewConstMetric(c.mr, prometheus.CounterValue, float64(v), k)
		}
		ch <- prometheus.MustNewConstMetric(c.mrMapped, prometheus.GaugeValue, float64(st.Mapped))
	}
	for _, sl := range c.links {
		s := sl.l.Stats()
		n := sl.l.Name()
		for k, v := range map[string]uint64{
			"binds": s.Binds, "bind_failures": s.BindFailures, "link_drops": s.LinkDrops, "enquire_failures": s.EnquireFailures,
			"submitted": s.Submitted, "submit_errors": s.SubmitErrors, "throttled": s.Throttled, "timeouts": s.Timeouts,
			"refused": s.Refused, "received": s.Received, "receipts": s.Receipts, "receipts_intermediate": s.ReceiptsIntermediate,
			"receipts_unknown": s.ReceiptsUnknown, "receipts_unreadable": s.ReceiptsUnreadable, "malformed": s.Malformed,
			"late_responses": s.LateResponses, "inbound_rejected": s.InboundRejected,
			"receipts_held": s.ReceiptsHeld, "receipts_hold_full": s.ReceiptsHoldFull, "outbind_refused": s.OutbindRefused,
			"payload_sets_expired": s.SetsExpired, "payload_sets_evicted": s.SetsEvicted, "correlations_expired": s.CorrelationsExpired,
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
		ch <- prometheus.MustNewConstMetric(c.gau, prometheus.GaugeValue, float64(s.PayloadSets), n, "payload_sets")
	}
}
