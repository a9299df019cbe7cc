package firmwaretest

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
)

// CampaignFactory makes the campaign stores under test.
type CampaignFactory struct {
	// New returns an empty store; the suite does not close it.
	New func(t *testing.T) firmware.CampaignStore
	// Reopen returns a store over s's data after a restart; nil when not
	// durable.
	Reopen func(t *testing.T, s firmware.CampaignStore) firmware.CampaignStore
}

var ctx = context.Background()

func camp(id string) firmware.CampaignRecord {
	return firmware.CampaignRecord{ID: id, Spec: firmware.Spec{Name: "spring", Image: "img", Concurrency: 3, Retries: new(2)},
		Version: "2.0.0", Status: firmware.CampaignRunning, Created: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
}

func devs(n int) []firmware.DeviceState {
	out := make([]firmware.DeviceState, n)
	for i := range out {
		out[i] = firmware.DeviceState{Endpoint: fmt.Sprintf("light-%03d", i), State: firmware.DevPending}
	}
	return out
}

func load(t *testing.T, s firmware.CampaignStore) (map[string]firmware.CampaignRecord, map[string][]firmware.DeviceState) {
	t.Helper()
	recs, ds, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]firmware.CampaignRecord{}
	for _, r := range recs {
		m[r.ID] = r
	}
	for _, l := range ds {
		sort.Slice(l, func(i, j int) bool { return l[i].Endpoint < l[j].Endpoint })
	}
	return m, ds
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// RunCampaigns runs every CampaignStore case against f.
func RunCampaigns(t *testing.T, f CampaignFactory) {
	for _, c := range []struct {
		name    string
		durable bool
		run     func(t *testing.T, f CampaignFactory)
	}{
		{"create then load", false, createThenLoad},
		{"next id never repeats", false, nextIDNeverRepeats},
		{"device states and SMS used move together", false, deviceStatesAndSMS},
		{"save campaign keeps the store's SMS count", false, saveCampaignKeepsSMS},
		{"concurrent device saves add up", false, concurrentDeviceSaves},
		{"delete removes the campaign and its devices only", false, deleteRemovesOnlyIt},
		{"durable across a restart", true, durableAcrossRestart},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.durable && f.Reopen == nil {
				t.Skip("not durable")
			}
			c.run(t, f)
		})
	}
}

// createThenLoad is the case "create then load".
func createThenLoad(t *testing.T, f CampaignFactory) {
	s := f.New(t)
	must(t, s.Create(ctx, camp("c1"), devs(5)))
	recs, ds := load(t, s)
	r := recs["c1"]
	if len(recs) != 1 || r.Version != "2.0.0" || r.Spec.Name != "spring" || r.Spec.Concurrency != 3 || !r.Created.Equal(camp("c1").Created) {
		t.Fatalf("records %+v", recs)
	}
	if len(ds["c1"]) != 5 || ds["c1"][4].Endpoint != "light-004" || ds["c1"][4].State != firmware.DevPending {
		t.Fatalf("devices %+v", ds)
	}
}

// nextIDNeverRepeats is the case "next id never repeats".
func nextIDNeverRepeats(t *testing.T, f CampaignFactory) {
	s := f.New(t)
	var last uint64
	for range 5 {
		n, err := s.NextID(ctx)
		must(t, err)
		if n <= last {
			t.Fatalf("NextID %d after %d", n, last)
		}
		last = n
		id := fmt.Sprintf("c%d", n)
		must(t, s.Create(ctx, camp(id), devs(1)))
		must(t, s.Delete(ctx, id))
	}
}

