package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
)

// lwm2mCollector exports, at scrape time, the LwM2M server's counters
// (smsgw_lwm2m_server_total{what}: registrations refused, lenient
// bindings, notifications, sends, ...), the size of its last-value table,
// and in proxy mode the relay's counters (smsgw_proxy_total{what}) and
// devices (smsgw_proxy_devices{state}), which were only in /api/v1/sms.
type lwm2mCollector struct {
	g                                   *Gateway
	server, lastEvicted, proxy, proxyDv *prometheus.Desc
}

func newLwM2MCollector(g *Gateway) *lwm2mCollector {
	return &lwm2mCollector{g: g,
		server: prometheus.NewDesc("smsgw_lwm2m_server_total",
			"LwM2M server counters: registered, updated, deregistered, expired, rejected, forbidden, notifications, sends, lenient_binding (1.1/1.2 b=UQS accepted), bad_payload, store_errors.", []string{"what"}, nil),
		lastEvicted: prometheus.NewDesc("smsgw_lwm2m_last_values_evicted_total",
			"Last known values (or whole devices) pushed out of the bounded last-value table.", nil, nil),
		proxy: prometheus.NewDesc("smsgw_proxy_total",
			"Proxy mode relay counters: up (device → external server), down, dup_dropped, refused, rewritten (Register/Update binding), binding_rewritten (/1/x/7, /3/x/16 payloads), deregistered and deregister_failed (upstream De-register at shutdown).", []string{"what"}, nil),
		proxyDv: prometheus.NewDesc("smsgw_proxy_devices",
			"Proxy mode devices: bridged (a UDP socket open), registered (at the external server).", []string{"state"}, nil),
	}
}

func (c *lwm2mCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.server
	ch <- c.lastEvicted
	ch <- c.proxy
	ch <- c.proxyDv
}

func (c *lwm2mCollector) Collect(ch chan<- prometheus.Metric) {
	if srv := c.g.srv; srv != nil {
		st := srv.Stats()
		for k, v := range map[string]uint64{
			"registered": st.Registered.Load(), "updated": st.Updated.Load(), "deregistered": st.Deregistered.Load(),
			"expired": st.Expired.Load(), "rejected": st.Rejected.Load(), "forbidden": st.Forbidden.Load(),
			"notifications": st.Notifications.Load(), "sends": st.Sends.Load(), "lenient_binding": st.LenientBinding.Load(),
			"bad_payload": st.BadPayloadResp.Load(), "store_errors": st.StoreErrors.Load(), "events_dropped": st.EventsDropped.Load(),
		} {
			ch <- prometheus.MustNewConstMetric(c.server, prometheus.CounterValue, float64(v), k)
		}
		ch <- prometheus.MustNewConstMetric(c.lastEvicted, prometheus.CounterValue, float64(srv.LastValuesEvicted()))
	}
	if p := c.g.proxy; p != nil {
		st := p.stats()
		for k, v := range map[string]uint64{
			"up": st.Up, "down": st.Down, "dup_dropped": st.DupDropped, "refused": st.Refused, "rewritten": st.Rewritten,
			"binding_rewritten": st.BindingRewritten, "deregistered": st.Deregistered, "deregister_failed": st.DeregisterFailed,
		} {
			ch <- prometheus.MustNewConstMetric(c.proxy, prometheus.CounterValue, float64(v), k)
		}
		ch <- prometheus.MustNewConstMetric(c.proxyDv, prometheus.GaugeValue, float64(st.Devices), "bridged")
		ch <- prometheus.MustNewConstMetric(c.proxyDv, prometheus.GaugeValue, float64(st.Registered), "registered")
	}
}
