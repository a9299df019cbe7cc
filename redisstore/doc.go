// Package redisstore keeps smsgw's state in Redis, so that several gateway
// nodes share one fleet.
//
// It has the Redis implementations, beside the bbolt ones, of every store
// interface the gateway uses. Leshan's leshan-lwm2m-server-redis is the
// model: a store is an interface with an embedded and a Redis
// implementation, and nothing above it knows which.
//
// # Usage
//
//	db, err := redisstore.Open(ctx, "redis://127.0.0.1:6379/0", redisstore.Options{Prefix: "city:", Node: "gw-a"})
//	regs, err := db.OpenRegistry(ctx, redisstore.RegistryOptions{})
//	if err != nil { ... } // an *UnavailableError when Redis is out of reach
//	srv, err := server.New(regs, server.WithNode(db.Node()))
//
// [Open] (or [New] over a redis.Client) gives a [DB], and the DB each
// store: [DB.OpenRegistry], [DB.OpenQueue], [DB.OpenBindings],
// [DB.Campaigns], [DB.Images], [DB.SMSState], [DB.RateLimiter] and
// [DB.Outbox].
//
// # Design
//
//	store interface              embedded default          here
//	registry.Store               registry.Bolt             Registry
//	queue.Store                  queue.BoltStore           Queue
//	firmware.CampaignStore       firmware.BoltCampaigns    Campaigns
//	firmware.ImageCatalog        image directory (JSON)    Images
//	sms.StateStore               sms.BoltState             SMSState
//	sms.RateLimiter              in memory                 RateLimiter
//	outbox.Backend               bbolt file                Outbox
//	server.BindingStore          server.StaticSecurity     Bindings
//
// Each interface has a conformance suite (registrytest, queue/storetest,
// firmwaretest, statetest, outboxtest, server's bindingstest) that runs
// against both implementations; this package's tests run them against a
// real redis-server (redistest).
//
// # Outages
//
// Commands are never retried by the client (a write whose reply was lost
// must not be applied twice). An error that comes from Redis being out of
// reach is an [*UnavailableError] (errors.Is [ErrUnavailable]; its
// Unavailable method answers true, which lwm2m/server and the smsgw API
// turn into CoAP 5.03 and HTTP 503). The connection pool dials again on the
// next command, so the stores work again as soon as Redis answers; the
// change feeds of Registry and Bindings reload their copy then.
//
// # Atomic transitions
//
// Every change that spans several keys is one Lua script or one
// MULTI/EXEC transaction, so a crash (of the gateway, or of Redis with
// appendfsync always) between two writes cannot run a request twice or lose
// one. They are, by store:
//
//   - Registry add: the record, the endpoint index, the expiry set, the
//     removal of the endpoint's previous registration, the shared bound
//     (ErrFull) and the change feed entry (script). Update is a
//     compare-and-set of the record (script), so two nodes updating one
//     registration never lose a change. Remove and Expire take the record
//     and its indexes out together; Expire hands each expired registration
//     to exactly one node.
//   - Queue add: the id (INCR) and the record (script): no id without its
//     record, no record twice. The sending state before a request goes out
//     and the final state are single writes of one record.
//   - Campaign device step: the device's state and the campaign's SMS count
//     (MULTI); campaign create and delete with all their devices (MULTI).
//   - SMS budget spend: check both daily limits and add (script): nodes
//     spending at once never pass a limit. Rate limit take: one token
//     bucket read-modify-write (script).
//   - Outbox update: the entry, its SIM index and its status-report
//     references (set for a segment just accepted, dropped with the entry)
//     in one compare-and-set (script). Add is INCR then the entry and its
//     SIM index (MULTI).
//   - Bindings set: the binding, its identity and number indexes, and the
//     release of an identity or number taken from another endpoint
//     (script).
//
// A lost reply is the one window no script closes: the script ran, the
// caller saw an error and refused its own request (503). Queue and Outbox
// remember such Adds and delete their records as soon as Redis answers
// again (tested with a hook that drops the reply), so a refused request is
// not run later; only a crash of the gateway inside that window leaves the
// record, which then runs once.
//
// docs/redis.md has the key layout, the production configuration
// (deploy/redis.conf: appendonly yes, appendfsync always) and the proofs.
package redisstore
