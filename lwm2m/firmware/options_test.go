package firmware_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/internal/cfgcheck/cfgchecktest"
	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// TestOptionsRefuse: an option given a value out of its range fails
// OpenStore or NewManagerOn with ErrInvalid (WithMaxBytes(0) used to make
// a store that took nothing; WithShared without Holds was ignored, its
// negative Poll became 1 s).
func TestOptionsRefuse(t *testing.T) {
	stores := []struct {
		name string
		opt  firmware.StoreOption
	}{
		{"WithMaxBytes(0)", firmware.WithMaxBytes(0)},
		{"WithMaxBytes(-1)", firmware.WithMaxBytes(-1)},
		{"WithMaxImages(0)", firmware.WithMaxImages(0)},
		{"WithMaxImageBytes(0)", firmware.WithMaxImageBytes(0)},
	}
	for _, tc := range stores {
		t.Run(tc.name, func(t *testing.T) {
			s, err := firmware.OpenStore(t.TempDir(), tc.opt)
			if !errors.Is(err, firmware.ErrInvalid) || s != nil {
				t.Fatalf("OpenStore = %v, %v; want nil and ErrInvalid", s, err)
			}
		})
	}
	t.Run("image bound above the store's", func(t *testing.T) {
		s, err := firmware.OpenStore(t.TempDir(), firmware.WithMaxBytes(100), firmware.WithMaxImageBytes(101))
		if !errors.Is(err, firmware.ErrInvalid) || s != nil {
			t.Fatalf("OpenStore = %v, %v; want nil and ErrInvalid", s, err)
		}
	})
	lease := func(ctx context.Context, _ string) (context.Context, func(), error) { return ctx, func() {}, nil }
	holds := func(string) bool { return true }
	managers := []struct {
		name string
		opt  firmware.ManagerOption
	}{
		{"WithMaxCampaigns(0)", firmware.WithMaxCampaigns(0)},
		{"WithMaxDevices(-1)", firmware.WithMaxDevices(-1)},
		{"WithShared without Holds", firmware.WithShared(firmware.Shared{Lease: lease})},
		{"WithShared without Lease", firmware.WithShared(firmware.Shared{Holds: holds})},
		{"WithShared negative Poll", firmware.WithShared(firmware.Shared{Holds: holds, Lease: lease, Poll: -1})},
	}
	for _, tc := range managers {
		t.Run(tc.name, func(t *testing.T) {
			m, err := firmware.NewManagerOn(nil, nil, tc.opt)
			if !errors.Is(err, firmware.ErrInvalid) || m != nil {
				t.Fatalf("NewManagerOn = %v, %v; want nil and ErrInvalid", m, err)
			}
		})
	}
}

// TestUpdaterRefuses: NewUpdater without its Server or Store, or with a
// negative MaxWaiters (which used to become 100,000), and NewDevice with a
// negative MaxPackage or PullTimeout (defaults before), fail with
// ErrInvalidOption; so do an update, a version read and a campaign given
// negative per-update Options (which used to take the defaults), before
// anything is sent. ErrInvalidOption is a kind of ErrInvalid.
func TestUpdaterRefuses(t *testing.T) {
	store, err := firmware.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(new(registry.Memory))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	newU := func(c firmware.Config) func() error {
		return func() error {
			u, err := firmware.NewUpdater(c)
			if err == nil {
				u.Close()
			}
			return err
		}
	}
	upd, err := firmware.NewUpdater(firmware.Config{Server: srv, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	defer upd.Close()
	m := newManager(t, upd)
	ctx := context.Background()
	update := func(o firmware.Options) func() error {
		return func() error { _, err := upd.Update(ctx, "light-1", "img", o); return err }
	}
	version := func(o firmware.Options) func() error {
		return func() error { _, err := upd.Version(ctx, "light-1", o); return err }
	}
	campaign := func(o firmware.Options) func() error {
		return func() error {
			_, err := m.Create(ctx, firmware.Spec{Image: "img", Endpoints: []string{"light-1"}, Options: o})
			return err
		}
	}
	cases := []cfgchecktest.Case{
		{Name: "NewUpdater without Server", Field: "Server", Make: newU(firmware.Config{Store: store})},
		{Name: "NewUpdater without Store", Field: "Store", Make: newU(firmware.Config{Server: srv})},
		{Name: "NewUpdater negative MaxWaiters", Field: "MaxWaiters", Make: newU(firmware.Config{Server: srv, Store: store, MaxWaiters: -1})},
		{Name: "Update negative PollInterval", Field: "PollInterval", Make: update(firmware.Options{PollInterval: -time.Second})},
		{Name: "Update negative DownloadTimeout", Field: "DownloadTimeout", Make: update(firmware.Options{DownloadTimeout: -time.Second})},
		{Name: "Update negative UpdateTimeout", Field: "UpdateTimeout", Make: update(firmware.Options{UpdateTimeout: -time.Second})},
		{Name: "Update negative WakeTimeout", Field: "WakeTimeout", Make: update(firmware.Options{WakeTimeout: -time.Second})},
		{Name: "Update negative AwakeWindow", Field: "AwakeWindow", Make: update(firmware.Options{AwakeWindow: -time.Second})},
		{Name: "Update negative MaxSMS", Field: "MaxSMS", Make: update(firmware.Options{MaxSMS: -1})},
		{Name: "Version negative WakeTimeout", Field: "WakeTimeout", Make: version(firmware.Options{WakeTimeout: -time.Second})},
		{Name: "Create negative UpdateTimeout", Field: "UpdateTimeout", Make: campaign(firmware.Options{UpdateTimeout: -time.Second})},
		{Name: "NewDevice negative MaxPackage", Field: "MaxPackage", Make: func() error {
			_, err := firmware.NewDevice(nil, firmware.DeviceConfig{MaxPackage: -1})
			return err
		}},
		{Name: "NewDevice negative PullTimeout", Field: "PullTimeout", Make: func() error {
			_, err := firmware.NewDevice(nil, firmware.DeviceConfig{PullTimeout: -time.Second})
			return err
		}},
	}
	cfgchecktest.Refuses(t, firmware.ErrInvalidOption, cases)
	cfgchecktest.Refuses(t, firmware.ErrInvalid, cases[:1])
}
