package firmware_test

import (
	"errors"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

func TestUpdateUDP(t *testing.T) {
	for _, tc := range []struct {
		name   string
		prefer firmware.Method
		size   int
	}{
		{"push", firmware.Push, 5000},
		{"pull", firmware.Pull, 5000},
		{"push-one-block", firmware.Push, 100},
		{"pull-one-block", firmware.Pull, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			l := newLight(t, e, "sl-"+tc.name, lightOpts{})
			img := image(t, e, "2.0", tc.size)
			o := fast()
			o.Prefer = tc.prefer
			var steps []firmware.Step
			o.Progress = func(s firmware.Step) { steps = append(steps, s) }
			res, err := e.upd.Update(ctxT(t, 20*time.Second), "sl-"+tc.name, img.ID, o)
			if err != nil {
				t.Fatal(err)
			}
			if res.Plan.Method != tc.prefer || res.Version != "2.0" {
				t.Fatalf("plan %+v version %q", res.Plan, res.Version)
			}
			if v, _ := l.c.Get(path.Resource(3, 0, 3)); v.Str() != "2.0" || l.dev.Applied() != 1 {
				t.Fatalf("device firmware %q applied %d", v.Str(), l.dev.Applied())
			}
			if steps[0] != firmware.StepPlanned || steps[len(steps)-1] != firmware.StepVerified {
				t.Fatalf("steps %v", steps)
			}
		})
	}
}

func TestUpdateCorruptImage(t *testing.T) {
	for _, m := range []firmware.Method{firmware.Push, firmware.Pull} {
		t.Run(m.String(), func(t *testing.T) {
			e := newEnv(t, nil)
			l := newLight(t, e, "sl-bad", lightOpts{})
			pkg, _ := firmware.BuildPackage("6.6", make([]byte, 3000))
			pkg[len(pkg)-10] ^= 0xff
			info, err := e.store.PutBytes(t.Context(), "bad", "6.6", pkg)
			if err != nil {
				t.Fatal(err)
			}
			o := fast()
			o.Prefer = m
			_, err = e.upd.Update(ctxT(t, 20*time.Second), "sl-bad", info.ID, o)
			var re *firmware.ResultError
			if !errors.As(err, &re) || re.Result != firmware.ResultIntegrity {
				t.Fatalf("err = %v, want Update Result 5", err)
			}
			if v, _ := l.c.Get(path.Resource(3, 0, 3)); v.Str() != "1.0" || l.dev.Applied() != 0 {
				t.Fatalf("device firmware %q applied %d", v.Str(), l.dev.Applied())
			}
		})
	}
}
