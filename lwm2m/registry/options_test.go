package registry

import (
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/m2mbearer/m2mbearer/internal/cfgcheck/cfgchecktest"
)

// TestConstructorsRefuse: a negative Options field (MaxRegistrations used
// to become 1,000,000, Grace 0) fails NewMemory, OpenBolt and NewBolt
// with ErrInvalidOption naming it; OpenBolt refuses before making the file.
func TestConstructorsRefuse(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "reg.db")
	mem := func(o Options) func() error {
		return func() error { _, err := NewMemory(o); return err }
	}
	open := func(o Options) func() error {
		return func() error {
			b, err := OpenBolt(file, BoltOptions{Options: o})
			if err == nil {
				b.Close()
			}
			return err
		}
	}
	cfgchecktest.Refuses(t, ErrInvalidOption, []cfgchecktest.Case{
		{Name: "NewMemory negative MaxRegistrations", Field: "MaxRegistrations", Make: mem(Options{MaxRegistrations: -1})},
		{Name: "NewMemory negative Grace", Field: "Grace", Make: mem(Options{Grace: -time.Second})},
		{Name: "OpenBolt negative MaxRegistrations", Field: "MaxRegistrations", Make: open(Options{MaxRegistrations: -1})},
		{Name: "OpenBolt negative Grace", Field: "Grace", Make: open(Options{Grace: -time.Second})},
	})
	if m, _ := filepath.Glob(file); len(m) != 0 {
		t.Fatalf("OpenBolt made %v before refusing", m)
	}
	db, err := bolt.Open(filepath.Join(dir, "shared.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfgchecktest.Refuses(t, ErrInvalidOption, []cfgchecktest.Case{
		{Name: "NewBolt negative MaxRegistrations", Field: "MaxRegistrations", Make: func() error {
			_, err := NewBolt(db, BoltOptions{Options: Options{MaxRegistrations: -1}})
			return err
		}},
	})
	m, err := NewMemory(Options{})
	if err != nil || m.index().opts.MaxRegistrations != 1_000_000 {
		t.Fatalf("NewMemory(Options{}) = %v, %v", m, err)
	}
}
