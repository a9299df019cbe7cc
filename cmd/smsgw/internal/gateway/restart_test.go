package gateway

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
)

// sleepingLightConfig is a gateway on dir with one queue-mode light (awake
// 2 s after each contact) and the given SMSC latency.
func sleepingLightConfig(dir string, latency time.Duration) *config.Config {
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.API.Listen, cfg.LwM2M.UDP, cfg.LwM2M.DTLS, cfg.API.Token = "127.0.0.1:0", "127.0.0.1:0", "", testToken
	cfg.Simulator.Fleet = config.Fleet{Queue: 1, Awake: 2 * time.Second}
	cfg.Simulator.Latency, cfg.Simulator.SendTime = latency, 10*time.Millisecond
	return cfg
}

// waitAsleep waits until the API reports ep asleep.
func waitAsleep(t *testing.T, a apiClient, ep string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, d := a.do("GET", "/devices/"+ep, ""); d["awake"] == false {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never asleep", ep)
		}
	}
}

// TestShutdownKeepsQueuedWork queues a read for a sleeping light, shuts the
// gateway down before the SMS wake-up can arrive (10 s of SMSC latency), and
// starts a new gateway on the same data dir: the request is still there and
// is answered once the light shows up again.
func TestShutdownKeepsQueuedWork(t *testing.T) {
	dir := t.TempDir()
	mk := func(latency time.Duration) *config.Config { return sleepingLightConfig(dir, latency) }
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	g, err := New(ctx, mk(10*time.Second), log)
	if err != nil {
		t.Fatal(err)
	}
	a := apiClient{t, g.Info().API}
	waitFleet(t, a, 1)
	waitAsleep(t, a, "light-queue-1")
	code, v := a.do("GET", "/devices/light-queue-1/data/3/0/2", "")
	if code != 202 {
		t.Fatalf("queued read: %d %v", code, v)
	}
	id := uint64(v["job"].(map[string]any)["id"].(float64))
	if err := g.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	g2, err := New(ctx, mk(20*time.Millisecond), log)
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Shutdown(context.Background())
	rec, err := g2.qm.Wait(ctx, id)
	if err != nil || rec.State != queue.StateDone || rec.Result == nil || rec.Result.Code != 0x45 {
		t.Fatalf("job %d after restart: %+v %v", id, rec, err)
	}
	a2 := apiClient{t, g2.Info().API}
	if code, v := a2.do("GET", "/jobs/"+itoa(int(id)), ""); code != 200 || v["state"] != "done" {
		t.Fatalf("job over the API after restart: %d %v", code, v)
	}
}

// TestShutdownKeepsFirmwareJob starts a single-device firmware update of a
// sleeping light and shuts the gateway down while the SMS wake-up is still
// in the (slow) network; a new gateway on the same data dir resumes the
// job (it is a one-device campaign in campaigns.db) and the light applies
// the update once.
func TestShutdownKeepsFirmwareJob(t *testing.T) {
	dir := t.TempDir()
	mk := func(latency time.Duration) *config.Config { return sleepingLightConfig(dir, latency) }
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	g, err := New(ctx, mk(10*time.Second), log)
	if err != nil {
		t.Fatal(err)
	}
	a := apiClient{t, g.Info().API}
	waitFleet(t, a, 1)
	pkg, err := firmware.BuildPackage("2.0.0", bytes.Repeat([]byte("streetlight firmware "), 100))
	if err != nil {
		t.Fatal(err)
	}
	code, img := a.upload("name=main&version=2.0.0&sha256="+sum(pkg), pkg)
	if code != 201 {
		t.Fatalf("upload: %d %v", code, img)
	}
	waitAsleep(t, a, "light-queue-1")
	code, v := a.do("POST", "/devices/light-queue-1/firmware", `{"image":"`+img["id"].(string)+`"}`)
	if code != 202 || v["state"] != "running" {
		t.Fatalf("update: %d %v", code, v)
	}
	id := v["id"].(string)
	if code, v := a.do("GET", "/campaigns", ""); code != 200 || v["count"] != float64(0) {
		t.Fatalf("a device update is listed as a campaign: %d %v", code, v)
	}
	if err := g.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if n := g.fleet.Lights[0].FirmwareApplied(); n != 0 {
		t.Fatalf("applied %d before the restart", n)
	}

	g2, err := New(ctx, mk(20*time.Millisecond), log)
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Shutdown(context.Background())
	a2 := apiClient{t, g2.Info().API}
	j := waitFWJob(a2, id)
	if j["state"] != "done" || j["version"] != "2.0.0" || j["endpoint"] != "light-queue-1" {
		t.Fatalf("job after restart: %v", j)
	}
	if n := g2.fleet.Lights[0].FirmwareApplied(); n != 1 {
		t.Fatalf("light applied %d updates, want 1", n)
	}
}
