package server

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"pgregory.net/rapid"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
)

func queueReg(ep string, v registry.Version, b registry.Binding, q bool, msisdn string) *registry.Registration {
	r := &registry.Registration{Endpoint: ep, Lifetime: 3600, Version: v, Binding: b, Queue: q, SMS: msisdn,
		Addr: netip.MustParseAddrPort("127.0.0.1:56830"), Registered: time.Now().UnixNano(), Updated: time.Now().UnixNano()}
	r.SetTransport("udp")
	return r
}

// The wake target follows the registration and the device settings.
func TestWakeTarget(t *testing.T) {
	sec := NewStaticSecurity(0)
	if err := sec.Set("bound", Binding{MSISDN: "+491710000009", NoSec: true}); err != nil {
		t.Fatal(err)
	}
	srv, err := New(new(registry.Memory), WithSecurity(sec))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	q := &Queue{s: srv}
	for _, tc := range []struct {
		name     string
		reg      *registry.Registration
		dev      DeviceSettings
		msisdn   string // "" = no target
		binding  string
		wakeable bool
	}{
		{"1.0 UQS with only sms= (never trusted)", queueReg("a", registry.V1_0, registry.BindingU|registry.BindingS, true, "491710000002"), DeviceSettings{}, "", "", false},
		{"1.0 UQS, number from the binding", queueReg("bound", registry.V1_0, registry.BindingU|registry.BindingS, true, ""), DeviceSettings{}, "+491710000009", "UQS", true},
		{"sms= agrees with the binding", queueReg("bound", registry.V1_0, registry.BindingU|registry.BindingS, true, "491710000009"), DeviceSettings{}, "+491710000009", "UQS", true},
		{"sms= differs from the binding", queueReg("bound", registry.V1_0, registry.BindingU|registry.BindingS, true, "491710000002"), DeviceSettings{}, "", "", false},
		{"1.0 UQ without number", queueReg("b", registry.V1_0, registry.BindingU, true, ""), DeviceSettings{}, "", "", false},
		{"1.1 number from config", queueReg("c", registry.V1_1, registry.BindingU, true, ""), DeviceSettings{MSISDN: "+49 171 0000003"}, "+491710000003", "U", false},
		{"configured number differs", queueReg("d", registry.V1_1, registry.BindingU, true, "491710000004"), DeviceSettings{MSISDN: "+491710000005"}, "", "", false},
		{"no wake", queueReg("e", registry.V1_0, registry.BindingU|registry.BindingS, true, "491710000006"), DeviceSettings{NoWake: true}, "", "", false},
		{"bad number", queueReg("f", registry.V1_0, registry.BindingU|registry.BindingS, true, "12ab"), DeviceSettings{}, "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := q.wakeTarget(tc.reg, tc.dev)
			if tc.msisdn == "" {
				if got != nil {
					t.Fatalf("want no target, got %+v", got)
				}
				return
			}
			if got == nil || got.MSISDN != tc.msisdn || got.Binding != tc.binding || got.Wakeable() != tc.wakeable {
				t.Fatalf("target %+v", got)
			}
		})
	}
}

// findTrigger picks the /1 instance of our Short Server ID.
func TestFindTrigger(t *testing.T) {
	recs := []content.Record{
		{Path: path.Resource(1, 0, 0), Value: content.NewInt(101)},
		{Path: path.Resource(1, 0, 21), Value: content.NewBool(false)},
		{Path: path.Resource(1, 3, 0), Value: content.NewInt(7)},
		{Path: path.Resource(1, 3, 21), Value: content.NewBool(true)},
		{Path: path.Resource(3, 0, 0), Value: content.NewString("x")},
	}
	for _, tc := range []struct {
		ssid     uint16
		inst     uint16
		trig, ok bool
	}{{0, 0, false, true}, {7, 3, true, true}, {101, 0, false, true}, {9, 0, false, false}} {
		t.Run(fmt.Sprintf("ssid %d", tc.ssid), func(t *testing.T) {
			inst, trig, ok := findTrigger(recs, tc.ssid)
			if inst != tc.inst || trig != tc.trig || ok != tc.ok {
				t.Errorf("ssid %d: %d %v %v", tc.ssid, inst, trig, ok)
			}
		})
	}
	if _, _, ok := findTrigger(nil, 0); ok {
		t.Error("empty /1 found")
	}
}

