package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster membership and leases (issue 15). A node announces itself with a
// heartbeat: its description in the hash P nodes (kept after it stops, so
// the operator sees a dead node as "down") and a liveness key P node:<name>
// that expires after the heartbeat's TTL. A node is alive while that key
// exists; nothing else decides it, so every node agrees on who is alive as
// soon as Redis does.
//
// A lease is a key P lease:<name> holding "<owner> <token>", set with a TTL:
// the owner renews it while it works and releases it when done; if the
// owner dies the key expires and another node may take it. The token comes
// from one sequence (P lease:seq), so every grant of every lease has a
// larger token than all grants before it: a fencing token. Writes that must
// come from the current holder check the token in the same Lua script
// (Queue.Put of a leased request, see queuePut).
//
// Keys:
//
//	P nodes           hash    node name -> NodeInfo (JSON), last heartbeat
//	P node:<name>     string  "1" while the node is alive (PX = heartbeat TTL)
//	P lease:<name>    string  "<owner> <token>" (PX = lease TTL)
//	P lease:seq       string  fencing token sequence

// NodeInfo is what a node says about itself in its heartbeat.
type NodeInfo struct {
	Name    string    `json:"name"`
	API     string    `json:"api,omitempty"`  // base URL of its HTTP API
	UDP     string    `json:"udp,omitempty"`  // its LwM2M UDP address
	DTLS    string    `json:"dtls,omitempty"` // its LwM2M DTLS address
	SIMs    []string  `json:"sims,omitempty"` // server SIMs on its modems or links
	Started time.Time `json:"started"`
	Beat    time.Time `json:"heartbeat"`
	// Devices is how many registrations name it (its own count).
	Devices int `json:"devices"`
	// Stats are the node's own counters, for the operator.
	Stats map[string]float64 `json:"stats,omitempty"`
}

// NodeStatus is a node as the cluster sees it.
type NodeStatus struct {
	NodeInfo
	Alive bool `json:"alive"`
}

// maxNodeInfo bounds one heartbeat record.
const maxNodeInfo = 64 << 10

// Heartbeat records info as this node's description and keeps the node
// alive for ttl. Call it at least every ttl/3.
func (d *DB) Heartbeat(ctx context.Context, info NodeInfo, ttl time.Duration) error {
	if d == nil || d.c == nil {
		return &UnavailableError{Op: "heartbeat", Err: ErrClosed}
	}
	if ttl < 10*time.Millisecond {
		return fmt.Errorf("redisstore: heartbeat TTL %v is too short", ttl)
	}
	info.Name = d.node
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	if len(b) > maxNodeInfo {
		return fmt.Errorf("redisstore: heartbeat of %d bytes exceeds %d", len(b), maxNodeInfo)
	}
	_, err = d.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, d.Key("nodes"), d.node, b)
		p.Set(ctx, d.Key("node", d.node), "1", ttl)
		return nil
	})
	return wrap("heartbeat", err)
}

// Leave marks this node stopped at once (its devices and leases go to
// other nodes without waiting for the TTL).
func (d *DB) Leave(ctx context.Context) error {
	if d == nil || d.c == nil {
		return nil
	}
	return wrap("leave", d.c.Del(ctx, d.Key("node", d.node)).Err())
}

// Nodes returns every node that ever sent a heartbeat under this prefix,
// sorted by name, with whether it is alive now.
func (d *DB) Nodes(ctx context.Context) ([]NodeStatus, error) {
	if d == nil || d.c == nil {
		return nil, &UnavailableError{Op: "nodes", Err: ErrClosed}
	}
	all, err := d.c.HGetAll(ctx, d.Key("nodes")).Result()
	if err != nil {
		return nil, wrap("nodes", err)
	}
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]NodeStatus, 0, len(names))
	if len(names) == 0 {
		return out, nil
	}
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = d.Key("node", n)
	}
	alive, err := d.c.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, wrap("nodes", err)
	}
	for i, n := range names {
		var ns NodeStatus
		if err := json.Unmarshal([]byte(all[n]), &ns.NodeInfo); err != nil {
			ns.NodeInfo = NodeInfo{Name: n}
		}
		ns.Name = n
		ns.Alive = alive[i] != nil
		out = append(out, ns)
	}
	return out, nil
}

