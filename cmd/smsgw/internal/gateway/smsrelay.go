package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/redisstore"
)

// SMS for a device go out through the server SIM the device knows, on
// whichever node has that modem (or SMPP link). A datagram written on a
// node without that SIM is appended to the SIM's stream P sms:sim:<number>
// (XADD: once Redis has it, with appendfsync always, it is durable); the
// node with the SIM reads the stream in the consumer group "sms" and
// acknowledges an entry (XACK) only after its SMS bearer has stored the
// datagram in its durable outbox. Entries a node read but did not
// acknowledge (it died in between) are read again when it comes back (its
// pending list is read first); until then they wait, like the SIM's
// outbox entries, for that SIM: a device accepts SMS only from the number
// it was provisioned with (DESIGN.md), so there is no other SIM to fail
// over to unless the device knows one.
//
// Budgets and rate limits are charged once, by the node that sends (they
// are shared in Redis). A relayed datagram keeps its deadline (a wake-up
// for a request that expires), and one past it is dropped and counted.

// smsRelay is the SMS bearer as the CoAP endpoint and the waker see it on
// a cluster node: writes for SIMs of other nodes go to their streams.
type smsRelay struct {
	*sms.Bearer
	c     *cluster
	simOf func(to string) string // server SIM of a device number, "" unknown
}

var _ bearer.DeadlineWriter = (*smsRelay)(nil)

// smsRelayed returns the bearer the SMS endpoint writes through.
func (g *Gateway) smsRelayed() bearer.Bearer {
	if g.cluster == nil {
		return g.smsB
	}
	return &smsRelay{Bearer: g.smsB, c: g.cluster, simOf: g.serverSIMOf}
}

// serverSIMOf returns the configured server SIM of the device with number
// to.
func (g *Gateway) serverSIMOf(to string) string {
	g.devMu.RLock()
	defer g.devMu.RUnlock()
	for _, d := range g.devices {
		if a, err := sms.ParseMSISDN(d.MSISDN); err == nil && a.String() == to {
			if s, err := sms.ParseMSISDN(d.ServerSIM); err == nil {
				return s.String()
			}
			return ""
		}
	}
	return ""
}

// WriteTo implements net.PacketConn.
func (r *smsRelay) WriteTo(p []byte, addr net.Addr) (int, error) {
	return r.WriteToBefore(p, addr, time.Time{})
}

