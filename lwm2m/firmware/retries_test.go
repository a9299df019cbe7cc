package firmware_test

import (
	"errors"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
)

// TestCampaignRetries: Spec.Retries nil is DefaultRetries, a pointer to n
// is n retries, a pointer to 0 is none (it used to be read as the default
// of 2: a campaign asked for no retries made two more attempts per
// device, each of which may cost SMS), and a negative count is refused.
// The target is not registered, a failure that may be transient.
func TestCampaignRetries(t *testing.T) {
	e := newEnv(t, &lights{})
	pkg, _ := firmware.BuildPackage("7.0", make([]byte, 100))
	info, err := e.store.PutBytes(t.Context(), "img", "7.0", pkg)
	if err != nil {
		t.Fatal(err)
	}
	m := newManager(t, e.upd)
	tests := []struct {
		name     string
		retries  *int
		attempts int
	}{
		{"nil is the default", nil, 1 + firmware.DefaultRetries},
		{"zero is none", new(0), 1},
		{"one", new(1), 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := m.Create(t.Context(), firmware.Spec{Image: info.ID, Endpoints: []string{"ghost"}, Retries: tc.retries,
				Backoff: time.Millisecond, MaxBackoff: time.Millisecond, Options: fast()})
			if err != nil {
				t.Fatal(err)
			}
			rep, err := m.Wait(ctxT(t, time.Minute), id)
			if err != nil {
				t.Fatal(err)
			}
			if r := rep.Spec.Retries; r == nil || *r != tc.attempts-1 {
				t.Fatalf("stored retries %v (nil: none stored), want %d", deref(r), tc.attempts-1)
			}
			if len(rep.Devices) != 1 || rep.Devices[0].State != firmware.DevFailed || rep.Devices[0].Attempts != tc.attempts {
				t.Fatalf("devices %+v, want one failed after %d attempts", rep.Devices, tc.attempts)
			}
		})
	}
	t.Run("negative is refused", func(t *testing.T) {
		_, err := m.Create(t.Context(), firmware.Spec{Image: info.ID, Endpoints: []string{"ghost"}, Retries: new(-1)})
		if !errors.Is(err, firmware.ErrInvalid) {
			t.Fatalf("err %v, want ErrInvalid", err)
		}
	})
}

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}
