package modem

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestPrometheusMetrics(t *testing.T) {
	pm := NewPrometheusMetrics("m2m")
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(pm); err != nil {
		t.Fatal(err)
	}
	f := newFake()
	f.storeMsg(testSMSC+testDeliver, testDeliverLen, false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := Open(ctx, Config{MSISDN: "+1555", HealthInterval: -1}, WithProfile(testProfile()), WithLogger(quietLog()),
		WithMetrics(pm), WithDialer(func(context.Context) (io.ReadWriteCloser, error) { return newFakePair(f), nil }))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	r := recvOne(t, m, 10*time.Second)
	_ = r.Ack(ctx)
	f.mu.Lock()
	f.cmgsErr = []string{"+CMS ERROR: 500"}
	f.mu.Unlock()
	_, _ = m.SendPDU(ctx, []byte{1, 0, 0, 0, 0, 4, 0})
	if n := counterValue(t, pm.received.WithLabelValues("+1555", "deliver")); n != 1 {
		t.Fatalf("received = %v", n)
	}
	if n := counterValue(t, pm.commands.WithLabelValues("+1555", "+CMGS", "cms")); n != 1 {
		t.Fatalf("+CMGS cms = %v", n)
	}
	if n := counterValue(t, pm.events.WithLabelValues("+1555", "connected")); n != 1 {
		t.Fatalf("connected = %v", n)
	}
	mfs, err := reg.Gather()
	if err != nil || len(mfs) < 4 {
		t.Fatalf("gather: %d families, %v", len(mfs), err)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