// Forget removes a node's description (an operator's clean-up of a node
// that will not come back). A live node cannot be forgotten.
func (d *DB) Forget(ctx context.Context, node string) error {
	if d == nil || d.c == nil {
		return &UnavailableError{Op: "forget", Err: ErrClosed}
	}
	n, err := d.c.Exists(ctx, d.Key("node", node)).Result()
	if err != nil {
		return wrap("forget", err)
	}
	if n > 0 {
		return fmt.Errorf("redisstore: node %q is alive", node)
	}
	return wrap("forget", d.c.HDel(ctx, d.Key("nodes"), node).Err())
}

// Classify returns err of a command run on DB.Client as the stores return
// theirs: an outage becomes an *UnavailableError (503 upstream), anything
// else gets op's name.
func Classify(op string, err error) error { return wrap(op, err) }

// Lease is one grant of a named lease.
type Lease struct {
	Name  string `json:"name"`
	Owner string `json:"owner"`
	Token uint64 `json:"token"`
	// TTL is what is left of it (in Leases).
	TTL time.Duration `json:"ttl"`
}

func (l Lease) value() string { return l.Owner + " " + strconv.FormatUint(l.Token, 10) }

// ErrLeaseHeld is returned by Acquire when another owner holds the lease.
var ErrLeaseHeld = errors.New("redisstore: lease held by another node")

// ErrLeaseLost is returned by Renew and Release when the lease is no longer
// this grant's (it expired, and maybe another node holds it now).
var ErrLeaseLost = errors.New("redisstore: lease lost")

// leaseAcquire: KEYS lease, seq; ARGV owner, ttl ms. A lease already held
// by the same owner is renewed and keeps its token.
var leaseAcquire = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then
  local sp = string.find(cur, ' ', 1, true)
  if string.sub(cur, 1, sp - 1) ~= ARGV[1] then return {0, cur} end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {tonumber(string.sub(cur, sp + 1)), cur}
end
local t = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. t, 'PX', ARGV[2])
return {t, ''}
`)

// leaseRenew: KEYS lease; ARGV value, ttl ms (0: release).
var leaseRenew = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then redis.call('DEL', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
`)

// Acquire takes the lease name for this node for ttl. ErrLeaseHeld (with
// the holder in the message) when another node holds it.
func (d *DB) Acquire(ctx context.Context, name string, ttl time.Duration) (Lease, error) {
	if d == nil || d.c == nil {
		return Lease{}, &UnavailableError{Op: "lease", Err: ErrClosed}
	}
	res, err := leaseAcquire.Run(ctx, d.c, []string{d.Key("lease", name), d.Key("lease:seq")}, d.node, ttl.Milliseconds()).Slice()
	if err != nil {
		return Lease{}, wrap("lease "+name, err)
	}
	tok, _ := res[0].(int64)
	if tok == 0 {
		holder, _ := res[1].(string)
		return Lease{}, fmt.Errorf("%w: %s holds %s", ErrLeaseHeld, holder, name)
	}
	return Lease{Name: name, Owner: d.node, Token: uint64(tok), TTL: ttl}, nil
}

// Renew extends l by ttl; ErrLeaseLost if it is no longer l's.
func (d *DB) Renew(ctx context.Context, l Lease, ttl time.Duration) error {
	return d.renew(ctx, l, ttl.Milliseconds())
}

// Release gives l up; ErrLeaseLost if it was no longer l's.
func (d *DB) Release(ctx context.Context, l Lease) error { return d.renew(ctx, l, 0) }

