package firmware_test

import (
	"context"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/secure"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/m2mbearer/m2mbearer/lwm2m/client"
	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// TestUpdateDTLS: push and pull over DTLS PSK; the pull URI is coaps://
// on the gateway's DTLS endpoint.
func TestUpdateDTLS(t *testing.T) {
	for _, m := range []firmware.Method{firmware.Push, firmware.Pull} {
		t.Run(m.String(), func(t *testing.T) {
			ctx := ctxT(t, 30*time.Second)
			key := []byte("0123456789abcdef")
			sec := server.NewStaticSecurity(0)
			if err := sec.Bind("sl-dtls", bearer.Identity{Mode: "psk", PSKIdentity: []byte("sl-dtls")}); err != nil {
				t.Fatal(err)
			}
			inner, err := udp.Listen("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			dsrv, err := secure.NewServer(inner, &secure.Config{
				PSKLookup: func(id []byte) ([]byte, error) { return key, nil },
			})
			if err != nil {
				t.Fatal(err)
			}
			store, err := firmware.OpenStore(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			srv, err := server.New(new(registry.Memory), server.WithSecurity(sec), server.WithNoSec(false))
			if err != nil {
				t.Fatal(err)
			}
			mux := bearer.NewServeMux()
			mux.Handle("/", srv.Handler("dtls"))
			sep, err := bearer.NewEndpoint(dsrv, bearer.WithHandler(mux))
			if err != nil {
				t.Fatal(err)
			}
			mux.Handle("/fw/", firmware.NewCoAPHandler(store, "/fw/", sep.BlockSize(), nil))
			srv.Attach("dtls", sep)
			upd, err := firmware.NewUpdater(firmware.Config{Server: srv, Store: store,
				Endpoints: map[string]*bearer.Endpoint{"dtls": sep},
				Pull:      firmware.PullURIs{CoAPS: "coaps://" + inner.LocalAddr().String() + "/fw/"}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { upd.Close(); srv.Close(); sep.Close() })

			cb, err := udp.Listen("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			conn, err := secure.Dial(ctx, cb, inner.LocalAddr(), &secure.Config{PSKIdentity: []byte("sl-dtls"), PSKKey: key})
			if err != nil {
				t.Fatal(err)
			}
			c, err := client.New("sl-dtls", client.WithLifetime(300))
			if err != nil {
				t.Fatal(err)
			}
			cep, err := bearer.NewEndpoint(conn, bearer.WithHandler(c))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.AddDevice(client.Device{Manufacturer: "m2m", Firmware: "1.0"}); err != nil {
				t.Fatal(err)
			}
			dev, err := firmware.NewDevice(c, firmware.DeviceConfig{Endpoint: cep, Secure: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { dev.Close(); c.Close(); cep.Close() })
			if err := c.Start(ctx, cep, inner.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			pkg, _ := firmware.BuildPackage("2.0-dtls", make([]byte, 4000))
			img, err := store.PutBytes(context.Background(), "x", "2.0-dtls", pkg)
			if err != nil {
				t.Fatal(err)
			}
			o := fast()
			o.Prefer = m
			res, err := upd.Update(ctx, "sl-dtls", img.ID, o)
			if err != nil {
				t.Fatal(err)
			}
			if res.Plan.Method != m || (m == firmware.Pull && res.Plan.URI[:8] != "coaps://") {
				t.Fatalf("%+v", res.Plan)
			}
			if v, _ := c.Get(path.Resource(3, 0, 3)); v.Str() != "2.0-dtls" || dev.Applied() != 1 {
				t.Fatal(v.Str(), dev.Applied())
			}
		})
	}
}
