package gateway

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/secure"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
	"github.com/m2mbearer/m2mbearer/modem"
)

// Metrics are the daemon's Prometheus series. Every label has a bounded set
// of values: modem (the SIM's MSISDN, one per configured modem), transport
// (udp, sms), fixed event and operation names, and the HTTP route pattern.
type Metrics struct {
	reg *prometheus.Registry

	Modem         *modem.PrometheusMetrics
	endpointEv    *prometheus.CounterVec
	endpointGauge *prometheus.GaugeVec
	queueEv       *prometheus.CounterVec
	queueGauge    *prometheus.GaugeVec
	registrations *prometheus.CounterVec
	wakeups       prometheus.Counter
	apiLatency    *prometheus.HistogramVec
	opLatency     *prometheus.HistogramVec

	fwStore   *prometheus.GaugeVec
	fwServed  *prometheus.CounterVec
	fwDevices *prometheus.CounterVec
	fwSMS     prometheus.Counter
	campaigns *campaignCollector

	budgetAlerts *prometheus.CounterVec
	loopRefused  *prometheus.CounterVec
	wakeLatency  prometheus.Histogram
}

func newMetrics() *Metrics {
	m := &Metrics{
		reg:   prometheus.NewRegistry(),
		Modem: modem.NewPrometheusMetrics("smsgw"),
		endpointEv: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "smsgw_coap_events_total",
			Help: "CoAP message layer events by transport (received, sent, retransmitted, duplicates, drops ...)."},
			[]string{"transport", "event"}),
		endpointGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "smsgw_coap_state",
			Help: "CoAP message layer bounded structures by transport (exchanges, dedup cache, observations ...)."},
			[]string{"transport", "gauge"}),
		queueEv: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "smsgw_queue_events_total",
			Help: "Queue-mode request events (queued, sent, done, failed, expired, wakeups, ...)."}, []string{"event"}),
		queueGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "smsgw_queue",
			Help: "Queue-mode sizes: depth (live requests), bytes, devices, results."}, []string{"gauge"}),
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "smsgw_registration_events_total",
			Help: "LwM2M registration interface events (registered, updated, deregistered, expired)."}, []string{"event"}),
		budgetAlerts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "smsgw_sms_budget_alerts_total",
			Help: "Daily SMS budget alerts: a budget crossed sms.budget_warn (exhausted=false) or refused a send (exhausted=true), by scope (device, deployment)."},
			[]string{"scope", "exhausted"}),
		loopRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "smsgw_sms_loop_refused_total",
			Help: "SMS refused as a loop of identical datagrams to (sent) or from (received) one device."}, []string{"direction"}),
		wakeups: prometheus.NewCounter(prometheus.CounterOpts{Name: "smsgw_sms_wakeups_total",
			Help: "SMS wake-up triggers handed to the SMS bearer."}),
		apiLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "smsgw_api_request_seconds",
			Help: "HTTP API latency by route and status class.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)},
			[]string{"route", "code"}),
		opLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "smsgw_lwm2m_operation_seconds",
			Help: "LwM2M device management operations by kind and outcome (ok, error, queued).", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)},
			[]string{"op", "outcome"}),
		fwStore: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "smsgw_firmware_store",
			Help: "Firmware image store: images and bytes."}, []string{"gauge"}),
		fwServed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "smsgw_firmware_served_bytes_total",
			Help: "Bytes served by the Package URI servers, by server (coap+udp, coap+dtls, http)."}, []string{"server"}),
		fwDevices: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "smsgw_firmware_devices_total",
			Help: "Firmware updates finished, by outcome (done, failed, skipped, cancelled), campaigns and single updates."}, []string{"outcome"}),
		fwSMS: prometheus.NewCounter(prometheus.CounterOpts{Name: "smsgw_firmware_campaign_sms_total",
			Help: "SMS segments used by campaign devices (estimated per device from its plan)."}),
		campaigns: &campaignCollector{desc: prometheus.NewDesc("smsgw_firmware_campaigns",
			"Firmware campaigns by state (running, paused, cancelled, done).", []string{"state"}, nil)},
	}
	m.reg.MustRegister(m.fwStore, m.fwServed, m.fwDevices, m.fwSMS, m.campaigns)
	m.wakeLatency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "smsgw_wakeup_latency_seconds",
		Help: "Queue-mode wake-ups: seconds from the first SMS trigger to the device showing up.", Buckets: wakeBuckets})
	m.reg.MustRegister(m.wakeLatency)
	m.reg.MustRegister(m.Modem, m.endpointEv, m.endpointGauge, m.queueEv, m.queueGauge, m.registrations,
		m.wakeups, m.apiLatency, m.opLatency, m.budgetAlerts, m.loopRefused,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// endpointMetrics adapts bearer.Metrics for one transport.
type endpointMetrics struct {
	m         *Metrics
	transport string
}

func (e endpointMetrics) Count(ev bearer.Event, n int) {
	e.m.endpointEv.WithLabelValues(e.transport, ev.String()).Add(float64(n))
}

func (e endpointMetrics) Set(g bearer.Gauge, v int) {
	e.m.endpointGauge.WithLabelValues(e.transport, g.String()).Set(float64(v))
}

// queueMetrics adapts queue.Metrics.
type queueMetrics struct{ m *Metrics }

func (q queueMetrics) Add(name string, d float64) {
	q.m.queueEv.WithLabelValues(name).Add(d)
	if name == "wakeups" {
		q.m.wakeups.Add(d)
	}
}

func (q queueMetrics) Set(name string, v float64) { q.m.queueGauge.WithLabelValues(name).Set(v) }

// smsCollector exports the SMS bearer's counters (sent, received, segments,
// failures, reassembly, outbox) and the pool members' per-modem counters at
// scrape time.
type smsCollector struct {
	b    *sms.Bearer
	pool *modem.Pool
	mods func() []*modem.Modem

	counter, gauge, modemCounter, modemGauge *prometheus.Desc
}

func newSMSCollector(b *sms.Bearer, pool *modem.Pool, mods func() []*modem.Modem) *smsCollector {
	return &smsCollector{b: b, pool: pool, mods: mods,
		counter:      prometheus.NewDesc("smsgw_sms_total", "SMS bearer counters (datagrams, segments, drops, failures, reassembly).", []string{"what"}, nil),
		gauge:        prometheus.NewDesc("smsgw_sms_state", "SMS bearer sizes (outbox entries/bytes/pending, reassembly sets, peers).", []string{"what"}, nil),
		modemCounter: prometheus.NewDesc("smsgw_modem_sms_total", "SMS per modem: sent, send_errors, received, status_reports, reconnects.", []string{"modem", "what"}, nil),
		modemGauge:   prometheus.NewDesc("smsgw_modem_state", "Modem state: ready (0/1), in_flight, signal_rssi.", []string{"modem", "what"}, nil),
	}
}

func (c *smsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.counter
	ch <- c.gauge
	ch <- c.modemCounter
	ch <- c.modemGauge
}

func (c *smsCollector) Collect(ch chan<- prometheus.Metric) {
	if c.b != nil {
		s := c.b.Stats()
		for k, v := range map[string]uint64{
			"datagrams_sent": s.DatagramsSent, "segments_queued": s.SegmentsQueued,
			"datagrams_received": s.DatagramsReceived, "segments_received": s.SegmentsReceived,
			"status_reports": s.StatusReports, "delivered": s.Delivered,
			"dropped_unknown_peer": s.DroppedUnknownPeer, "dropped_undecodable": s.DroppedUndecodable,
			"dropped_not_binary": s.DroppedNotBinary, "dropped_security": s.DroppedSecurity,
			"dropped_bad_framing": s.DroppedBadFraming, "reassembly_dropped": s.ReassemblyDropped,
			"budget_rejected": s.BudgetRejected, "rate_rejected": s.RateRejected,
			"send_failures": s.SendFailures, "send_expired": s.SendExpired, "wap_push_received": s.WAPPushReceived,
			"reassembly_expired": s.Reassembly.Expired, "reassembly_completed": s.Reassembly.Completed,
			"reassembly_duplicates": s.Reassembly.Duplicates, "reassembly_evicted": s.Reassembly.Evicted,
		} {
			ch <- prometheus.MustNewConstMetric(c.counter, prometheus.CounterValue, float64(v), k)
		}
		for k, v := range map[string]int{
			"outbox_entries": s.Outbox.Entries, "outbox_bytes": s.Outbox.Bytes, "outbox_pending": s.Outbox.Pending,
			"outbox_awaiting_report": s.Outbox.AwaitingReport, "reassembly_sets": s.Reassembly.PendingSets,
			"reassembly_bytes": s.Reassembly.BytesHeld, "peers": s.Peers, "pending_read": s.PendingRead,
		} {
			ch <- prometheus.MustNewConstMetric(c.gauge, prometheus.GaugeValue, float64(v), k)
		}
	}
	if c.pool != nil {
		for _, st := range c.pool.Status() {
			ready := 0.0
			if st.Ready {
				ready = 1
			}
			ch <- prometheus.MustNewConstMetric(c.modemGauge, prometheus.GaugeValue, ready, st.MSISDN, "ready")
			ch <- prometheus.MustNewConstMetric(c.modemGauge, prometheus.GaugeValue, float64(st.InFlight), st.MSISDN, "in_flight")
		}
	}
	for _, m := range c.mods() {
		s := m.Stats()
		for k, v := range map[string]uint64{"sent": s.Sent, "send_errors": s.SendErrors, "received": s.Received,
			"status_reports": s.StatusReports, "reconnects": s.Reconnects, "bad_input": s.BadInput} {
			ch <- prometheus.MustNewConstMetric(c.modemCounter, prometheus.CounterValue, float64(v), m.MSISDN(), k)
		}
		ch <- prometheus.MustNewConstMetric(c.modemGauge, prometheus.GaugeValue, float64(m.LastHealth().Signal.RSSI), m.MSISDN(), "signal_rssi")
	}
}

func since(t time.Time) float64 { return time.Since(t).Seconds() }

// dtlsCollector exports the DTLS server's handshake and session counters.
type dtlsCollector struct {
	s                           *secure.Server
	handshakes, sessions, drops *prometheus.Desc
}

func newDTLSCollector(s *secure.Server) *dtlsCollector {
	return &dtlsCollector{s: s,
		handshakes: prometheus.NewDesc("smsgw_dtls_handshakes_total", "DTLS handshakes by result (ok, failed).", []string{"result"}, nil),
		sessions:   prometheus.NewDesc("smsgw_dtls_sessions", "DTLS sessions now (state: all, handshaking).", []string{"state"}, nil),
		drops:      prometheus.NewDesc("smsgw_dtls_dropped_total", "DTLS datagrams and sessions dropped by reason.", []string{"reason"}, nil),
	}
}

func (c *dtlsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.handshakes
	ch <- c.sessions
	ch <- c.drops
}

func (c *dtlsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s.Stats()
	ch <- prometheus.MustNewConstMetric(c.handshakes, prometheus.CounterValue, float64(s.HandshakesOK), "ok")
	ch <- prometheus.MustNewConstMetric(c.handshakes, prometheus.CounterValue, float64(s.HandshakesFailed), "failed")
	ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, float64(s.Sessions), "all")
	ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, float64(s.Handshaking), "handshaking")
	for k, v := range map[string]uint64{"refused": s.Refused, "garbage": s.Garbage, "unknown_peer": s.UnknownPeer,
		"queue": s.QueueDrops, "expired": s.Expired, "evicted": s.Evicted} {
		ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(v), k)
	}
}

// campaignCollector reports campaigns by state from the campaign Manager.
type campaignCollector struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	list func() []firmware.Report
}

func (m *Metrics) setCampaignSource(list func() []firmware.Report) {
	m.campaigns.mu.Lock()
	m.campaigns.list = list
	m.campaigns.mu.Unlock()
}

func (c *campaignCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *campaignCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	list := c.list
	c.mu.Unlock()
	counts := map[string]int{firmware.CampaignRunning: 0, firmware.CampaignPaused: 0,
		firmware.CampaignCancelled: 0, firmware.CampaignDone: 0}
	if list != nil {
		for _, r := range list() {
			counts[r.Status]++
		}
	}
	for st, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), st)
	}
}
