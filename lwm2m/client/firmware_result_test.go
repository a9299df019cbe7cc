package client_test

import (
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
			srv, addr := startServer(t)
			sub := srv.Subscribe(16)
			c, cep := newClient(t, "fw-1", client.WithLifetime(60))
			// Hooks that leave the state alone: the application downloads
			// or checks later (as a real device does).
			if err := c.AddFirmware(client.Firmware{URI: func(string) error { return nil }, Package: func([]byte) error { return nil }}); err != nil {
				t.Fatal(err)
			}
			ctx := ctxT(t)
			if err := c.Start(ctx, cep, addr); err != nil {
				t.Fatal(err)
			}
			waitEvent(t, sub, server.Registered)
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
