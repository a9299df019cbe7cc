package firmware_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

func openDB(t testing.TB, dir string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, "campaigns.db"), 0o600, &bolt.Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// newManager opens a campaign Manager on a new database; both are closed
// at the end of the test.
func newManager(t testing.TB, upd *firmware.Updater) *firmware.Manager {
	t.Helper()
	db := openDB(t, t.TempDir())
	t.Cleanup(func() { db.Close() })
	m, err := firmware.NewManager(db, upd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// fleet starts n lights: a third pull-or-push (IP, pulls), a third
// push-only, a third sleeping in queue mode (woken by the test waker).
func fleet(t testing.TB, e *env, ls *lights, prefix string, n int) []*light {
	t.Helper()
	out := make([]*light, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			o := lightOpts{}
			switch i % 3 {
			case 1:
				o.pushOnly = true
			case 2:
				o.queue = true
			}
			l := newLight(t, e, fmt.Sprintf("%s%05d", prefix, i), o)
			ls.add(l)
			out[i] = l
		}()
	}
	wg.Wait()
	return out
}

func TestCampaignFleet(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 150
	}
	const nSMS = 6
	ls := &lights{}
	e := newEnvSMS(t, ls, nSMS)
	start := time.Now()
	lights := fleet(t, e, ls, "sl-", n-nSMS)
	for i := range nSMS {
		lights = append(lights, newSMSLight(t, e, fmt.Sprintf("sl-sms-%d", i), i))
	}
	t.Logf("%d lights registered in %v", n, time.Since(start))
	img := image(t, e, "2.1", 1500)
	db := openDB(t, t.TempDir())
	defer db.Close()
	var hookMu sync.Mutex
	events := map[string]int{}
	m, err := firmware.NewManager(db, e.upd, firmware.WithCampaignHook(func(ev firmware.CampaignEvent) {
		hookMu.Lock()
		events[ev.Device.State]++
		hookMu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	o := fast()
	o.AwakeWindow = 5 * time.Second
	start = time.Now()
	// SMS-only lights are pushed over SMS; the budget covers 4 of the 6.
	o.AllowSMSPush = true
	o.NoObserve = false
	plan, err := e.upd.Plan(t.Context(), "sl-sms-0", img.ID, o)
	if err != nil {
		t.Fatal(err)
	}
	id, err := m.Create(t.Context(), firmware.Spec{Name: "fleet", Image: img.ID, Prefix: "sl-", Concurrency: 100,
		Backoff: 100 * time.Millisecond, SMSBudget: 4 * plan.SMS, Options: o})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := m.Wait(ctxT(t, 5*time.Minute), id)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("campaign over %d lights: %v, counts %v", n, time.Since(start), rep.Counts)
	if rep.Status != firmware.CampaignDone || rep.Counts[firmware.DevDone] != n-2 || rep.Counts[firmware.DevSkipped] != 2 ||
		rep.Total != n || rep.SMSUsed != 4*plan.SMS {
		for _, d := range rep.Devices {
			if d.State != firmware.DevDone {
				t.Errorf("%s: %s %s", d.Endpoint, d.State, d.Error)
			}
		}
		t.Fatalf("report %s %v, SMS used %d of %d", rep.Status, rep.Counts, rep.SMSUsed, 4*plan.SMS)
	}
	methods := map[string]int{}
	for _, d := range rep.Devices {
		methods[d.Method]++
		if d.State == firmware.DevSkipped && (!strings.Contains(d.Error, "budget") || d.Reason != firmware.ReasonSMSBudget) {
			t.Fatalf("skipped for %q (reason %q)", d.Error, d.Reason)
		}
	}
	if rep.Reasons[firmware.ReasonSMSBudget] != 2 || len(rep.Reasons) != 1 {
		t.Fatalf("reasons %v, want 2 over the SMS budget", rep.Reasons)
	}
	if methods["push"] == 0 || methods["pull"] == 0 {
		t.Fatalf("methods %v", methods)
	}
	t.Logf("methods %v, SMS used %d (%d per SMS-only light)", methods, rep.SMSUsed, plan.SMS)
	woken := 0
	for _, l := range lights {
		v, _ := l.c.Get(path.Resource(3, 0, 3))
		if strings.HasPrefix(l.c.Name(), "sl-sms-") && l.dev.Applied() == 0 && v.Str() == "1.0" {
			continue // skipped: over budget
		}
		if v.Str() != "2.1" || l.dev.Applied() != 1 {
			t.Fatalf("%s: firmware %q applied %d", l.c.Name(), v.Str(), l.dev.Applied())
		}
		l.sleepy.mu.Lock()
		woken += l.sleepy.wakes
		if l.sleepy.sleeps && l.sleepy.wakes != 1 {
			t.Errorf("%s woken %d times", l.c.Name(), l.sleepy.wakes)
		}
		l.sleepy.mu.Unlock()
	}
	// Each sleeping light is woken exactly once for its whole update (the
	// version check before it included): its registration after the
	// update is the confirmation, no second wake-up.
	if woken != (n-nSMS)/3 {
		t.Fatalf("%d wake-ups for %d sleeping lights, want one each", woken, (n-nSMS)/3)
	}
	hookMu.Lock()
	if events[firmware.DevDone] != n-2 || events[firmware.DevSkipped] != 2 {
		t.Fatalf("hook events %v", events)
	}
	hookMu.Unlock()

	// The same campaign again updates nobody: every light is on 2.1.
	id2, err := m.Create(t.Context(), firmware.Spec{Name: "again", Image: img.ID, Endpoints: []string{"sl-00000", "sl-00001"},
		Options: o})
	if err != nil {
		t.Fatal(err)
	}
	rep, err = m.Wait(ctxT(t, time.Minute), id2)
	if err != nil || rep.Counts[firmware.DevDone] != 2 || rep.Reasons[firmware.ReasonUpToDate] != 2 {
		t.Fatalf("second campaign %v %v %v", rep.Counts, rep.Reasons, err)
	}
	if lights[0].dev.Applied() != 1 || lights[1].dev.Applied() != 1 {
		t.Fatal("updated twice")
	}
}

func TestCampaignCorruptImage(t *testing.T) {
	ls := &lights{}
	e := newEnv(t, ls)
	n := 12
	fleet(t, e, ls, "bad-", n)
	pkg, _ := firmware.BuildPackage("6.6", make([]byte, 2000))
	pkg[len(pkg)-1] ^= 1
	info, err := e.store.PutBytes(t.Context(), "corrupt", "6.6", pkg)
	if err != nil {
		t.Fatal(err)
	}
	m := newManager(t, e.upd)
	o := fast()
	o.AwakeWindow = 5 * time.Second
	id, err := m.Create(t.Context(), firmware.Spec{Image: info.ID, Prefix: "bad-", Concurrency: 4, Backoff: 50 * time.Millisecond, Options: o})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := m.Wait(ctxT(t, 2*time.Minute), id)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Status != firmware.CampaignDone || rep.Failed() != n {
		t.Fatalf("report %s %v", rep.Status, rep.Counts)
	}
	for _, d := range rep.Devices {
		if d.Result != firmware.ResultIntegrity || d.Attempts != 1 {
			t.Fatalf("%+v", d)
		}
	}
}

func TestCampaignPauseResumeCancel(t *testing.T) {
	ls := &lights{}
	e := newEnv(t, ls)
	n := 9
	fleet(t, e, ls, "pr-", n)
	img := image(t, e, "3.0", 500)
	m := newManager(t, e.upd)
	o := fast()
	o.AwakeWindow = 5 * time.Second
	// Pause at once: at most Concurrency devices start.
	id, err := m.Create(t.Context(), firmware.Spec{Image: img.ID, Prefix: "pr-", Concurrency: 1, Options: o})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Pause(id); err != nil {
		t.Fatal(err)
	}
	if err := m.Pause(id); err == nil {
		t.Fatal("double pause accepted")
	}
	rep, _ := m.Status(id, false)
	if rep.Status != firmware.CampaignPaused {
		t.Fatal(rep.Status)
	}
	if err := m.Resume(id); err != nil {
		t.Fatal(err)
	}
	rep, err = m.Wait(ctxT(t, time.Minute), id)
	if err != nil || rep.Counts[firmware.DevDone] != n {
		t.Fatalf("%v %v", rep.Counts, err)
	}
	// Cancel a campaign that waits on a paused gate: nothing runs.
	img2 := image(t, e, "3.1", 500)
	id2, err := m.Create(t.Context(), firmware.Spec{Image: img2.ID, Prefix: "pr-", Concurrency: 1, Options: o})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Cancel(id2); err != nil {
		t.Fatal(err)
	}
	rep, _ = m.Status(id2, true)
	if rep.Status != firmware.CampaignCancelled || rep.Counts[firmware.DevCancelled]+rep.Counts[firmware.DevDone] != n {
		t.Fatalf("%s %v", rep.Status, rep.Counts)
	}
	if len(m.List()) != 2 {
		t.Fatal("list")
	}
	if err := m.Delete(id2); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Status(id2, false); err == nil {
		t.Fatal("deleted campaign still there")
	}
}
