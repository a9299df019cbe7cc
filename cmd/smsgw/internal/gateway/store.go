package gateway

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
	"github.com/m2mbearer/m2mbearer/redisstore"
)

// storeDown answers 503 with Retry-After: 5 and the JSON error shape when
// err says the state store is out of reach (a Redis outage), and reports
// whether it did. Nothing was stored: the client retries.
func storeDown(w http.ResponseWriter, err error) bool {
	if !server.Unavailable(err) {
		return false
	}
	w.Header().Set("Retry-After", "5")
	writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("state store unavailable, nothing was stored; try again later: %v", err))
	return true
}

// openRedis connects to the shared store when store: redis://... (g.rdb
// stays nil for the bbolt default). The gateway refuses to start when
// Redis does not answer: a node without its shared state would accept
// work it cannot keep.
func (g *Gateway) openRedis(ctx context.Context) error {
	if !g.cfg.RedisStore() {
		return nil
	}
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	db, err := redisstore.Open(octx, g.cfg.Store, redisstore.Options{Prefix: g.cfg.StorePrefix, Node: g.cfg.Node,
		Logger: g.log.With("component", "redis")})
	if err != nil {
		return fmt.Errorf("store %s: %w", redisstore.Redact(g.cfg.Store), err)
	}
	g.rdb = db
	g.log.Info("shared state in Redis", "store", redisstore.Redact(g.cfg.Store), "prefix", g.cfg.StorePrefix, "node", db.Node())
	return nil
}

// redisRegistry opens the registry in Redis, or returns nil for bbolt.
func (g *Gateway) redisRegistry(o registry.Options, dec registry.AddrDecoder) (registry.Store, error) {
	if g.rdb == nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(g.ctx, time.Minute)
	defer cancel()
	r, err := g.rdb.OpenRegistry(ctx, redisstore.RegistryOptions{Options: o, AddrDecoder: dec, Logger: g.log.With("component", "registry")})
	if err != nil {
		return nil, fmt.Errorf("registrations in Redis: %w", err)
	}
	return r, nil
}

// serverNode names this node in registrations when the store is shared.
func (g *Gateway) serverNode() []server.Option {
	if g.rdb == nil {
		return nil
	}
	return []server.Option{server.WithNode(g.rdb.Node())}
}

// redisQueue opens the request store in Redis, or returns nil for bbolt.
func (g *Gateway) redisQueue() (queue.Store, error) {
	if g.rdb == nil {
		return nil, nil
	}
	q, err := g.rdb.OpenQueue(g.ctx)
	if err != nil {
		return nil, fmt.Errorf("queue store in Redis: %w", err)
	}
	return q, nil
}

// smsShared returns the SMS bearer's state store, rate limiter and outbox
// (for the SIMs sims) in Redis, or nils for the bearer's defaults (bbolt
// files, in-memory buckets).
func (g *Gateway) smsShared(sims []string) (sms.StateStore, sms.RateLimiter, outbox.Backend) {
	if g.rdb == nil {
		return nil, nil, nil
	}
	return g.rdb.SMSState(), g.rdb.RateLimiter(g.cfg.SMS.PeerRate, g.cfg.SMS.PeerBurst), g.rdb.Outbox(sims)
}

// imageCatalog keeps the firmware image metadata in Redis when the store
// is shared (the images stay files in firmware.dir, named by content).
func (g *Gateway) imageCatalog() []firmware.StoreOption {
	if g.rdb == nil {
		return nil
	}
	return []firmware.StoreOption{firmware.WithCatalog(g.rdb.Images()), firmware.WithFetch(g.cluster.fetchImage)}
}

// redisBindings opens the shared provisioning store and writes the
// configured bindings into it (the configuration is their source; bindings
// a provisioning system added stay); nil for bbolt.
func (g *Gateway) redisBindings(static *server.StaticSecurity) (*redisstore.Bindings, error) {
	if g.rdb == nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(g.ctx, time.Minute)
	defer cancel()
	b, err := g.rdb.OpenBindings(ctx, 0)
	if err != nil {
		return nil, fmt.Errorf("bindings in Redis: %w", err)
	}
	var serr error
	static.Range(func(ep string, bd server.Binding) bool {
		serr = b.Set(ep, bd)
		return serr == nil
	})
	if serr != nil {
		b.Close()
		return nil, fmt.Errorf("bindings in Redis: %w", serr)
	}
	g.sharedBind = b
	return b, nil
}
