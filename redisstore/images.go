package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
)

// Images is a firmware.ImageCatalog in Redis: the metadata of the firmware
// images, shared by the nodes. The images themselves are files named by
// their content (SHA-256) in each node's image directory: a directory
// shared by the nodes, or (cluster mode) fetched from the node that has
// them; firmware.Store.Open says firmware.ErrNotLocal meanwhile.
//
// Keys:
//
//	P fw:img   hash   image id -> firmware.ImageInfo (JSON)
type Images struct{ db *DB }

var _ firmware.ImageCatalog = (*Images)(nil)

// Images returns the deployment's image catalog.
func (d *DB) Images() *Images { return &Images{db: d} }

func (c *Images) ok() error {
	if c == nil || c.db == nil || c.db.c == nil {
		return ErrClosed
	}
	return nil
}

// Load implements firmware.ImageCatalog.
func (c *Images) Load(ctx context.Context) ([]firmware.ImageInfo, error) {
	if err := c.ok(); err != nil {
		return nil, err
	}
	all, err := c.db.c.HGetAll(ctx, c.db.Key("fw:img")).Result()
	if err != nil {
		return nil, wrap("images load", err)
	}
	out := make([]firmware.ImageInfo, 0, len(all))
	for id, v := range all {
		var info firmware.ImageInfo
		if err := json.Unmarshal([]byte(v), &info); err != nil {
			return nil, fmt.Errorf("redisstore: image %s: %w", id, err)
		}
		out = append(out, info)
	}
	return out, nil
}

// Get implements firmware.ImageCatalog.
func (c *Images) Get(ctx context.Context, id string) (firmware.ImageInfo, bool, error) {
	if err := c.ok(); err != nil {
		return firmware.ImageInfo{}, false, err
	}
	v, err := c.db.c.HGet(ctx, c.db.Key("fw:img"), id).Bytes()
	if errors.Is(err, redis.Nil) {
		return firmware.ImageInfo{}, false, nil
	}
	if err != nil {
		return firmware.ImageInfo{}, false, wrap("image get", err)
	}
	var info firmware.ImageInfo
	if err := json.Unmarshal(v, &info); err != nil {
		return firmware.ImageInfo{}, false, fmt.Errorf("redisstore: image %s: %w", id, err)
	}
	return info, true, nil
}

// Put implements firmware.ImageCatalog. The first node to store an image
// decides its metadata (HSETNX): the same bytes stored again elsewhere
// keep one record.
func (c *Images) Put(ctx context.Context, info firmware.ImageInfo) error {
	if err := c.ok(); err != nil {
		return err
	}
	v, _ := json.Marshal(info)
	return wrap("image put", c.db.c.HSetNX(ctx, c.db.Key("fw:img"), info.ID, v).Err())
}

// Delete implements firmware.ImageCatalog.
func (c *Images) Delete(ctx context.Context, id string) error {
	if err := c.ok(); err != nil {
		return err
	}
	return wrap("image delete", c.db.c.HDel(ctx, c.db.Key("fw:img"), id).Err())
}
