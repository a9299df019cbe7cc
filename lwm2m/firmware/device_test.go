package firmware_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/m2mbearer/m2mbearer/lwm2m/client"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// TestUpdateHTTPPull: a device that pulls over HTTP only gets an http://
// Package URI served by HTTPHandler.
func TestUpdateHTTPPull(t *testing.T) {
	e := newEnv(t, nil)
	hs := httptest.NewServer(firmware.HTTPHandler(e.store, "/fw/"))
	defer hs.Close()
	upd, err := firmware.NewUpdater(firmware.Config{Server: e.srv, Store: e.store,
		Endpoints: map[string]*bearer.Endpoint{"udp": e.ep}, Pull: firmware.PullURIs{CoAP: "coap://127.0.0.1:9/fw/", HTTP: hs.URL + "/fw/"}})
	if err != nil {
		t.Fatal(err)
	}
	defer upd.Close()
	c, err := client.New("sl-http")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := udp.Listen("udp", "127.0.0.1:0")
	cep, _ := bearer.NewEndpoint(b, bearer.WithHandler(c))
	defer cep.Close()
	c.AddDevice(client.Device{Manufacturer: "m2m", Firmware: "1.0"})
	dev, err := firmware.NewDevice(c, firmware.DeviceConfig{HTTP: hs.Client(), PullOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	ctx := ctxT(t, 20*time.Second)
	if err := c.Start(ctx, cep, e.addr); err != nil {
		t.Fatal(err)
	}
	img := image(t, e, "4.0-http", 20000)
	o := fast()
	o.Prefer = firmware.Push // the device says pull only
	res, err := upd.Update(ctx, "sl-http", img.ID, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Plan.Method != firmware.Pull || res.Plan.URI != hs.URL+"/fw/"+img.ID {
		t.Fatalf("%+v", res.Plan)
	}
	if v, _ := c.Get(path.Resource(3, 0, 3)); v.Str() != "4.0-http" {
		t.Fatal(v.Str())
	}
}

// TestDeviceResults: the demo device's Update Results for bad URIs,
// unsupported protocols, bad packages, and what the Updater makes of them.
func TestDeviceResults(t *testing.T) {
	e := newEnv(t, nil)
	l := newLight(t, e, "sl-res", lightOpts{})
	ctx := ctxT(t, 20*time.Second)
	// waitState polls the device's own state until want holds (bounded).
	// The write before it reset Update Result to 0 in place, so a result
	// other than 0 is this write's (an earlier process's is dropped).
	waitState := func(want func(st, res int64) bool) (int64, int64) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, _ := l.c.Get(path.Resource(5, 0, 3))
			res, _ := l.c.Get(path.Resource(5, 0, 5))
			if want(st.Int(), res.Int()) || time.Now().After(deadline) {
				return st.Int(), res.Int()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	write := func(t *testing.T, uri string) {
		t.Helper()
		if err := e.srv.WriteValues(ctx, "sl-res", path.Resource(5, 0, 1), server.Replace,
			content.Record{Path: path.Resource(5, 0, 1), Value: content.NewString(uri)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		uri  string
		want int64
	}{
		{"http://[::1", firmware.ResultInvalidURI},
		{"ftp://host/x", firmware.ResultUnsupportedProto},
		{"http://127.0.0.1:9/x", firmware.ResultUnsupportedProto}, // no HTTP client configured
		{"coap://" + e.addr.String() + "/fw/nope", firmware.ResultInvalidURI},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			write(t, tc.uri)
			if st, res := waitState(func(_, res int64) bool { return res != 0 }); st != firmware.StateIdle || res != tc.want {
				t.Fatalf("%s: state %d result %d, want %d", tc.uri, st, res, tc.want)
			}
			// Reset: the client applies it before answering the Write,
			// and the result above (an earlier process's) can no longer
			// land after it, so it holds at the answer, with no wait.
			write(t, "")
			st, _ := l.c.Get(path.Resource(5, 0, 3))
			res, _ := l.c.Get(path.Resource(5, 0, 5))
			if st.Int() != firmware.StateIdle || res.Int() != firmware.ResultInitial {
				t.Fatalf("reset: state %d result %d at the Write's answer, want 0 0", st.Int(), res.Int())
			}
		})
	}
	// Not a package at all: Update Result 6 through the Updater.
	info, err := e.store.PutBytes(context.Background(), "junk", "x", []byte("not a firmware package"))
	if err != nil {
		t.Fatal(err)
	}
	o := fast()
	o.Prefer = firmware.Push
	_, err = e.upd.Update(ctx, "sl-res", info.ID, o)
	var re *firmware.ResultError
	if !errors.As(err, &re) || re.Result != firmware.ResultUnsupportedType {
		t.Fatalf("junk: %v", err)
	}
	// Unknown image, unregistered device.
	if _, err := e.upd.Update(ctx, "sl-res", "0000000000000000", o); !errors.Is(err, firmware.ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := e.upd.Update(ctx, "nobody", info.ID, o); !errors.Is(err, server.ErrNotRegistered) {
		t.Fatal(err)
	}
}

// TestVersionWakes: reading the version of a sleeping queue-mode light
// wakes it first (the SMS trigger of the test waker).
func TestVersionWakes(t *testing.T) {
	ls := &lights{}
	e := newEnv(t, ls)
	l := newLight(t, e, "sl-sleep", lightOpts{queue: true})
	ls.add(l)
	l.sleepy.mu.Lock()
	l.sleepy.until = time.Time{} // asleep now
	l.sleepy.mu.Unlock()
	v, err := e.upd.Version(ctxT(t, 20*time.Second), "sl-sleep", fast())
	if err != nil || v != "1.0" {
		t.Fatal(v, err)
	}
	l.sleepy.mu.Lock()
	defer l.sleepy.mu.Unlock()
	if l.sleepy.wakes != 1 || l.sleepy.dropped != 0 {
		t.Fatalf("wakes %d dropped %d", l.sleepy.wakes, l.sleepy.dropped)
	}
}