// deviceStatesAndSMS is the case "device states and SMS used move together".
func deviceStatesAndSMS(t *testing.T, f CampaignFactory) {
	s := f.New(t)
	must(t, s.Create(ctx, camp("c1"), devs(3)))
	d := firmware.DeviceState{Endpoint: "light-001", State: firmware.DevRunning, Step: firmware.StepDelivering, Attempts: 1, SMS: 4,
		Started: time.Date(2026, 3, 1, 1, 0, 0, 0, time.UTC)}
	must(t, s.SaveDevice(ctx, "c1", d, 4))
	d.State, d.Step, d.Error = firmware.DevFailed, firmware.StepUpdating, "device said no"
	must(t, s.SaveDevice(ctx, "c1", d, 0))
	recs, ds := load(t, s)
	if recs["c1"].SMSUsed != 4 {
		t.Fatalf("SMSUsed %d", recs["c1"].SMSUsed)
	}
	got := ds["c1"][1]
	if got.State != firmware.DevFailed || got.Step != firmware.StepUpdating || got.Error != "device said no" || got.SMS != 4 || !got.Started.Equal(d.Started) {
		t.Fatalf("device %+v", got)
	}
}

// saveCampaignKeepsSMS is the case "save campaign keeps the store's SMS count".
func saveCampaignKeepsSMS(t *testing.T, f CampaignFactory) {
	s := f.New(t)
	must(t, s.Create(ctx, camp("c1"), devs(2)))
	must(t, s.SaveDevice(ctx, "c1", firmware.DeviceState{Endpoint: "light-000", State: firmware.DevRunning}, 3))
	r := camp("c1")
	r.Status, r.Finished, r.SMSUsed = firmware.CampaignPaused, time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), 999
	must(t, s.SaveCampaign(ctx, r))
	recs, _ := load(t, s)
	if got := recs["c1"]; got.Status != firmware.CampaignPaused || !got.Finished.Equal(r.Finished) || got.SMSUsed != 3 {
		t.Fatalf("record %+v", got)
	}
}

// concurrentDeviceSaves is the case "concurrent device saves add up".
func concurrentDeviceSaves(t *testing.T, f CampaignFactory) {
	s := f.New(t)
	must(t, s.Create(ctx, camp("c1"), devs(40)))
	var wg sync.WaitGroup
	for i, d := range devs(40) {
		wg.Go(func() {
			d.State, d.SMS = firmware.DevRunning, i%3
			if err := s.SaveDevice(ctx, "c1", d, i%3); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	want := 0
	for i := range 40 {
		want += i % 3
	}
	recs, ds := load(t, s)
	if recs["c1"].SMSUsed != want {
		t.Fatalf("SMSUsed %d, want %d", recs["c1"].SMSUsed, want)
	}
	for _, d := range ds["c1"] {
		if d.State != firmware.DevRunning {
			t.Fatalf("device %+v", d)
		}
	}
}

// deleteRemovesOnlyIt is the case "delete removes the campaign and its devices only".
func deleteRemovesOnlyIt(t *testing.T, f CampaignFactory) {
	s := f.New(t)
	must(t, s.Create(ctx, camp("c1"), devs(3)))
	must(t, s.Create(ctx, camp("c10"), devs(2)))
	must(t, s.Delete(ctx, "c1"))
	recs, ds := load(t, s)
	if len(recs) != 1 || len(ds["c1"]) != 0 || len(ds["c10"]) != 2 {
		t.Fatalf("after delete %v %v", recs, ds)
	}
}

// durableAcrossRestart is the case "durable across a restart".
func durableAcrossRestart(t *testing.T, f CampaignFactory) {
	s := f.New(t)
	n, err := s.NextID(ctx)
	must(t, err)
	id := fmt.Sprintf("c%d", n)
	must(t, s.Create(ctx, camp(id), devs(2)))
	must(t, s.SaveDevice(ctx, id, firmware.DeviceState{Endpoint: "light-001", State: firmware.DevRunning, Step: firmware.StepUpdating}, 2))
	s = f.Reopen(t, s)
	recs, ds := load(t, s)
	if recs[id].SMSUsed != 2 || ds[id][1].Step != firmware.StepUpdating {
		t.Fatalf("after restart %+v %+v", recs, ds)
	}
	if m, err := s.NextID(ctx); err != nil || m <= n {
		t.Fatalf("NextID after restart %d (before %d) %v", m, n, err)
	}
}
