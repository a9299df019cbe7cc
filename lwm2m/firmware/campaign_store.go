package firmware

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// CampaignRecord is a campaign as a CampaignStore keeps it (its devices
// are kept apart, one DeviceState each).
type CampaignRecord struct {
	ID       string    `json:"id"`
	Spec     Spec      `json:"spec"`
	Version  string    `json:"version"`
	Status   string    `json:"status"`
	SMSUsed  int       `json:"sms_used"`
	Created  time.Time `json:"created"`
	Finished time.Time `json:"finished,omitzero"`
}

// CampaignStore keeps campaigns and each device's state in them durably:
// a Manager stores a device's state before each step it takes, so after a
// crash it knows which devices may have been sent Execute already (and
// never sends it again). BoltCampaigns is the embedded implementation;
// redisstore has one shared by the nodes of a cluster. Implementations are
// safe for concurrent use; when a method returns nil, the change survives
// a crash.
type CampaignStore interface {
	// Load returns every campaign and, by campaign ID, its devices.
	Load(ctx context.Context) ([]CampaignRecord, map[string][]DeviceState, error)
	// NextID returns a campaign number never returned before (also not
	// across restarts, nor after a Delete).
	NextID(ctx context.Context) (uint64, error)
	// Create stores a new campaign and all its devices in one step.
	Create(ctx context.Context, rec CampaignRecord, devs []DeviceState) error
	// SaveCampaign overwrites a campaign's record (status, finish time);
	// its SMSUsed is the store's own count (see SaveDevice), not rec's.
	SaveCampaign(ctx context.Context, rec CampaignRecord) error
	// SaveDevice stores device d of campaign id and adds smsDelta to the
	// campaign's SMSUsed, both or neither.
	SaveDevice(ctx context.Context, id string, d DeviceState, smsDelta int) error
	// Delete removes a campaign and its devices.
	Delete(ctx context.Context, id string) error
}

var (
	bktCampaigns = []byte("fw_campaigns")
	bktDevices   = []byte("fw_campaign_devices")
	bktCampMeta  = []byte("fw_campaign_meta")
	keyCampSeq   = []byte("seq")
)

// BoltCampaigns is a CampaignStore in a bbolt database (shared with other
// state of the daemon). Every change is one fsync'd transaction; device
// states of concurrent workers share transactions (bbolt's Batch).
//
// A zero BoltCampaigns refuses every call with ErrInvalid.
type BoltCampaigns struct{ db *bolt.DB }

func (s *BoltCampaigns) check() error {
	if s.db == nil {
		return fmt.Errorf("%w: campaign store not opened (NewBoltCampaigns)", ErrInvalid)
	}
	return nil
}

var _ CampaignStore = (*BoltCampaigns)(nil)

// NewBoltCampaigns creates the buckets it needs in db.
func NewBoltCampaigns(db *bolt.DB) (*BoltCampaigns, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: NewBoltCampaigns: nil database", ErrInvalidOption)
	}
	err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bktCampaigns, bktDevices, bktCampMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("firmware: campaigns: %w", err)
	}
	return &BoltCampaigns{db: db}, nil
}

func devKey(id, ep string) []byte { return []byte(id + "\x00" + ep) }

// Load implements CampaignStore.
func (s *BoltCampaigns) Load(context.Context) ([]CampaignRecord, map[string][]DeviceState, error) {
	if err := s.check(); err != nil {
		return nil, nil, err
	}
	var recs []CampaignRecord
	devs := map[string][]DeviceState{}
	err := s.db.View(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bktCampaigns).ForEach(func(k, v []byte) error {
			var r CampaignRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("campaign %s: %w", k, err)
			}
			recs = append(recs, r)
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bktDevices).ForEach(func(k, v []byte) error {
			id, _, _ := strings.Cut(string(k), "\x00")
			var d DeviceState
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("campaign device %q: %w", k, err)
			}
			devs[id] = append(devs[id], d)
			return nil
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("firmware: campaigns: %w", err)
	}
	return recs, devs, nil
}

// NextID implements CampaignStore: a sequence in the database, started
// above the highest campaign already stored (files of older versions had
// none).
func (s *BoltCampaigns) NextID(context.Context) (uint64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	var n uint64
	err := s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bktCampMeta)
		if v := meta.Get(keyCampSeq); len(v) > 0 {
			n, _ = strconv.ParseUint(string(v), 10, 64)
		}
		_ = tx.Bucket(bktCampaigns).ForEach(func(k, _ []byte) error {
			if x, err := strconv.ParseUint(strings.TrimPrefix(string(k), "c"), 10, 64); err == nil && x > n {
				n = x
			}
			return nil
		})
		n++
		return meta.Put(keyCampSeq, []byte(strconv.FormatUint(n, 10)))
	})
	if err != nil {
		return 0, fmt.Errorf("firmware: campaign id: %w", err)
	}
	return n, nil
}

// Create implements CampaignStore.
func (s *BoltCampaigns) Create(_ context.Context, rec CampaignRecord, devs []DeviceState) error {
	if err := s.check(); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		v, _ := json.Marshal(rec)
		if err := tx.Bucket(bktCampaigns).Put([]byte(rec.ID), v); err != nil {
			return err
		}
		b := tx.Bucket(bktDevices)
		for _, d := range devs {
			v, _ := json.Marshal(d)
			if err := b.Put(devKey(rec.ID, d.Endpoint), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// SaveCampaign implements CampaignStore.
func (s *BoltCampaigns) SaveCampaign(_ context.Context, rec CampaignRecord) error {
	if err := s.check(); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktCampaigns)
		var old CampaignRecord
		if v := b.Get([]byte(rec.ID)); v != nil && json.Unmarshal(v, &old) == nil {
			rec.SMSUsed = old.SMSUsed
		}
		v, _ := json.Marshal(rec)
		return b.Put([]byte(rec.ID), v)
	})
}

// SaveDevice implements CampaignStore.
func (s *BoltCampaigns) SaveDevice(_ context.Context, id string, d DeviceState, smsDelta int) error {
	if err := s.check(); err != nil {
		return err
	}
	v, _ := json.Marshal(d)
	return s.db.Batch(func(tx *bolt.Tx) error {
		if smsDelta != 0 {
			b := tx.Bucket(bktCampaigns)
			var rec CampaignRecord
			if cv := b.Get([]byte(id)); cv != nil {
				if err := json.Unmarshal(cv, &rec); err != nil {
					return fmt.Errorf("campaign %s: %w", id, err)
				}
				rec.SMSUsed += smsDelta
				rv, _ := json.Marshal(rec)
				if err := b.Put([]byte(id), rv); err != nil {
					return err
				}
			}
		}
		return tx.Bucket(bktDevices).Put(devKey(id, d.Endpoint), v)
	})
}

// Delete implements CampaignStore.
func (s *BoltCampaigns) Delete(_ context.Context, id string) error {
	if err := s.check(); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bktCampaigns).Delete([]byte(id)); err != nil {
			return err
		}
		c := tx.Bucket(bktDevices).Cursor()
		pfx := []byte(id + "\x00")
		for k, _ := c.Seek(pfx); k != nil && strings.HasPrefix(string(k), string(pfx)); k, _ = c.Seek(pfx) {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
}
