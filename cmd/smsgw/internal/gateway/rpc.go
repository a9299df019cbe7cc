package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/m2mbearer/m2mbearer/redisstore"
)

// API calls for a device reach it through the node holding its session:
// the node that received the call puts it on the holder's stream
// P rpc:<node> (XADD, bounded) and waits on the list P rpc:r:<id> (BLPOP)
// for the answer, which the holder pushes after serving the call with its
// own handler. Calls carry a deadline: the holder drops one whose caller
// has given up, and the caller answers 504 when the deadline passes (the
// holder may still have run it: the answer says so), or 503 at once when
// the holder is down.
//
// Requests for a device in queue mode are not forwarded: they go into the
// shared queue on any node, and the node holding the device sends them
// (see lwm2m/queue's shared.go); the caller's node learns the outcome
// from the queue's change stream.

// forwardedHeader marks a forwarded call (never forwarded again) with the
// node that sent it.
const forwardedHeader = "X-Smsgw-Forwarded-From"

// maxRPCBody bounds a forwarded answer.
const maxRPCBody = 1 << 20

type rpcCall struct {
	ID       string `json:"id"`
	From     string `json:"from"`
	Method   string `json:"method"`
	URI      string `json:"uri"`
	Type     string `json:"type,omitempty"`
	Body     []byte `json:"body,omitempty"`
	Deadline int64  `json:"deadline"` // Unix ms
}

type rpcAnswer struct {
	Status     int    `json:"status"`
	Type       string `json:"type,omitempty"`
	RetryAfter string `json:"retry_after,omitempty"`
	Body       []byte `json:"body,omitempty"`
	Node       string `json:"node"`
}

// routed wraps a device handler: a call for a device whose session another
// live node holds (and that is not in queue mode, or is an observation) is
// forwarded there.
func (g *Gateway) routed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := g.cluster
		if c == nil || r.Header.Get(forwardedHeader) != "" {
			h(w, r)
			return
		}
		ep := r.PathValue("ep")
		reg, ok := g.regs.ByEndpoint(ep)
		if !ok {
			h(w, r)
			return
		}
		node := reg.Node()
		if node == "" || node == c.self || reg.Queue && !strings.Contains(r.URL.Path, "observe") {
			h(w, r)
			return
		}
		if !c.isAlive(node) {
			c.met.forwarded.WithLabelValues("holder_down").Inc()
			w.Header().Set("Retry-After", "10")
			writeError(w, http.StatusServiceUnavailable, fmt.Sprintf(
				"node %s holds the session of device %s and is down; the device is reachable again once it registers at a live node (nothing was sent)", node, ep))
			return
		}
		c.forward(w, r, node, ep)
	}
}

func (c *cluster) forward(w http.ResponseWriter, r *http.Request, node, ep string) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("request body unreadable or over %d bytes", maxBody))
		return
	}
	wait, _ := parseWait(r.URL.Query().Get("wait"), 0)
	timeout := c.rpc + wait
	if strings.HasSuffix(r.URL.Path, "/firmware") {
		timeout += 5 * time.Minute // a firmware push runs for minutes
	}
	var idb [12]byte
	_, _ = rand.Read(idb[:])
	call := rpcCall{ID: hex.EncodeToString(idb[:]), From: c.self, Method: r.Method, URI: r.URL.RequestURI(),
		Type: r.Header.Get("Content-Type"), Body: body, Deadline: time.Now().Add(timeout).UnixMilli()}
	msg, _ := json.Marshal(call)
	ctx, cancel := context.WithTimeout(r.Context(), timeout+time.Second)
	defer cancel()
	rdb := c.db.Client()
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: c.db.Key("rpc", node), MaxLen: 10_000, Approx: true,
		Values: map[string]any{"m": msg}}).Err(); err != nil {
		c.met.forwarded.WithLabelValues("error").Inc()
		if !storeDown(w, redisstore.Classify("forward to "+node, err)) {
			writeError(w, http.StatusBadGateway, fmt.Sprintf("forward to node %s: %v", node, err))
		}
		return
	}
	res, err := rdb.BLPop(ctx, timeout, c.db.Key("rpc:r", call.ID)).Result()
	if err != nil {
		if errors.Is(err, redis.Nil) || errors.Is(err, context.DeadlineExceeded) {
			c.met.forwarded.WithLabelValues("timeout").Inc()
			writeError(w, http.StatusGatewayTimeout, fmt.Sprintf(
				"node %s holds device %s and did not answer within %v; it may have run the call (check the device, or GET /api/v1/cluster)", node, ep, timeout))
			return
		}
		c.met.forwarded.WithLabelValues("error").Inc()
		if !storeDown(w, redisstore.Classify("answer from "+node, err)) {
			writeError(w, http.StatusBadGateway, fmt.Sprintf("answer from node %s: %v", node, err))
		}
		return
	}
	var a rpcAnswer
	if len(res) != 2 || json.Unmarshal([]byte(res[1]), &a) != nil || a.Status < 100 || a.Status > 599 {
		c.met.forwarded.WithLabelValues("error").Inc()
		writeError(w, http.StatusBadGateway, fmt.Sprintf("node %s sent an unreadable answer", node))
		return
	}
	c.met.forwarded.WithLabelValues("ok").Inc()
	if a.Type != "" {
		w.Header().Set("Content-Type", a.Type)
	}
	if a.RetryAfter != "" {
		w.Header().Set("Retry-After", a.RetryAfter)
	}
	w.Header().Set("X-Smsgw-Node", a.Node)
	w.WriteHeader(a.Status)
	w.Write(a.Body)
}

