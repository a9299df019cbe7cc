package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/internal/cfgcheck"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// Bindings is a server.BindingStore in Redis: the provisioning store the
// registration policy reads (endpoint names bound to DTLS/OSCORE
// identities, with their PSKs, and to SMS numbers), shared by the gateway
// nodes, so a device provisioned through one node is bound on all. Reads
// are served from a copy in memory kept in step by a change feed, like
// Registry's.
//
// Keys:
//
//	P bind       hash   endpoint -> binding (JSON; keys base64)
//	P bind:id    hash   server.IdentityKey -> endpoint
//	P bind:num   hash   SMS number (E.164 with +) -> endpoint
//	P bind:log   stream {ep}: the change feed
//
// Set is one optimistic transaction (WATCH on the three hashes, MULTI/EXEC):
// the binding, its indexes and the release of an identity or number taken
// from another endpoint change together, or the transaction is retried.
type Bindings struct {
	db    *DB
	max   int
	local atomic.Pointer[server.StaticSecurity]
	feed  feed

	mu     sync.Mutex
	closed bool
}

var _ server.BindingStore = (*Bindings)(nil)

type bindingJSON struct {
	Mode            string   `json:"mode,omitempty"`
	PSKIdentity     []byte   `json:"psk_identity,omitempty"`
	PublicKey       []byte   `json:"public_key,omitempty"`
	Certificates    [][]byte `json:"certificates,omitempty"`
	OSCOREID        []byte   `json:"oscore_id,omitempty"`
	OSCOREIDContext []byte   `json:"oscore_id_context,omitempty"`
	HasIDContext    bool     `json:"has_id_context,omitempty"`
	MSISDN          string   `json:"msisdn,omitempty"`
	NoSec           bool     `json:"nosec,omitempty"`
	PSK             []byte   `json:"psk,omitempty"`
	SMSSecured      bool     `json:"sms_secured,omitempty"`
}

func encodeBinding(b server.Binding) []byte {
	v, _ := json.Marshal(bindingJSON{Mode: b.Identity.Mode, PSKIdentity: b.Identity.PSKIdentity, PublicKey: b.Identity.PublicKey,
		Certificates: b.Identity.Certificates, OSCOREID: b.Identity.OSCOREID, OSCOREIDContext: b.Identity.OSCOREIDContext,
		HasIDContext: b.Identity.OSCOREIDContext != nil, MSISDN: b.MSISDN, NoSec: b.NoSec, PSK: b.PSK, SMSSecured: b.SMSSecured})
	return v
}

func decodeBinding(v []byte) (server.Binding, error) {
	var j bindingJSON
	if err := json.Unmarshal(v, &j); err != nil {
		return server.Binding{}, err
	}
	id := bearer.Identity{Mode: j.Mode, PSKIdentity: j.PSKIdentity, PublicKey: j.PublicKey, Certificates: j.Certificates,
		OSCOREID: j.OSCOREID, OSCOREIDContext: j.OSCOREIDContext}
	if j.HasIDContext && id.OSCOREIDContext == nil {
		id.OSCOREIDContext = []byte{}
	}
	return server.Binding{Identity: id, MSISDN: j.MSISDN, NoSec: j.NoSec, PSK: j.PSK, SMSSecured: j.SMSSecured}, nil
}

