package outbox

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/internal/cfgcheck/cfgchecktest"
)

// TestOpenRefusesBadOptions: a negative limit (which used to mean the
// default) and a nil clock fail Open with ErrInvalidOption.
func TestOpenRefusesBadOptions(t *testing.T) {
	cases := []struct {
		name string
		opt  Option
	}{
		{"negative MaxEntries", WithLimits(Limits{MaxEntries: -1})},
		{"negative MaxBytes", WithLimits(Limits{MaxBytes: -1})},
		{"negative MaxAge", WithLimits(Limits{MaxAge: -time.Hour})},
		{"nil clock", WithClock(nil)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, err := Open(filepath.Join(t.TempDir(), "outbox.db"), c.opt)
			if !errors.Is(err, ErrInvalidOption) || o != nil {
				t.Fatalf("Open = %v, %v; want nil and ErrInvalidOption", o, err)
			}
		})
	}
	o, err := Open(filepath.Join(t.TempDir(), "outbox.db"), WithLimits(Limits{}), WithClock(time.Now))
	if err != nil {
		t.Fatal(err)
	}
	o.Close()
}

// TestNewWorkerRefuses: a negative WorkerConfig field (which used to mean
// the default), a BackoffMax below BackoffMin (which used to become 10 min)
// or a missing Outbox or Sender fails NewWorker with ErrInvalidOption
// naming it.
func TestNewWorkerRefuses(t *testing.T) {
	ob, err := Open(filepath.Join(t.TempDir(), "outbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	s := &fakeSender{}
	newW := func(ob *Outbox, s Sender, c WorkerConfig) func() error {
		return func() error { _, err := NewWorker(ob, s, c); return err }
	}
	cfgchecktest.Refuses(t, ErrInvalidOption, []cfgchecktest.Case{
		{Name: "nil Outbox", Field: "Outbox", Make: newW(nil, s, WorkerConfig{})},
		{Name: "nil Sender", Field: "Sender", Make: newW(ob, nil, WorkerConfig{})},
		{Name: "negative MaxInFlight", Field: "MaxInFlight", Make: newW(ob, s, WorkerConfig{MaxInFlight: -1})},
		{Name: "negative SendTimeout", Field: "SendTimeout", Make: newW(ob, s, WorkerConfig{SendTimeout: -time.Second})},
		{Name: "negative BackoffMin", Field: "BackoffMin", Make: newW(ob, s, WorkerConfig{BackoffMin: -time.Second})},
		{Name: "negative Poll", Field: "Poll", Make: newW(ob, s, WorkerConfig{Poll: -time.Second})},
		{Name: "BackoffMax below BackoffMin", Field: "BackoffMax 1s is below BackoffMin 2s",
			Make: newW(ob, s, WorkerConfig{BackoffMin: 2 * time.Second, BackoffMax: time.Second})},
	})
	w, err := NewWorker(ob, s, WorkerConfig{BackoffMin: 20 * time.Minute})
	if err != nil || w.cfg.BackoffMax != 20*time.Minute || w.cfg.MaxInFlight != 16 {
		t.Fatalf("NewWorker(defaults) = %+v, %v", w, err)
	}
}
