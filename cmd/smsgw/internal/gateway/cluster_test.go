package gateway

import (
	"context"
	"encoding/json"
	"slices"
	"sync/atomic"
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

// TestClusterCallBetweenIdleReads: a call forwarded to a node that has
// been idle for a while, landing between two of serveRPC's XREADs, is
// served. serveRPC read from "$" until its first call (before 38935e8),
// so each idle XREAD (BLOCK 200 ms, nothing) was followed by another from
// "$", and a call added in the gap between the two was never read: its
// caller waited until its deadline. That was TestClusterRouting's failure
// under load in cmd/smsgw ("forwarded read: 504 ... node gw-b holds device
// u-1 and did not answer within 40s": the first call ever forwarded to
// gw-b, the read of u-1). Here a go-redis hook on the node's own client
// adds the call just before serveRPC's third XREAD is sent, after two
// idle ones: the gap made certain. Without the fix: "no answer".
func TestClusterCallBetweenIdleReads(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	g := clusterGateway(t, srv, "gw-i", config.Fleet{Awake: time.Second}, []string{"+491710000056"})
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	ctx := context.Background()
	stream := g.cluster.db.Key("rpc", "gw-i")
	b, _ := json.Marshal(rpcCall{ID: "gap", From: "gw-o", Method: "GET", URI: "/api/v1/cluster", Deadline: time.Now().Add(30 * time.Second).UnixMilli()})
	var reads atomic.Int32
	added := make(chan error, 1)
	g.cluster.db.Client().AddHook(xreadHook{stream: stream, before: func() {
		if reads.Add(1) == 3 {
			added <- c.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: map[string]any{"m": b}}).Err()
		}
	}})
	select {
	case err := <-added:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serveRPC did not read its stream three times in 30 s")
	}
	res, err := c.BLPop(ctx, 10*time.Second, g.cluster.db.Key("rpc:r", "gap")).Result()
	if err != nil {
		t.Fatalf("a call added between two idle reads got no answer: %v", err)
	}
	var a rpcAnswer
	if err := json.Unmarshal([]byte(res[1]), &a); err != nil || a.Status != 200 || a.Node != "gw-i" {
		t.Fatalf("answer %+v %v", a, err)
	}
}

// xreadHook calls before just before each XREAD of stream is sent.
type xreadHook struct {
	stream string
	before func()
}

func (xreadHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (xreadHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h xreadHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "xread" && slices.Contains(cmd.Args(), any(h.stream)) {
			h.before()
		}
		return next(ctx, cmd)
	}
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