// OpenBindings loads the deployment's bindings and follows their changes;
// the store holds at most max bindings (0: 1,000,000; negative is refused
// with ErrInvalidOption). Close stops it.
func (d *DB) OpenBindings(ctx context.Context, max int) (*Bindings, error) {
	if d == nil || d.c == nil {
		return nil, ErrClosed
	}
	var f cfgcheck.Fields
	cfgcheck.Default(&f, "max", &max, 1_000_000)
	if err := f.Err(ErrInvalidOption, "OpenBindings"); err != nil {
		return nil, err
	}
	b := &Bindings{db: d, max: max}
	b.local.Store(server.NewStaticSecurity(0))
	b.feed = feed{db: d, stream: d.Key("bind:log"), name: "bindings", log: d.log, reload: b.reload, apply: b.apply}
	if err := b.feed.start(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *Bindings) reload(ctx context.Context) error {
	all, err := b.db.c.HGetAll(ctx, b.db.Key("bind")).Result()
	if err != nil {
		return wrap("bindings load", err)
	}
	fresh := server.NewStaticSecurity(0)
	for ep, v := range all {
		bd, err := decodeBinding([]byte(v))
		if err != nil {
			b.feed.log.Warn("redisstore: skipping a corrupt binding", "endpoint", ep, "err", err)
			continue
		}
		if err := fresh.Set(ep, bd); err != nil {
			return err
		}
	}
	b.local.Store(fresh)
	return nil
}

func (b *Bindings) apply(ctx context.Context, msgs []redis.XMessage) error {
	for _, m := range msgs {
		ep := field(m, "ep")
		if ep == "" {
			continue
		}
		v, err := b.db.c.HGet(ctx, b.db.Key("bind"), ep).Bytes()
		if errors.Is(err, redis.Nil) {
			b.local.Load().Unbind(ep)
			continue
		}
		if err != nil {
			return wrap("bindings feed", err)
		}
		bd, err := decodeBinding(v)
		if err != nil {
			continue
		}
		if err := b.local.Load().Set(ep, bd); err != nil {
			return errFeed("bindings", err)
		}
	}
	return nil
}

// Set implements server.BindingStore.
func (b *Bindings) Set(ep string, bd server.Binding) error {
	if b == nil || b.db == nil {
		return ErrClosed
	}
	if ep == "" {
		return fmt.Errorf("redisstore: a binding needs an endpoint")
	}
	if bd.MSISDN != "" {
		a, err := sms.ParseMSISDN(bd.MSISDN)
		if err != nil {
			return fmt.Errorf("redisstore: binding of %q: %w", ep, err)
		}
		bd.MSISDN = a.String()
	}
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return ErrClosed
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b.feed.mu.RLock()
	defer b.feed.mu.RUnlock()
	kb, kid, knum, klog := b.db.Key("bind"), b.db.Key("bind:id"), b.db.Key("bind:num"), b.db.Key("bind:log")
	for range 32 {
		var changed map[string]*server.Binding
		err := b.db.c.Watch(ctx, func(tx *redis.Tx) error {
			var err error
			var indexes func(redis.Pipeliner)
			changed, indexes, err = b.plan(ctx, tx, ep, bd)
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				indexes(p)
				for e, nb := range changed {
					if nb == nil {
						p.HDel(ctx, kb, e)
					} else {
						p.HSet(ctx, kb, e, encodeBinding(*nb))
					}
					p.XAdd(ctx, &redis.XAddArgs{Stream: klog, MaxLen: maxStream, Approx: true, Values: []any{"ep", e}})
				}
				return nil
			})
			return err
		}, kb, kid, knum)
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		if err != nil {
			if errors.Is(err, server.ErrTooManyBindings) {
				return err
			}
			return wrap("bindings set", err)
		}
		// This node's copy follows at once (the feed confirms).
		loc := b.local.Load()
		for e, nb := range changed {
			if nb == nil {
				loc.Unbind(e)
			} else {
				_ = loc.Set(e, *nb)
			}
		}
		return nil
	}
	return fmt.Errorf("redisstore: bindings set %q: too many concurrent changes", ep)
}

// plan reads (in the watched transaction) what Set of ep changes: the
// endpoints whose binding changes (nil: removed) and a func that queues
// the index changes into Set's MULTI.
func (b *Bindings) plan(ctx context.Context, tx *redis.Tx, ep string, bd server.Binding) (map[string]*server.Binding, func(redis.Pipeliner), error) {
	t := bindTx{ctx: ctx, tx: tx, kb: b.db.Key("bind"), kid: b.db.Key("bind:id"), knum: b.db.Key("bind:num")}
	old, err := t.read(ep)
	if err != nil {
		return nil, nil, err
	}
	if old == nil && !bd.IsZero() {
		n, err := tx.HLen(ctx, t.kb).Result()
		if err != nil {
			return nil, nil, err
		}
		if int(n) >= b.max {
			return nil, nil, server.ErrTooManyBindings
		}
	}
	changed := t.changes(ep, bd)
	return changed, t.indexes(ep, old, changed), nil
}

// bindTx reads the bindings and their indexes inside Set's watched
// transaction.
type bindTx struct {
	ctx           context.Context
	tx            *redis.Tx
	kb, kid, knum string // the bindings, identity index and number index hashes
}

// bindIndex is one entry of an index hash: field → endpoint.
type bindIndex struct{ hash, field, ep string }