// rpcFrom returns the stream ID after which serveRPC reads this node's
// forwarded calls: the last one there when the node starts ("0-0" for an
// empty stream). It is taken before start returns, not by serveRPC's
// first XREAD with "$": a call forwarded between the two would be lost,
// and its caller would wait for an answer until its deadline.
func (c *cluster) rpcFrom(ctx context.Context) (string, error) {
	last, err := c.db.Client().XRevRangeN(ctx, c.db.Key("rpc", c.self), "+", "-", 1).Result()
	if err != nil {
		return "", fmt.Errorf("cluster: forwarded-call stream: %w", err)
	}
	if len(last) == 0 {
		return "0-0", nil
	}
	return last[0].ID, nil
}

// serveRPC answers the calls other nodes forward to this one, those after
// the stream ID last.
func (c *cluster) serveRPC(ctx context.Context, last string) {
	defer c.wg.Done()
	rdb := c.db.Client()
	stream := c.db.Key("rpc", c.self)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		res, err := rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{stream, last}, Count: 64, Block: 200 * time.Millisecond}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				sleepCtx(ctx, backoff)
				backoff = min(2*backoff, 2*time.Second)
			}
			continue
		}
		backoff = 100 * time.Millisecond
		for _, s := range res {
			for _, m := range s.Messages {
				last = m.ID
				raw, _ := m.Values["m"].(string)
				var call rpcCall
				if json.Unmarshal([]byte(raw), &call) != nil || call.ID == "" {
					c.met.rpcDrop.WithLabelValues("unreadable").Inc()
					c.g.log.Warn("cluster: unreadable forwarded call", "id", m.ID)
					continue
				}
				if time.Now().UnixMilli() > call.Deadline {
					c.met.rpcDrop.WithLabelValues("late").Inc()
					c.g.log.Warn("cluster: forwarded call arrived after its deadline; not run", "from", call.From, "uri", call.URI)
					continue
				}
				select {
				case c.sem <- struct{}{}:
				case <-ctx.Done():
					return
				}
				c.wg.Add(1)
				go func() {
					defer c.wg.Done()
					defer func() { <-c.sem }()
					c.answer(ctx, call)
				}()
			}
		}
	}
}

// answer runs one forwarded call through this node's API handler and
// pushes the answer.
func (c *cluster) answer(ctx context.Context, call rpcCall) {
	ctx, cancel := context.WithDeadline(ctx, time.UnixMilli(call.Deadline))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, call.Method, call.URI, bytes.NewReader(call.Body))
	a := rpcAnswer{Node: c.self}
	if err != nil {
		a.Status, a.Body = http.StatusBadRequest, []byte(`{"error":"bad forwarded call"}`)
	} else {
		req.Header.Set(forwardedHeader, call.From)
		req.Header.Set("Authorization", "Bearer "+c.g.token)
		if call.Type != "" {
			req.Header.Set("Content-Type", call.Type)
		}
		req.ContentLength = int64(len(call.Body))
		rec := httptest.NewRecorder()
		c.g.httpSrv.Handler.ServeHTTP(rec, req)
		a.Status, a.Type, a.RetryAfter = rec.Code, rec.Header().Get("Content-Type"), rec.Header().Get("Retry-After")
		a.Body = rec.Body.Bytes()
		if len(a.Body) > maxRPCBody {
			a.Status, a.Body = http.StatusBadGateway, []byte(fmt.Sprintf(`{"error":"answer of %d bytes is over the %d bytes a forwarded call may return"}`, len(a.Body), maxRPCBody))
		}
	}
	b, _ := json.Marshal(a)
	pctx, pcancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer pcancel()
	key := c.db.Key("rpc:r", call.ID)
	_, err = c.db.Client().TxPipelined(pctx, func(p redis.Pipeliner) error {
		p.RPush(pctx, key, b)
		p.Expire(pctx, key, time.Minute)
		return nil
	})
	if err != nil {
		c.g.log.Warn("cluster: answer to a forwarded call lost", "from", call.From, "uri", call.URI, "err", err)
		return
	}
	c.met.served.Inc()
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
