package gateway

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/smswake"
)

// smsWaker returns the SMS trigger sender: through the server's SMS
// Endpoint when there is one, so that the answer of a device that ignores
// the trigger's No-Response option is matched and dropped, never reset.
func (g *Gateway) smsWaker() *smswake.Waker {
	w := smswake.New(g.smsB, nil) // peers come from the device table only
	if g.smsEP != nil {
		w.Endpoint = g.smsEP
	}
	return w
}

// onBudget turns the SMS bearer's budget alerts into an event and a
// metric (labels: scope and whether the budget is exhausted; the device
// is in the event, not in a label).
func (g *Gateway) onBudget(a sms.BudgetAlert) {
	g.metrics.budgetAlerts.WithLabelValues(a.Scope, boolLabel(a.Exhausted)).Inc()
	ev := map[string]any{"scope": a.Scope, "number": a.Peer, "used": a.Used, "limit": a.Limit, "exhausted": a.Exhausted}
	if ep, ok := g.endpointOfNumber(a.Peer); ok && a.Scope == "device" {
		ev["endpoint"] = ep
	}
	g.hub.publish("sms-budget", ev)
}

// onLoop reports a loop of identical SMS the bearer refused.
func (g *Gateway) onLoop(a sms.LoopAlert) {
	dir := "sent"
	if a.Received {
		dir = "received"
	}
	g.metrics.loopRefused.WithLabelValues(dir).Inc()
	// One event when the loop is caught and then one per further window's
	// worth, not one per refused SMS.
	if a.Count != g.cfg.SMS.LoopMax+1 && a.Count%max(g.cfg.SMS.LoopMax, 1) != 0 {
		return
	}
	ev := map[string]any{"number": a.Peer, "direction": dir, "count": a.Count, "window": a.Window.String()}
	if ep, ok := g.endpointOfNumber(a.Peer); ok {
		ev["endpoint"] = ep
	}
	g.hub.publish("sms-loop", ev)
}

func boolLabel(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// endpointOfNumber finds the configured endpoint of an SMS number.
func (g *Gateway) endpointOfNumber(number string) (string, bool) {
	g.devMu.RLock()
	defer g.devMu.RUnlock()
	for ep, d := range g.devices {
		if a, err := sms.ParseMSISDN(d.MSISDN); err == nil && a.String() == number {
			return ep, true
		}
	}
	return "", false
}

// smsNumberOf returns the SMS number of a device: configured, registered
// (sms=) or the address it registered from over SMS.
func (g *Gateway) smsNumberOf(r *registry.Registration) string {
	g.devMu.RLock()
	d, ok := g.devices[r.Endpoint]
	g.devMu.RUnlock()
	n := r.SMS
	if ok && d.MSISDN != "" {
		n = d.MSISDN
	}
	if n == "" && r.Transport() == "sms" && r.PeerAddr() != nil {
		n = r.PeerAddr().String()
	}
	if a, err := sms.ParseMSISDN(n); err == nil {
		return a.String()
	}
	return ""
}

// SMSCount is one purpose's SMS traffic.
type SMSCount struct {
	Datagrams uint64 `json:"datagrams"`
	Segments  uint64 `json:"segments"`
	Bytes     uint64 `json:"bytes"`
}

// SMSUsage is a device's SMS accounting since the gateway started, by
// direction and purpose (trigger, request, response, block, handshake,
// empty, secured), with the segments spent today against its budget.
type SMSUsage struct {
	Number       string              `json:"number"`
	Sent         map[string]SMSCount `json:"sent"`
	Received     map[string]SMSCount `json:"received"`
	SentTotal    SMSCount            `json:"sent_total"`
	RecvTotal    SMSCount            `json:"received_total"`
	BudgetToday  int                 `json:"budget_used_today"`
	BudgetPerDay int                 `json:"budget_per_day"`
}

func toSMSUsage(u sms.Usage) SMSUsage {
	conv := func(c [bearer.NumPurposes]sms.Count) map[string]SMSCount {
		m := map[string]SMSCount{}
		for p := range bearer.NumPurposes {
			if c[p] != (sms.Count{}) {
				m[p.String()] = SMSCount(c[p])
			}
		}
		return m
	}
	return SMSUsage{Number: u.Peer, Sent: conv(u.Sent), Received: conv(u.Received),
		SentTotal: SMSCount(sms.Total(u.Sent)), RecvTotal: SMSCount(sms.Total(u.Received))}
}

// smsUsageOf returns the device's SMS accounting, or nil when it has no
// SMS number or the gateway no SMS bearer.
func (g *Gateway) smsUsageOf(r *registry.Registration) *SMSUsage {
	n := g.smsNumberOf(r)
	if n == "" || g.smsB == nil {
		return nil
	}
	u, _ := g.smsB.Usage(n)
	su := toSMSUsage(u)
	su.Number = n
	su.BudgetToday, _ = g.smsB.BudgetUsed(n)
	su.BudgetPerDay = g.cfg.SMS.DailyBudgetPerDevice
	return &su
}

// getDeviceSMS serves GET /api/v1/devices/{ep}/sms.
func (g *Gateway) getDeviceSMS(w http.ResponseWriter, r *http.Request) {
	reg, ok := g.lookup(w, r.PathValue("ep"))
	if !ok {
		return
	}
	u := g.smsUsageOf(reg)
	if u == nil {
		writeError(w, http.StatusNotFound, "device has no SMS number")
		return
	}
	writeJSON(w, http.StatusOK, u)
}

// smsPurposeCollector exports the SMS accounting by direction and purpose
// (bounded labels; per device it is in the API).
type smsPurposeCollector struct {
	b    func() *sms.Bearer
	desc *prometheus.Desc
}

func newSMSPurposeCollector(b func() *sms.Bearer) *smsPurposeCollector {
	return &smsPurposeCollector{b: b, desc: prometheus.NewDesc("smsgw_sms_purpose_total",
		"SMS traffic by direction (sent, received), purpose (trigger, request, response, block, handshake, empty, secured) and unit (datagrams, segments, bytes).",
		[]string{"direction", "purpose", "unit"}, nil)}
}

func (c *smsPurposeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *smsPurposeCollector) Collect(ch chan<- prometheus.Metric) {
	b := c.b()
	if b == nil {
		return
	}
	u := b.TotalUsage()
	for dir, counts := range map[string][bearer.NumPurposes]sms.Count{"sent": u.Sent, "received": u.Received} {
		for p := range bearer.NumPurposes {
			x := counts[p]
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(x.Datagrams), dir, p.String(), "datagrams")
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(x.Segments), dir, p.String(), "segments")
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(x.Bytes), dir, p.String(), "bytes")
		}
	}
}

// smsBudget is a configured daily budget as sms.Config takes it: -1 is
// unlimited (nil), 0 no SMS at all, n n segments (it used to pass 0 on,
// which the bearer read as unlimited).
func smsBudget(n int) *int {
	if n < 0 {
		return nil
	}
	return new(n)
}
