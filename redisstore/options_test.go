package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/internal/cfgcheck/cfgchecktest"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/redisstore"
	"github.com/m2mbearer/m2mbearer/redisstore/redistest"
)

// TestConstructorsRefuse: a negative timeout (which used to take the
// default), a nil client, or a negative registry or bindings bound fails
// the constructor with ErrInvalidOption naming it. Open refuses before it
// dials: the URL names a port nobody listens on.
func TestConstructorsRefuse(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	db := openDB(t, srv, "refuse:", "n")
	ctx := context.Background()
	open := func(o redisstore.Options) func() error {
		return func() error {
			d, err := redisstore.Open(ctx, "redis://127.0.0.1:1/0", o)
			if err == nil {
				d.Close()
			}
			return err
		}
	}
	cfgchecktest.Refuses(t, redisstore.ErrInvalidOption, []cfgchecktest.Case{
		{Name: "Open negative DialTimeout", Field: "DialTimeout", Make: open(redisstore.Options{DialTimeout: -time.Second})},
		{Name: "Open negative OpTimeout", Field: "OpTimeout", Make: open(redisstore.Options{OpTimeout: -time.Second})},
		{Name: "New nil client", Field: "client", Make: func() error { _, err := redisstore.New(nil, redisstore.Options{}); return err }},
		{Name: "OpenRegistry negative MaxRegistrations", Field: "MaxRegistrations", Make: func() error {
			_, err := db.OpenRegistry(ctx, redisstore.RegistryOptions{Options: registry.Options{MaxRegistrations: -1}})
			return err
		}},
		{Name: "OpenRegistry negative Grace", Field: "Grace", Make: func() error {
			_, err := db.OpenRegistry(ctx, redisstore.RegistryOptions{Options: registry.Options{Grace: -time.Second}})
			return err
		}},
		{Name: "OpenBindings negative max", Field: "max", Make: func() error { _, err := db.OpenBindings(ctx, -1); return err }},
	})
}