func (d *DB) renew(ctx context.Context, l Lease, ms int64) error {
	if d == nil || d.c == nil {
		return &UnavailableError{Op: "lease", Err: ErrClosed}
	}
	if ms < 0 {
		ms = 1
	}
	n, err := leaseRenew.Run(ctx, d.c, []string{d.Key("lease", l.Name)}, l.value(), ms).Int()
	if err != nil {
		return wrap("lease "+l.Name, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s (token %d)", ErrLeaseLost, l.Name, l.Token)
	}
	return nil
}

// Leases lists the leases held now whose name starts with prefix (at most
// max; SCAN, so cheap for Redis but not a snapshot).
func (d *DB) Leases(ctx context.Context, prefix string, max int) ([]Lease, error) {
	if d == nil || d.c == nil {
		return nil, &UnavailableError{Op: "leases", Err: ErrClosed}
	}
	base := d.Key("lease") + ":"
	var keys []string
	it := d.c.Scan(ctx, 0, base+escapeGlob(prefix)+"*", 1000).Iterator()
	for it.Next(ctx) && len(keys) < max {
		if k := it.Val(); k != d.Key("lease:seq") {
			keys = append(keys, k)
		}
	}
	if err := it.Err(); err != nil {
		return nil, wrap("leases", err)
	}
	slices.Sort(keys)
	out := make([]Lease, 0, len(keys))
	for _, k := range keys {
		v, err := d.c.Get(ctx, k).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, wrap("leases", err)
		}
		ttl, _ := d.c.PTTL(ctx, k).Result()
		owner, tok, _ := strings.Cut(v, " ")
		t, _ := strconv.ParseUint(tok, 10, 64)
		out = append(out, Lease{Name: strings.TrimPrefix(k, base), Owner: owner, Token: t, TTL: ttl})
	}
	return out, nil
}

func escapeGlob(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`)
	return r.Replace(s)
}

type leaseKey struct{}

// WithLease returns ctx carrying l: a store write given that context is
// fenced by it (Campaigns.SaveDevice).
func WithLease(ctx context.Context, l Lease) context.Context {
	return context.WithValue(ctx, leaseKey{}, l)
}

// LeaseFrom returns the lease ctx carries.
func LeaseFrom(ctx context.Context) (Lease, bool) {
	l, ok := ctx.Value(leaseKey{}).(Lease)
	return l, ok
}

// Hold takes the lease name for ttl and keeps renewing it (every ttl/3)
// until release is called or ctx ends. The context it returns carries the
// lease (WithLease) and ends when the lease is lost (a renewal found
// another grant, or could not reach Redis before the lease ran out) or
// ctx ends; release gives the lease up.
func (d *DB) Hold(ctx context.Context, name string, ttl time.Duration) (context.Context, func(), error) {
	l, err := d.Acquire(ctx, name, ttl)
	if err != nil {
		return nil, nil, err
	}
	lctx, cancel := context.WithCancel(WithLease(ctx, l))
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-lctx.Done():
				return
			case <-t.C:
			}
			rctx, rcancel := context.WithTimeout(lctx, ttl/3)
			err := d.Renew(rctx, l, ttl)
			rcancel()
			switch {
			case err == nil:
				last = time.Now()
			case errors.Is(err, ErrLeaseLost) || time.Since(last) > ttl:
				d.log.Warn("redisstore: lease lost", "lease", name, "token", l.Token, "err", err)
				cancel()
				return
			}
		}
	}()
	release := func() {
		cancel()
		<-done
		rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer rcancel()
		_ = d.Release(rctx, l)
	}
	return lctx, release, nil
}

// Triggers keeps what the LwM2M server learned of each device's Trigger
// (/1/x/21) and the /1 instance of this server, for every node
// (server.TriggerStore). Key: P trig, hash endpoint -> "<inst> <0|1>".
type Triggers struct{ db *DB }

// Triggers returns the deployment's trigger table.
func (d *DB) Triggers() *Triggers { return &Triggers{db: d} }

// GetTrigger implements server.TriggerStore.
func (t *Triggers) GetTrigger(ep string) (uint16, bool, bool, error) {
	if t == nil || t.db == nil || t.db.c == nil {
		return 0, false, false, ErrClosed
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	v, err := t.db.c.HGet(ctx, t.db.Key("trig"), ep).Result()
	if errors.Is(err, redis.Nil) {
		return 0, false, false, nil
	}
	if err != nil {
		return 0, false, false, wrap("trigger get", err)
	}
	inst, on, _ := strings.Cut(v, " ")
	n, err := strconv.ParseUint(inst, 10, 16)
	if err != nil {
		return 0, false, false, fmt.Errorf("redisstore: trigger of %s: %q", ep, v)
	}
	return uint16(n), on == "1", true, nil
}

// SetTrigger implements server.TriggerStore.
func (t *Triggers) SetTrigger(ep string, inst uint16, on bool) error {
	if t == nil || t.db == nil || t.db.c == nil {
		return ErrClosed
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	v := strconv.FormatUint(uint64(inst), 10) + " 0"
	if on {
		v = v[:len(v)-1] + "1"
	}
	return wrap("trigger set", t.db.c.HSet(ctx, t.db.Key("trig"), ep, v).Err())
}
