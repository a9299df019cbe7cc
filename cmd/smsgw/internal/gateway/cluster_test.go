package gateway

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
	"github.com/m2mbearer/m2mbearer/redisstore/redistest"
)

// TestClusterAbuse: what other nodes put on this node's streams is
// checked like any input: an unreadable forwarded call is skipped, one
// past its deadline is not run, a relayed SMS with a bad number, no data
// or a deadline in the past is dropped, counted and acknowledged (never
// retried forever), and the node goes on serving good entries.
func TestClusterAbuse(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	const sim = "+491710000055"
	g := clusterGateway(t, srv, "gw-x", config.Fleet{Awake: time.Second}, []string{sim})
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	ctx := context.Background()
	xadd := func(stream string, v map[string]any) {
		t.Helper()
		if err := c.XAdd(ctx, &redis.XAddArgs{Stream: "ui:" + stream, Values: v}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	call := func(id, uri string, deadline time.Time) map[string]any {
		b, _ := json.Marshal(rpcCall{ID: id, From: "evil", Method: "GET", URI: uri, Deadline: deadline.UnixMilli()})
		return map[string]any{"m": b}
	}
	t.Run("forwarded calls", func(t *testing.T) {
		xadd("rpc:gw-x", map[string]any{"m": "{not json"})
		xadd("rpc:gw-x", map[string]any{"other": "field"})
		xadd("rpc:gw-x", call("late", "/api/v1/cluster", time.Now().Add(-time.Second)))
		xadd("rpc:gw-x", call("bad-uri", "http://[::1", time.Now().Add(10*time.Second)))
		xadd("rpc:gw-x", call("good", "/api/v1/cluster", time.Now().Add(10*time.Second)))
		res, err := c.BLPop(ctx, 10*time.Second, "ui:rpc:r:good").Result()
		if err != nil {
			t.Fatalf("the good call got no answer: %v", err)
		}
		var a rpcAnswer
		if err := json.Unmarshal([]byte(res[1]), &a); err != nil || a.Status != 200 || a.Node != "gw-x" {
			t.Fatalf("answer %+v %v", a, err)
		}
		if n, _ := c.Exists(ctx, "ui:rpc:r:late").Result(); n != 0 {
			t.Fatal("a call past its deadline was run")
		}
		if u, l := counterValue(g.cluster.met.rpcDrop.WithLabelValues("unreadable")), counterValue(g.cluster.met.rpcDrop.WithLabelValues("late")); u != 2 || l != 1 {
			t.Fatalf("dropped calls counted: unreadable %v late %v", u, l)
		}
		bad, err := c.BLPop(ctx, 5*time.Second, "ui:rpc:r:bad-uri").Result()
		if err != nil || !json.Valid([]byte(bad[1])) {
			t.Fatalf("bad URI: %v %v", bad, err)
		}
	})
	t.Run("relayed SMS", func(t *testing.T) {
		stream := "sms:sim:" + sim
		before := counterValue(g.cluster.met.relayed.WithLabelValues("dropped"))
		xadd(stream, map[string]any{"to": "not-a-number", "d": "x", "dl": 0})
		xadd(stream, map[string]any{"to": "+491720000001", "d": "", "dl": 0})
		xadd(stream, map[string]any{"to": "+491720000001", "d": "x", "dl": time.Now().Add(-time.Minute).UnixMilli()})
		xadd(stream, map[string]any{"garbage": "only"})
		waitUntil(t, 10*time.Second, "dropped and counted", func() bool {
			return counterValue(g.cluster.met.relayed.WithLabelValues("dropped")) >= before+4
		})
		waitUntil(t, 10*time.Second, "acknowledged", func() bool {
			p, err := c.XPending(ctx, "ui:"+stream, relayGroup).Result()
			return err == nil && p.Count == 0
		})
		if n, _ := c.XLen(ctx, "ui:"+stream).Result(); n != 0 {
			t.Fatalf("%d entries left in the SIM's stream", n)
		}
	})
}

func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
