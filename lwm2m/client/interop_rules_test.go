package client_test

import (
	"strings"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/lwm2m/client"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/link"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// lampClient is a client with the usual objects: Server, Device,
// Connectivity Monitoring, Firmware and Light Control.
func lampClient(t *testing.T, name string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(name, opts...)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		c.AddServer(client.Server{ShortID: 101, Lifetime: 60, Binding: "U"}),
		c.AddDevice(client.Device{Manufacturer: "ACME", Model: "SL-1", Serial: "0001", Firmware: "1.0"}),
		c.AddConnectivity(client.Connectivity{NetworkBearer: 6, RSSI: -70}),
		c.AddFirmware(client.Firmware{}),
		c.AddObject(3311, client.Handlers{}),
		c.Set(path.Resource(3311, 0, 5851), content.NewInt(0)),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// TestRegisterLinksPerVersion: the root link's ct is one value for LwM2M
// 1.1 (a quoted list is 1.2 syntax, refused by Wakaama's 1.1 server) and
// the object versions are those of the announced enabler (no ver=1.1 in a
// 1.0 registration for objects whose 1.0 edition is 1.0).
func TestRegisterLinksPerVersion(t *testing.T) {
	tests := []struct {
		version       string
		want, wantNot []string
	}{
		{"1.0", []string{"</1/0>", "</3/0>", "</4/0>", "</5/0>", "</3311/0>"},
			[]string{"</>", "ver=", "ct="}},
		{"1.1", []string{`</>;rt="oma.lwm2m";ct=110,`, "</1>;ver=1.1", "</3>;ver=1.1", "</4>;ver=1.3"},
			[]string{`ct="`}},
		{"1.2", []string{`</>;rt="oma.lwm2m";ct="110 112 11542 11544",`, "</1>;ver=1.1"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.version, func(t *testing.T) {
			got := string(link.Encode(lampClient(t, "l", client.WithVersion(tc.version)).ObjectLinks()))
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("%s lacks %s", got, w)
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(got, w) {
					t.Errorf("%s has %s", got, w)
				}
			}
			if _, err := link.Parse([]byte(got)); err != nil {
				t.Fatalf("links do not parse: %v", err)
			}
		})
	}
}

// TestClientRefusesBadWritesAndDeletes: every Write is checked against the
// model's type and range (4.00 with the reason), mandatory instances
// refuse Delete (4.05), and the Update after a Create or Delete carries
// the object list, so the server's view follows.
func TestClientRefusesBadWritesAndDeletes(t *testing.T) {
	srv, addr := startServer(t)
	sub := srv.Subscribe(64)
	c := lampClient(t, "lamp-rules")
	ep, err := bearer.NewEndpoint(listen(t), bearer.WithHandler(c))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); ep.Close() })
	ctx := ctxT(t)
	if err := c.Start(ctx, ep, addr); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, sub, server.Registered)
	dimmer := path.Resource(3311, 0, 5851)
	writes := []struct {
		name    string
		payload string
		code    codes.Code
		reason  string
	}{
		{"in range", "40", codes.Changed, ""},
		{"above range", "150", codes.BadRequest, "Dimmer"},
		{"far above range", "99999999999", codes.BadRequest, "outside 0..100"},
		{"below range", "-1", codes.BadRequest, "Dimmer"},
		{"not an integer", "4x", codes.BadRequest, ""},
		{"fraction", "40.5", codes.BadRequest, ""},
	}
	for _, w := range writes {
		t.Run("write "+w.name, func(t *testing.T) {
			err := srv.Write(ctx, "lamp-rules", dimmer, server.Replace, server.Content{Format: server.FormatText, Payload: []byte(w.payload)})
			if w.code == codes.Changed {
				if err != nil {
					t.Fatal(err)
				}
			} else if server.Code(err) != w.code || !strings.Contains(err.Error(), w.reason) {
				t.Fatalf("write %s: %v, want %v with %q", w.payload, err, w.code, w.reason)
			}
			if v, _ := c.Get(dimmer); v.Int() != 40 {
				t.Fatalf("dimmer = %v after write %s", v, w.payload)
			}
		})
	}
	t.Run("write in senml", func(t *testing.T) {
		err := srv.WriteValues(ctx, "lamp-rules", path.Instance(3311, 0), server.PartialUpdate,
			content.Record{Path: dimmer, Value: content.NewInt(150)})
		if server.Code(err) != codes.BadRequest {
			t.Fatalf("SenML write of 150: %v", err)
		}
	})

	for _, p := range []path.Path{path.Instance(3, 0), path.Instance(1, 0)} {
		t.Run("delete "+p.String(), func(t *testing.T) {
			if err := srv.Delete(ctx, "lamp-rules", p); server.Code(err) != codes.MethodNotAllowed {
				t.Fatalf("Delete %v: %v, want 4.05", p, err)
			}
			if _, err := srv.Read(ctx, "lamp-rules", p); err != nil {
				t.Fatalf("%v gone after a refused Delete: %v", p, err)
			}
		})
	}

	// Delete of an optional instance: allowed, and the next Update
	// carries the object list without it.
	if err := srv.Delete(ctx, "lamp-rules", path.Instance(3311, 0)); err != nil {
		t.Fatal(err)
	}
	ev := waitEvent(t, sub, server.Updated)
	if ev.Registration.HasObject(3311) && strings.Contains(ev.Registration.Links(), "</3311/0>") {
		t.Fatalf("server still lists /3311/0 after the Update: %s", ev.Registration.Links())
	}
	// An instance the application adds also reaches the server with the
	// next Update, even one the client sends without being asked to.
	if err := c.AddInstance(3311, 7); err != nil {
		t.Fatal(err)
	}
	c.TriggerUpdate()
	ev = waitEvent(t, sub, server.Updated)
	if !strings.Contains(ev.Registration.Links(), "</3311/7>") {
		t.Fatalf("server lacks /3311/7 after the Update: %s", ev.Registration.Links())
	}
}
