package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
)

// Campaigns is a firmware.CampaignStore in Redis.
//
// Keys:
//
//	P fw:camp            hash   campaign id -> firmware.CampaignRecord (JSON, sms_used ignored)
//	P fw:camp:sms        hash   campaign id -> SMS used (HINCRBY)
//	P fw:camp:seq        string campaign number sequence (INCR)
//	P fw:camp:dev:<id>   hash   endpoint -> firmware.DeviceState (JSON)
//
// A device's state and the campaign's SMS count change in one MULTI/EXEC
// transaction (SaveDevice), and a campaign is created or deleted with all
// its devices in one: a crash never leaves a step stored without the SMS
// it was charged, nor a campaign without its devices.
type Campaigns struct{ db *DB }

var _ firmware.CampaignStore = (*Campaigns)(nil)

// Campaigns returns the deployment's campaign store.
func (d *DB) Campaigns() *Campaigns { return &Campaigns{db: d} }

func (c *Campaigns) ok() error {
	if c == nil || c.db == nil || c.db.c == nil {
		return ErrClosed
	}
	return nil
}

// Load implements firmware.CampaignStore.
func (c *Campaigns) Load(ctx context.Context) ([]firmware.CampaignRecord, map[string][]firmware.DeviceState, error) {
	if err := c.ok(); err != nil {
		return nil, nil, err
	}
	raw, err := c.db.c.HGetAll(ctx, c.db.Key("fw:camp")).Result()
	if err != nil {
		return nil, nil, wrap("campaigns load", err)
	}
	sms, err := c.db.c.HGetAll(ctx, c.db.Key("fw:camp:sms")).Result()
	if err != nil {
		return nil, nil, wrap("campaigns load", err)
	}
	var recs []firmware.CampaignRecord
	devs := map[string][]firmware.DeviceState{}
	for id, v := range raw {
		var r firmware.CampaignRecord
		if err := json.Unmarshal([]byte(v), &r); err != nil {
			return nil, nil, fmt.Errorf("redisstore: campaign %s: %w", id, err)
		}
		r.SMSUsed, _ = strconv.Atoi(sms[id])
		recs = append(recs, r)
		var cursor uint64
		for {
			kv, next, err := c.db.c.HScan(ctx, c.db.Key("fw:camp:dev", id), cursor, "", 1000).Result()
			if err != nil {
				return nil, nil, wrap("campaigns load", err)
			}
			for i := 0; i+1 < len(kv); i += 2 {
				var d firmware.DeviceState
				if err := json.Unmarshal([]byte(kv[i+1]), &d); err != nil {
					return nil, nil, fmt.Errorf("redisstore: campaign %s device %s: %w", id, kv[i], err)
				}
				devs[id] = append(devs[id], d)
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
	}
	return recs, devs, nil
}

// NextID implements firmware.CampaignStore.
func (c *Campaigns) NextID(ctx context.Context) (uint64, error) {
	if err := c.ok(); err != nil {
		return 0, err
	}
	n, err := c.db.c.Incr(ctx, c.db.Key("fw:camp:seq")).Uint64()
	return n, wrap("campaign id", err)
}

// Create implements firmware.CampaignStore.
func (c *Campaigns) Create(ctx context.Context, rec firmware.CampaignRecord, devs []firmware.DeviceState) error {
	if err := c.ok(); err != nil {
		return err
	}
	v, _ := json.Marshal(rec)
	_, err := c.db.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, c.db.Key("fw:camp"), rec.ID, v)
		p.HSet(ctx, c.db.Key("fw:camp:sms"), rec.ID, rec.SMSUsed)
		dk := c.db.Key("fw:camp:dev", rec.ID)
		p.Del(ctx, dk)
		args := make([]any, 0, 2*min(len(devs), 1000))
		for i, d := range devs {
			dv, _ := json.Marshal(d)
			args = append(args, d.Endpoint, dv)
			if len(args) == cap(args) || i == len(devs)-1 {
				p.HSet(ctx, dk, args...)
				args = args[:0]
			}
		}
		return nil
	})
	return wrap("campaign create "+rec.ID, err)
}

// SaveCampaign implements firmware.CampaignStore.
func (c *Campaigns) SaveCampaign(ctx context.Context, rec firmware.CampaignRecord) error {
	if err := c.ok(); err != nil {
		return err
	}
	v, _ := json.Marshal(rec)
	return wrap("campaign save "+rec.ID, c.db.c.HSet(ctx, c.db.Key("fw:camp"), rec.ID, v).Err())
}

// SaveDevice implements firmware.CampaignStore. When ctx carries a lease
// (WithLease: a campaign step's, in cluster mode) the write is fenced: it
// happens only while that grant still holds the lease, in the same script,
// else it fails with ErrLeaseLost.
func (c *Campaigns) SaveDevice(ctx context.Context, id string, d firmware.DeviceState, smsDelta int) error {
	if err := c.ok(); err != nil {
		return err
	}
	v, _ := json.Marshal(d)
	if l, ok := LeaseFrom(ctx); ok {
		n, err := campDeviceFenced.Run(ctx, c.db.c, []string{c.db.Key("lease", l.Name), c.db.Key("fw:camp:dev", id), c.db.Key("fw:camp:sms")},
			l.value(), d.Endpoint, v, smsDelta, id).Int()
		if err != nil {
			return wrap("campaign device "+d.Endpoint, err)
		}
		if n == 0 {
			return fmt.Errorf("campaign %s device %s: %w (token %d)", id, d.Endpoint, ErrLeaseLost, l.Token)
		}
		return nil
	}
	_, err := c.db.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, c.db.Key("fw:camp:dev", id), d.Endpoint, v)
		if smsDelta != 0 {
			p.HIncrBy(ctx, c.db.Key("fw:camp:sms"), id, int64(smsDelta))
		}
		return nil
	})
	return wrap("campaign device "+d.Endpoint, err)
}

// campDeviceFenced: KEYS lease, fw:camp:dev:<id>, fw:camp:sms; ARGV lease
// value, endpoint, state, sms delta, campaign id.
var campDeviceFenced = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
if ARGV[4] ~= '0' then redis.call('HINCRBY', KEYS[3], ARGV[5], ARGV[4]) end
return 1
`)

// GetDevice implements firmware.DeviceGetter.
func (c *Campaigns) GetDevice(ctx context.Context, id, ep string) (firmware.DeviceState, error) {
	var d firmware.DeviceState
	if err := c.ok(); err != nil {
		return d, err
	}
	b, err := c.db.c.HGet(ctx, c.db.Key("fw:camp:dev", id), ep).Bytes()
	if errors.Is(err, redis.Nil) {
		return d, fmt.Errorf("redisstore: campaign %s device %s: %w", id, ep, firmware.ErrNotFound)
	}
	if err != nil {
		return d, wrap("campaign device "+ep, err)
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("redisstore: campaign %s device %s: %w", id, ep, err)
	}
	return d, nil
}

// Delete implements firmware.CampaignStore.
func (c *Campaigns) Delete(ctx context.Context, id string) error {
	if err := c.ok(); err != nil {
		return err
	}
	_, err := c.db.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HDel(ctx, c.db.Key("fw:camp"), id)
		p.HDel(ctx, c.db.Key("fw:camp:sms"), id)
		p.Del(ctx, c.db.Key("fw:camp:dev", id))
		return nil
	})
	return wrap("campaign delete "+id, err)
}
