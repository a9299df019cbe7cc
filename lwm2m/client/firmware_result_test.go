package client_test

import (
	"context"
	"sync/atomic"
	"time"

	"testing"

	"github.com/m2mbearer/m2mbearer/lwm2m/client"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// TestFirmwareWriteResetsResult checks that a write of Package URI or of
// Package resets Update Result to Initial before the write is answered:
// a server that reads the result right after its write must not see the
// previous attempt's failure (a campaign once failed a light that way,
// right after the light had refused a corrupt image).
func TestFirmwareWriteResetsResult(t *testing.T) {
	for _, tc := range []struct {
		name string
		rec  content.Record
	}{
		{"package URI", content.Record{Path: path.Resource(5, 0, 1), Value: content.NewString("coap://127.0.0.1:9/fw/x")}},
		{"package", content.Record{Path: path.Resource(5, 0, 0), Value: content.NewOpaque([]byte("pkg"))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, c, ctx := registeredFirmwareClient(t, "fw-1")
			c.SetFirmwareState(client.FwIdle, 5) // the previous attempt failed: integrity
			if err := srv.WriteValues(ctx, "fw-1", tc.rec.Path, server.Replace, tc.rec); err != nil {
				t.Fatal(err)
			}
			recs, err := srv.ReadValues(ctx, "fw-1", path.Resource(5, 0, 5))
			if err != nil || len(recs) != 1 {
				t.Fatalf("read /5/0/5: %v %v", recs, err)
			}
			if got := recs[0].Value.Int(); got != client.FwResultInitial {
				t.Fatalf("Update Result read right after the write: %d, want %d (reset when the process starts)", got, client.FwResultInitial)
			}
		})
	}
}

// TestFirmwareStateMachine: the Firmware Update state machine of
// AddFirmware (Core Appendix E.6) as the server sees it when its request
// is answered: a written package is Downloaded, an empty Package or
// Package URI resets to Idle with Update Result 0, Execute Update moves to
// Updating at once (a second Execute is refused), and a state change the
// application reports for an earlier process (SetFirmwareStateFor with
// the number FirmwareProcess gave before a newer write) is dropped.
func TestFirmwareStateMachine(t *testing.T) {
	uri := func(s string) content.Record {
		return content.Record{Path: path.Resource(5, 0, 1), Value: content.NewString(s)}
	}
	pkg := func(b string) content.Record {
		return content.Record{Path: path.Resource(5, 0, 0), Value: content.NewOpaque([]byte(b))}
	}
	type state struct{ st, res int64 }
	for _, tc := range []struct {
		name   string
		before state // set with SetFirmwareState first
		write  content.Record
		// stale reports a change for the process before the write.
		stale bool
		want  state
	}{
		{"package is Downloaded", state{client.FwIdle, 5}, pkg("pkg"), false, state{client.FwDownloaded, 0}},
		{"empty package resets Downloaded", state{client.FwDownloaded, 0}, pkg(""), false, state{client.FwIdle, 0}},
		{"empty URI resets Downloading", state{client.FwDownloading, 0}, uri(""), false, state{client.FwIdle, 0}},
		{"empty URI resets a failure", state{client.FwIdle, 9}, uri(""), false, state{client.FwIdle, 0}},
		{"older process's result dropped", state{client.FwIdle, 0}, uri("coap://127.0.0.1:9/x"), true, state{client.FwIdle, 0}},
		{"older process's result dropped after reset", state{client.FwDownloading, 0}, uri(""), true, state{client.FwIdle, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, c, ctx := registeredFirmwareClient(t, "fw-sm")
			c.SetFirmwareState(tc.before.st, tc.before.res)
			old := c.FirmwareProcess()
			if err := srv.WriteValues(ctx, "fw-sm", tc.write.Path, server.Replace, tc.write); err != nil {
				t.Fatal(err)
			}
			if c.FirmwareProcess() == old {
				t.Fatal("the write did not start a new process")
			}
			if tc.stale {
				if c.SetFirmwareStateFor(old, client.FwIdle, 9) {
					t.Fatal("a change for the older process was applied")
				}
			}
			recs, err := srv.ReadValues(ctx, "fw-sm", path.Instance(5, 0))
			if err != nil {
				t.Fatal(err)
			}
			var got state
			for _, r := range recs {
				switch r.Path.ResourceID() {
				case 3:
					got.st = r.Value.Int()
				case 5:
					got.res = r.Value.Int()
				}
			}
			if got != tc.want {
				t.Fatalf("read when the write was answered: %+v, want %+v", got, tc.want)
			}
			if !c.SetFirmwareStateFor(c.FirmwareProcess(), client.FwDownloading, 0) {
				t.Fatal("a change for the current process was dropped")
			}
		})
	}
}

// TestFirmwareExecuteOnce: Execute Update moves State to Updating before
// it is answered, so a second Execute while the update runs is refused
// (4.05) instead of applying the package twice; the update's outcome then
// gives Idle with Update Result 1.
func TestFirmwareExecuteOnce(t *testing.T) {
	srv, addr := startServer(t)
	sub := srv.Subscribe(16)
	c, cep := newClient(t, "fw-ex", client.WithLifetime(60))
	release := make(chan struct{})
	var updates atomic.Int32
	if err := c.AddFirmware(client.Firmware{Package: func([]byte) error { return nil }, Update: func() error {
		updates.Add(1)
		<-release
		return nil
	}}); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	if err := c.Start(ctx, cep, addr); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, sub, server.Registered)
	rec := content.Record{Path: path.Resource(5, 0, 0), Value: content.NewOpaque([]byte("pkg"))}
	if err := srv.WriteValues(ctx, "fw-ex", rec.Path, server.Replace, rec); err != nil {
		t.Fatal(err)
	}
	if err := srv.Execute(ctx, "fw-ex", path.Resource(5, 0, 2), ""); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.Get(path.Resource(5, 0, 3)); st.Int() != client.FwUpdating {
		t.Fatalf("State %d when Execute was answered, want Updating", st.Int())
	}
	if err := srv.Execute(ctx, "fw-ex", path.Resource(5, 0, 2), ""); err == nil {
		t.Fatal("a second Execute while updating was accepted")
	}
	close(release)
	for {
		st, _ := c.Get(path.Resource(5, 0, 3))
		res, _ := c.Get(path.Resource(5, 0, 5))
		if st.Int() == client.FwIdle && res.Int() == client.FwResultSuccess {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("State %d Result %d, want Idle and 1", st.Int(), res.Int())
		case <-time.After(5 * time.Millisecond):
		}
	}
	if n := updates.Load(); n != 1 {
		t.Fatalf("%d updates, want 1", n)
	}
}

// registeredFirmwareClient starts a server and a client named ep with
// object 5 whose hooks leave the state alone (the application downloads
// or checks later, as a real device does), and waits for its
// registration.
func registeredFirmwareClient(t *testing.T, ep string) (*server.Server, *client.Client, context.Context) {
	t.Helper()
	srv, addr := startServer(t)
	sub := srv.Subscribe(16)
	c, cep := newClient(t, ep, client.WithLifetime(60))
	if err := c.AddFirmware(client.Firmware{URI: func(string) error { return nil }, Package: func([]byte) error { return nil }}); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	if err := c.Start(ctx, cep, addr); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, sub, server.Registered)
	return srv, c, ctx
}
