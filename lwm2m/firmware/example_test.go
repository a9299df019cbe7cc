package firmware_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/m2mbearer/m2mbearer/lwm2m/client"
	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

func ExampleStore() {
	dir, _ := os.MkdirTemp("", "fw")
	defer os.RemoveAll(dir)
	store, _ := firmware.OpenStore(dir, firmware.WithMaxBytes(64<<20))
	pkg, _ := firmware.BuildPackage("2.0", []byte("new streetlight firmware"))
	info, err := store.PutBytes(context.Background(), "streetlight", "2.0", pkg)
	if err != nil {
		fmt.Println(err)
		return
	}
	img, _ := store.Open(info.ID) // an io.ReaderAt over the file
	defer img.Close()
	head := make([]byte, 4)
	img.ReadAt(head, 0)
	fmt.Println(info.Version, info.Size, string(head))
	// Output: 2.0 64 M2FW
}

// gateway starts an LwM2M server on UDP loopback with the image store and
// the CoAP Package URI server on the same endpoint.
func gateway(dir string) (*server.Server, *bearer.Endpoint, *firmware.Store, *firmware.Updater) {
	store, _ := firmware.OpenStore(filepath.Join(dir, "images"))
	b, _ := udp.Listen("udp", "127.0.0.1:0")
	srv, err := server.New(new(registry.Memory))
	if err != nil {
		panic(err)
	}
	mux := bearer.NewServeMux()
	mux.Handle("/", srv.Handler("udp"))
	ep, _ := bearer.NewEndpoint(b, bearer.WithHandler(mux))
	mux.Handle("/fw/", firmware.NewCoAPHandler(store, "/fw/", ep.BlockSize(), nil))
	srv.Attach("udp", ep)
	upd, _ := firmware.NewUpdater(firmware.Config{
		Server: srv, Store: store,
		Endpoints: map[string]*bearer.Endpoint{"udp": ep},
		Pull:      firmware.PullURIs{CoAP: "coap://" + b.LocalAddr().String() + "/fw/"},
	})
	return srv, ep, store, upd
}

// streetlight starts a demo device: our LwM2M client with firmware 1.0.
func streetlight(name string, gw *bearer.Endpoint) func() {
	c, err := client.New(name)
	if err != nil {
		panic(err)
	}
	b, _ := udp.Listen("udp", "127.0.0.1:0")
	ep, _ := bearer.NewEndpoint(b, bearer.WithHandler(c))
	c.AddDevice(client.Device{Manufacturer: "m2m", Model: "SL", Firmware: "1.0"})
	dev, _ := firmware.NewDevice(c, firmware.DeviceConfig{Endpoint: ep})
	c.Start(context.Background(), ep, gw.LocalAddr())
	return func() { dev.Close(); c.Close(); ep.Close() }
}

func ExampleUpdater_Update() {
	dir, _ := os.MkdirTemp("", "fw")
	defer os.RemoveAll(dir)
	srv, ep, store, upd := gateway(dir)
	defer func() { upd.Close(); srv.Close(); ep.Close() }()
	defer streetlight("light-7", ep)()

	pkg, _ := firmware.BuildPackage("2.0", make([]byte, 5000))
	img, _ := store.PutBytes(context.Background(), "streetlight", "2.0", pkg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := upd.Update(ctx, "light-7", img.ID, firmware.Options{Prefer: firmware.Pull, PollInterval: 100 * time.Millisecond})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Plan.Method, res.Version)
	// Output: pull 2.0
}

func ExampleManager() {
	dir, _ := os.MkdirTemp("", "fw")
	defer os.RemoveAll(dir)
	srv, ep, store, upd := gateway(dir)
	defer func() { upd.Close(); srv.Close(); ep.Close() }()
	for _, name := range []string{"park-1", "park-2", "park-3"} {
		defer streetlight(name, ep)()
	}
	pkg, _ := firmware.BuildPackage("2.0", make([]byte, 3000))
	img, _ := store.PutBytes(context.Background(), "streetlight", "2.0", pkg)

	db, _ := bolt.Open(filepath.Join(dir, "campaigns.db"), 0o600, nil)
	defer db.Close()
	m, _ := firmware.NewManager(db, upd)
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, err := m.Create(ctx, firmware.Spec{Name: "park", Image: img.ID, Prefix: "park-", Concurrency: 2,
		Options: firmware.Options{PollInterval: 100 * time.Millisecond}})
	if err != nil {
		fmt.Println(err)
		return
	}
	rep, _ := m.Wait(ctx, id)
	fmt.Println(rep.Status, rep.Counts[firmware.DevDone], "of", rep.Total)
	// Output: done 3 of 3
}
