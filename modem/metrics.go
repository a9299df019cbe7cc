package modem

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// PrometheusMetrics is a Metrics that exports to Prometheus. Register it
// with a prometheus.Registerer (it is a prometheus.Collector).
//
// Series: <ns>_modem_commands_total{modem,cmd,result},
// <ns>_modem_command_seconds{cmd}, <ns>_modem_received_total{modem,kind},
// <ns>_modem_events_total{modem,type}, <ns>_modem_queue_length{modem,queue}.
// The label modem is the MSISDN, so cardinality is bounded by the number of
// SIMs; cmd is the AT command name without arguments.
//
// The zero PrometheusMetrics records nothing and exports nothing: use
// NewPrometheusMetrics.
type PrometheusMetrics struct {
	commands *prometheus.CounterVec
	cmdTime  *prometheus.HistogramVec
	received *prometheus.CounterVec
	events   *prometheus.CounterVec
	queue    *prometheus.GaugeVec
}

// NewPrometheusMetrics returns collectors under the namespace ns.
func NewPrometheusMetrics(ns string) *PrometheusMetrics {
	return &PrometheusMetrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "modem_commands_total",
			Help: "AT commands by modem, command and result (ok, cms, cme, timeout, link, error)."}, []string{"modem", "cmd", "result"}),
		cmdTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "modem_command_seconds",
			Help:    "AT command duration.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64}}, []string{"cmd"}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "modem_received_total",
			Help: "Messages handed to the consumer, by kind."}, []string{"modem", "kind"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "modem_events_total",
			Help: "Modem events by type."}, []string{"modem", "type"}),
		queue: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "modem_queue_length",
			Help: "Length of bounded queues (inbox, urc, pool-inflight)."}, []string{"modem", "queue"}),
	}
}

// Describe implements prometheus.Collector.
func (p *PrometheusMetrics) Describe(ch chan<- *prometheus.Desc) {
	if p.queue == nil {
		return
	}
	p.commands.Describe(ch)
	p.cmdTime.Describe(ch)
	p.received.Describe(ch)
	p.events.Describe(ch)
	p.queue.Describe(ch)
}

// Collect implements prometheus.Collector.
func (p *PrometheusMetrics) Collect(ch chan<- prometheus.Metric) {
	if p.queue == nil {
		return
	}
	p.commands.Collect(ch)
	p.cmdTime.Collect(ch)
	p.received.Collect(ch)
	p.events.Collect(ch)
	p.queue.Collect(ch)
}

// Command implements Metrics.
func (p *PrometheusMetrics) Command(modem, cmd string, d time.Duration, err error) {
	if p.queue == nil {
		return
	}
	p.commands.WithLabelValues(modem, cmd, resultLabel(err)).Inc()
	p.cmdTime.WithLabelValues(cmd).Observe(d.Seconds())
}

// Received implements Metrics.
func (p *PrometheusMetrics) Received(modem string, kind Kind) {
	if p.queue == nil {
		return
	}
	p.received.WithLabelValues(modem, kind.String()).Inc()
}

// Event implements Metrics.
func (p *PrometheusMetrics) Event(modem string, t EventType) {
	if p.queue == nil {
		return
	}
	p.events.WithLabelValues(modem, t.String()).Inc()
}

// Queue implements Metrics.
func (p *PrometheusMetrics) Queue(modem, queue string, n int) {
	if p.queue == nil {
		return
	}
	p.queue.WithLabelValues(modem, queue).Set(float64(n))
}

func resultLabel(err error) string {
	var cms *CMSError
	var cme *CMEError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &cms):
		return "cms"
	case errors.As(err, &cme):
		return "cme"
	case errors.Is(err, ErrTimeout):
		return "timeout"
	case errors.Is(err, ErrLinkLost):
		return "link"
	}
	return "error"
}