// WriteToBefore relays a datagram for another node's SIM, or writes it
// here.
func (r *smsRelay) WriteToBefore(p []byte, addr net.Addr, deadline time.Time) (int, error) {
	to, err := sms.ParseMSISDN(addrNumber(addr))
	if err != nil {
		return r.Bearer.WriteToBefore(p, addr, deadline)
	}
	sim := r.simOf(to.String())
	if sim == "" || r.c.localSIMs[sim] {
		return r.Bearer.WriteToBefore(p, addr, deadline)
	}
	if len(p) > r.Params().MaxDatagram {
		return 0, &net.OpError{Op: "write", Net: sms.Network, Addr: addr, Err: fmt.Errorf("%w: %d > %d bytes", bearer.ErrTooLarge, len(p), r.Params().MaxDatagram)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var dl int64
	if !deadline.IsZero() {
		dl = deadline.UnixMilli()
	}
	err = r.c.db.Client().XAdd(ctx, &redis.XAddArgs{Stream: r.c.db.Key("sms:sim", sim), MaxLen: 100_000, Approx: true,
		Values: map[string]any{"to": to.String(), "d": p, "dl": dl, "from": r.c.self}}).Err()
	if err != nil {
		return 0, &net.OpError{Op: "write", Net: sms.Network, Addr: addr, Err: redisstore.Classify("relay SMS to SIM "+sim, err)}
	}
	r.c.met.relayed.WithLabelValues("out").Inc()
	return len(p), nil
}

func addrNumber(a net.Addr) string {
	if a == nil {
		return ""
	}
	if a.Network() != sms.Network {
		return ""
	}
	return a.String()
}

const relayGroup = "sms"

// consumeSIM takes the datagrams other nodes relayed for sim into this
// node's outbox.
func (c *cluster) consumeSIM(ctx context.Context, sim string) {
	defer c.wg.Done()
	rdb := c.db.Client()
	stream := c.db.Key("sms:sim", sim)
	log := c.g.log.With("component", "sms-relay", "sim", sim)
	backoff := 100 * time.Millisecond
	grouped := false
	pending := true // read this node's unacknowledged entries first
	for ctx.Err() == nil {
		if !grouped {
			err := rdb.XGroupCreateMkStream(ctx, stream, relayGroup, "0").Err()
			if err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
				sleepCtx(ctx, backoff)
				backoff = min(2*backoff, 2*time.Second)
				continue
			}
			grouped = true
		}
		id := ">"
		if pending {
			id = "0"
		}
		res, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: relayGroup, Consumer: c.self, Streams: []string{stream, id},
			Count: 64, Block: 200 * time.Millisecond}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				if strings.Contains(err.Error(), "NOGROUP") {
					grouped = false // Redis lost the group (restart without AOF)
				}
				sleepCtx(ctx, backoff)
				backoff = min(2*backoff, 2*time.Second)
				pending = true
			}
			continue
		}
		backoff = 100 * time.Millisecond
		n := 0
		retry := false
		for _, s := range res {
			for _, m := range s.Messages {
				n++
				if !c.relayOne(ctx, log, stream, m) {
					retry = true
				}
			}
		}
		if pending && n == 0 {
			pending = false
		}
		if retry {
			// Something could not be stored now (rate limit, outage):
			// read the pending list again after a pause.
			pending = true
			sleepCtx(ctx, time.Second)
		}
	}
}

// relayOne stores one relayed datagram in the outbox and acknowledges it;
// false when it should be tried again later.
func (c *cluster) relayOne(ctx context.Context, log interface {
	Warn(string, ...any)
	Error(string, ...any)
}, stream string, m redis.XMessage) bool {
	to, _ := m.Values["to"].(string)
	data, _ := m.Values["d"].(string)
	dl, _ := strconv.ParseInt(fmt.Sprint(m.Values["dl"]), 10, 64)
	ack := func() bool {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if err := c.db.Client().XAck(actx, stream, relayGroup, m.ID).Err(); err != nil {
			return false
		}
		_ = c.db.Client().XDel(actx, stream, m.ID).Err()
		return true
	}
	addr, err := sms.ParseMSISDN(to)
	if err != nil || data == "" {
		c.met.relayed.WithLabelValues("dropped").Inc()
		log.Error("cluster: unreadable relayed SMS dropped", "id", m.ID, "to", to)
		return ack()
	}
	var deadline time.Time
	if dl > 0 {
		deadline = time.UnixMilli(dl)
		if time.Now().After(deadline) {
			c.met.relayed.WithLabelValues("dropped").Inc()
			log.Warn("cluster: relayed SMS past its deadline dropped", "to", to, "from_node", m.Values["from"], "deadline", deadline)
			return ack()
		}
	}
	if _, err := c.g.smsB.WriteToBefore([]byte(data), addr, deadline); err != nil {
		var re *sms.RateError
		if errors.As(err, &re) || redisstoreUnavailable(err) {
			return false
		}
		c.met.relayed.WithLabelValues("dropped").Inc()
		log.Error("cluster: relayed SMS refused by this node's SMS bearer", "to", to, "from_node", m.Values["from"], "err", err)
		return ack()
	}
	c.met.relayed.WithLabelValues("in").Inc()
	return ack()
}

func redisstoreUnavailable(err error) bool {
	var u interface{ Unavailable() bool }
	return errors.As(err, &u) && u.Unavailable()
}
