package gateway

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/m2mbearer/m2mbearer/modem"
	"github.com/m2mbearer/m2mbearer/modem/quarantine"
)

// openQuarantine opens the quarantine of received SMS that cannot be
// delivered (data_dir/quarantine.db): the modems put there what they
// cannot read before deleting it from the SIM, the SMS link what the SMS
// bearer cannot decode before acknowledging it.
func (g *Gateway) openQuarantine() error {
	var q *quarantine.Store
	err := guardOpen(g.cfg.DataDir, "quarantine.db", func() (err error) {
		q, err = quarantine.Open(filepath.Join(g.cfg.DataDir, "quarantine.db"), quarantine.Options{})
		return err
	})
	if err != nil {
		return err
	}
	g.quar = q
	return g.metrics.reg.Register(quarantineCollector{q})
}

// listQuarantine serves GET /api/v1/sms/quarantine?after=ID&limit=N.
func (g *Gateway) listQuarantine(w http.ResponseWriter, r *http.Request) {
	if g.quar == nil {
		writeJSON(w, 200, map[string]any{"entries": []modem.Quarantined{}, "enabled": false})
		return
	}
	after, err := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
	if r.URL.Query().Get("after") == "" {
		after, err = 0, nil
	}
	if err != nil {
		writeError(w, 400, fmt.Sprintf("after: %v", err))
		return
	}
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 1000 {
			writeError(w, 400, "limit must be 1..1000")
			return
		}
	}
	entries, err := g.quar.List(after, limit)
	if err != nil {
		writeError(w, 500, err.Error())
		return
	}
	if entries == nil {
		entries = []modem.Quarantined{}
	}
	st := g.quar.Stats()
	writeJSON(w, 200, map[string]any{"enabled": true, "entries": entries,
		"stats": map[string]any{"entries": st.Entries, "max": st.Max, "put": st.Put, "rejected": st.Rejected}})
}

// deleteQuarantine serves DELETE /api/v1/sms/quarantine/{id}: an operator
// has dealt with the entry.
func (g *Gateway) deleteQuarantine(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		writeError(w, 400, "bad id")
		return
	}
	if g.quar == nil {
		writeError(w, 404, "no such entry")
		return
	}
	ok, err := g.quar.Delete(id)
	switch {
	case err != nil:
		writeError(w, 500, err.Error())
	case !ok:
		writeError(w, 404, "no such entry")
	default:
		writeJSON(w, 200, map[string]any{"deleted": id})
	}
}

// quarantineCollector exports smsgw_sms_quarantine{what}: entries now and
// the bound (gauges), entries stored and Puts refused because it was full
// (counters since start).
type quarantineCollector struct{ q *quarantine.Store }

var quarantineDesc = prometheus.NewDesc("smsgw_sms_quarantine",
	"Quarantine of received SMS that could not be delivered: entries, max, put (since start), rejected (full, since start).",
	[]string{"what"}, nil)

func (c quarantineCollector) Describe(ch chan<- *prometheus.Desc) { ch <- quarantineDesc }

func (c quarantineCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.q.Stats()
	ch <- prometheus.MustNewConstMetric(quarantineDesc, prometheus.GaugeValue, float64(st.Entries), "entries")
	ch <- prometheus.MustNewConstMetric(quarantineDesc, prometheus.GaugeValue, float64(st.Max), "max")
	ch <- prometheus.MustNewConstMetric(quarantineDesc, prometheus.GaugeValue, float64(st.Put), "put")
	ch <- prometheus.MustNewConstMetric(quarantineDesc, prometheus.GaugeValue, float64(st.Rejected), "rejected")
}
