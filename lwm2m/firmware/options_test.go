package firmware_test

import (
	"context"
	"errors"
	"testing"

	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
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