// read returns the stored binding of e (nil when there is none).
func (t bindTx) read(e string) (*server.Binding, error) {
	v, err := t.tx.HGet(t.ctx, t.kb, e).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	x, err := decodeBinding(v)
	return &x, err
}

// changes returns the endpoints whose binding changes when ep is bound to
// bd (nil: removed): ep itself, and the endpoints that held bd's identity
// or number, which lose it.
func (t bindTx) changes(ep string, bd server.Binding) map[string]*server.Binding {
	changed := map[string]*server.Binding{}
	if bd.IsZero() {
		changed[ep] = nil
	} else {
		nb := bd
		changed[ep] = &nb
	}
	// Identity and number taken from other endpoints.
	if !bd.Identity.IsZero() {
		if other, err := t.tx.HGet(t.ctx, t.kid, server.IdentityKey(bd.Identity)).Result(); err == nil && other != ep {
			if ob, err := t.read(other); err == nil && ob != nil {
				ob.Identity, ob.PSK = bearer.Identity{}, nil
				changed[other] = ob
			}
		}
	}
	if bd.MSISDN != "" {
		if other, err := t.tx.HGet(t.ctx, t.knum, bd.MSISDN).Result(); err == nil && other != ep {
			ob := changed[other]
			if ob == nil {
				ob, _ = t.read(other)
			}
			if ob != nil {
				ob.MSISDN = ""
				changed[other] = ob
			}
		}
	}
	for e, nb := range changed {
		if nb != nil && nb.IsZero() {
			changed[e] = nil
		}
	}
	return changed
}

// indexes returns the index changes, queued in the same MULTI by Set: drop
// the old entries of every endpoint changed (when they still name it),
// then add the new ones. old is ep's binding before the change.
func (t bindTx) indexes(ep string, old *server.Binding, changed map[string]*server.Binding) func(redis.Pipeliner) {
	var drop, put []bindIndex
	for e, nb := range changed {
		prev := old
		if e != ep {
			prev, _ = t.read(e)
		}
		if prev != nil {
			if !prev.Identity.IsZero() {
				drop = append(drop, bindIndex{t.kid, server.IdentityKey(prev.Identity), e})
			}
			if prev.MSISDN != "" {
				drop = append(drop, bindIndex{t.knum, prev.MSISDN, e})
			}
		}
		if nb != nil {
			if !nb.Identity.IsZero() {
				put = append(put, bindIndex{t.kid, server.IdentityKey(nb.Identity), e})
			}
			if nb.MSISDN != "" {
				put = append(put, bindIndex{t.knum, nb.MSISDN, e})
			}
		}
	}
	var dropNow []bindIndex
	for _, d := range drop {
		if cur, err := t.tx.HGet(t.ctx, d.hash, d.field).Result(); err == nil && cur == d.ep {
			dropNow = append(dropNow, d)
		}
	}
	ctx := t.ctx
	return func(p redis.Pipeliner) {
		for _, d := range dropNow {
			p.HDel(ctx, d.hash, d.field)
		}
		for _, x := range put {
			p.HSet(ctx, x.hash, x.field, x.ep)
		}
	}
}

// Binding implements server.Bindings (from the node's copy).
func (b *Bindings) Binding(ep string) (server.Binding, bool) {
	if b == nil || b.db == nil {
		return server.Binding{}, false
	}
	return b.local.Load().Binding(ep)
}

// EndpointOf implements server.Bindings.
func (b *Bindings) EndpointOf(id bearer.Identity) (string, bool) {
	if b == nil || b.db == nil {
		return "", false
	}
	return b.local.Load().EndpointOf(id)
}

// IdentityOf implements server.IdentityBinding.
func (b *Bindings) IdentityOf(ep string) (bearer.Identity, bool) {
	if b == nil || b.db == nil {
		return bearer.Identity{}, false
	}
	return b.local.Load().IdentityOf(ep)
}

// EndpointOfNumber implements server.Bindings.
func (b *Bindings) EndpointOfNumber(msisdn string) (string, bool) {
	if b == nil || b.db == nil {
		return "", false
	}
	return b.local.Load().EndpointOfNumber(msisdn)
}

// Len implements server.BindingStore.
func (b *Bindings) Len() int {
	if b == nil || b.db == nil {
		return 0
	}
	return b.local.Load().Len()
}

// Close stops the change feed; the DB stays open.
func (b *Bindings) Close() error {
	if b == nil || b.db == nil {
		return nil
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	b.feed.stop()
	return nil
}