// A queued request keeps what the executor needs to rebuild the CoAP
// request: method by kind, payload, content format, Accept or queries.
func TestToQueuedRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		kinds := []struct {
			op   string
			code codes.Code
		}{{"read", codes.GET}, {"discover", codes.GET}, {"write", codes.PUT}, {"write", codes.POST},
			{"write-attributes", codes.PUT}, {"execute", codes.POST}, {"create", codes.POST}, {"delete", codes.DELETE},
			{"read-composite", codes.FETCH}, {"write-composite", codes.IPATCH}}
		k := rapid.SampledFrom(kinds).Draw(t, "kind")
		kind, ok := opKind(k.op, k.code)
		if !ok {
			t.Fatalf("no kind for %s", k.op)
		}
		req := bearer.NewRequest(k.code, nil, "/3/0/1")
		if rapid.Bool().Draw(t, "payload") {
			req.Payload = rapid.SliceOf(rapid.Byte()).Draw(t, "body")
			req.SetOption(bearer.ContentFormatOption(message.MediaType(rapid.Uint16().Draw(t, "cf"))))
		}
		accept := rapid.Uint16().Draw(t, "accept")
		if kind == queue.KindWriteAttributes {
			req.AddOption(bearer.StringOption(message.URIQuery, "pmin=10"))
			req.AddOption(bearer.StringOption(message.URIQuery, "pmax=60"))
		} else {
			req.SetOption(bearer.UintOption(message.Accept, uint32(accept)))
		}
		qr := toQueued("ep", kind, path.Resource(3, 0, 1), req)
		if qr.Kind != kind || string(qr.Payload) != string(req.Payload) {
			t.Fatalf("request %+v", qr)
		}
		if cf, err := req.Options.ContentFormat(); (err == nil) != (qr.ContentFormat != queue.NoContentFormat) || err == nil && int32(cf) != qr.ContentFormat {
			t.Fatalf("content format %v %v vs %d", cf, err, qr.ContentFormat)
		}
		want := fmt.Sprint(accept)
		if kind == queue.KindWriteAttributes {
			want = "pmin=10&pmax=60"
		}
		if qr.Args != want {
			t.Fatalf("args %q want %q", qr.Args, want)
		}
	})
}

// resultResponse rebuilds a Create's Location-Path and a payload's format.
func TestResultResponse(t *testing.T) {
	r := resultResponse(queue.KindCreate, &queue.Result{Code: uint8(codes.Created), ContentFormat: queue.NoContentFormat, Payload: []byte("/3303/12")})
	if r.LocationPath() != "/3303/12" || len(r.Payload) != 0 {
		t.Fatalf("create: %q %q", r.LocationPath(), r.Payload)
	}
	r = resultResponse(queue.KindRead, &queue.Result{Code: uint8(codes.Content), ContentFormat: int32(FormatTLV), Payload: []byte{1}})
	if cf, ok := r.ContentFormat(); !ok || cf != FormatTLV || r.Code != codes.Content {
		t.Fatalf("read: %v %v %v", cf, ok, r.Code)
	}
}

// FuzzResultResponse: any stored result turns into a response without
// panicking, and a Create's location survives as its segments.
func FuzzResultResponse(f *testing.F) {
	f.Add(uint8(queue.KindCreate), uint8(codes.Created), int32(-1), []byte("/3303/0"))
	f.Add(uint8(queue.KindRead), uint8(codes.Content), int32(11542), []byte{0x08, 0x00})
	f.Add(uint8(queue.KindCreate), uint8(codes.Created), int32(-1), []byte("//a//b/"))
	f.Add(uint8(queue.KindRead), uint8(codes.NotFound), int32(0), []byte("not found"))
	f.Fuzz(func(t *testing.T, kind, code uint8, cf int32, payload []byte) {
		r := resultResponse(queue.Kind(kind), &queue.Result{Code: code, ContentFormat: cf, Payload: payload})
		if r.Code != codes.Code(code) {
			t.Fatal("code changed")
		}
		_ = r.LocationPath()
		_, _ = r.ContentFormat()
	})
}

// With queue mode on, a Read of a sleeping queue-mode device is queued;
// when the caller's context ends first it gets a *QueuedError with the id,
// and the request stays queued until cancelled.
func TestQueuedErrorKeepsRequest(t *testing.T) {
	store := new(registry.Memory)
	srv, err := New(store)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.Attach("udp", nil)
	if _, err := store.Add(context.Background(), queueReg("sleepy", registry.V1_1, registry.BindingU, true, "")); err != nil {
		t.Fatal(err)
	}
	q, err := srv.EnableQueue(QueueConfig{Config: queue.Config{Store: queue.NewMemStore()}})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if _, err := srv.EnableQueue(QueueConfig{Config: queue.Config{Store: queue.NewMemStore()}}); err == nil {
		t.Fatal("second EnableQueue accepted")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = srv.Read(ctx, "sleepy", path.Resource(3, 0, 0))
	var qe *QueuedError
	if !errors.As(err, &qe) || !errors.Is(err, ErrQueued) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want *QueuedError, got %v", err)
	}
	if p := q.Manager().Pending("sleepy"); len(p) != 1 || p[0] != qe.ID {
		t.Fatalf("pending %v, id %d", p, qe.ID)
	}
	if err := q.Manager().Cancel(qe.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Wait(context.Background(), qe.ID); !errors.Is(err, queue.ErrCancelled) {
		t.Fatalf("after cancel: %v", err)
	}
}
