package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/m2mbearer/m2mbearer/lwm2m/link"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
)

// fixture is a server on loopback UDP.
type fixture struct {
	srv  *Server
	ep   *bearer.Endpoint
	addr net.Addr
}

func newFixture(t *testing.T, opts ...Option) *fixture {
	t.Helper()
	conn, err := udp.Listen("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(new(registry.Memory), opts...)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := bearer.NewEndpoint(conn, bearer.WithHandler(srv.Handler("udp")))
	if err != nil {
		t.Fatal(err)
	}
	srv.Attach("udp", ep)
	t.Cleanup(func() {
		srv.Close()
		ep.Close()
	})
	return &fixture{srv: srv, ep: ep, addr: conn.LocalAddr()}
}

// device is a hand-built LwM2M device for the DM tests: a bearer.Endpoint
// with a ServeMux; it records what it was asked.
type device struct {
	ep  *bearer.Endpoint
	mux *bearer.ServeMux
	mu  sync.Mutex
	got []string
	obs chan *bearer.Observer
}

func newDevice(t *testing.T) *device {
	t.Helper()
	conn, err := udp.Listen("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &device{mux: bearer.NewServeMux(), obs: make(chan *bearer.Observer, 4)}
	ep, err := bearer.NewEndpoint(conn, bearer.WithHandler(d.mux))
	if err != nil {
		t.Fatal(err)
	}
	d.ep = ep
	t.Cleanup(func() { ep.Close() })
	return d
}

func (d *device) record(r *bearer.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := r.Code.String() + " " + r.Path()
	if q := r.Queries(); len(q) > 0 {
		s += "?" + strings.Join(q, "&")
	}
	if len(r.Payload) > 0 {
		s += " " + string(r.Payload)
	}
	d.got = append(d.got, s)
}

func (d *device) last() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.got) == 0 {
		return ""
	}
	return d.got[len(d.got)-1]
}

// observedResource is a device's resource that answers a PUT with 2.04
// and a GET with payload in format cf, accepting an Observe; observer is
// the last observer it accepted.
type observedResource struct {
	mu sync.Mutex
	o  *bearer.Observer
}

func (x *observedResource) handler(cf message.MediaType, payload []byte, seen func(*bearer.Request)) bearer.HandlerFunc {
	return func(w bearer.ResponseWriter, r *bearer.Request) {
		if seen != nil {
			seen(r)
		}
		if r.Code == codes.PUT {
			w.WriteResponse(codes.Changed, nil)
			return
		}
		if o, err := w.Observe(); err == nil {
			x.mu.Lock()
			x.o = o
			x.mu.Unlock()
		}
		w.SetOption(bearer.ContentFormatOption(cf))
		w.WriteResponse(codes.Content, payload)
	}
}

func (x *observedResource) observer() *bearer.Observer {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.o
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func post(t *testing.T, d *device, to net.Addr, p string, payload string, id ...bearer.Identity) *bearer.Response {
	t.Helper()
	req := bearer.NewRequest(codes.POST, to, p)
	if payload != "" {
		req.SetOption(bearer.ContentFormatOption(message.AppLinkFormat))
		req.Payload = []byte(payload)
	}
	resp, err := d.ep.Do(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func waitEvent(t *testing.T, sub *Subscription, kind EventKind) Event {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev, ok := <-sub.C:
			if !ok {
				t.Fatalf("subscription closed waiting for %v", kind)
			}
			if ev.Kind == kind {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %v event", kind)
		}
	}
}

func TestRegistrationInterface(t *testing.T) {
	f := newFixture(t)
	sub := f.srv.Subscribe(16)
	d := newDevice(t)

	resp := post(t, d, f.addr, "/rd?ep=dev-1&lt=300&lwm2m=1.1&b=U", `</>;rt="oma.lwm2m";ct="110 11542",</1/0>,</3/0>`)
	if resp.Code != codes.Created {
		t.Fatalf("Register: %v %s", resp.Code, resp.Payload)
	}
	loc := resp.LocationPath()
	if !strings.HasPrefix(loc, "/rd/") {
		t.Fatalf("Location-Path %q", loc)
	}
	ev := waitEvent(t, sub, Registered)
	reg := ev.Registration
	if reg.Endpoint != "dev-1" || reg.Lifetime != 300 || reg.Version != registry.V1_1 || len(reg.Objects) != 2 ||
		reg.Location() != loc || reg.Transport() != "udp" || reg.Formats != registry.FormatSenMLJSON|registry.FormatTLV {
		t.Fatalf("registration %+v", reg)
	}
	if reg.PeerAddr().String() != d.ep.LocalAddr().String() {
		t.Fatalf("peer %v, want %v", reg.PeerAddr(), d.ep.LocalAddr())
	}

	// Update from a new source address (NAT rebinding, or someone else):
	// a NoSec registration is updated only from its source; 4.04 makes a
	// client whose address changed register again (Core §6.2.2).
	d2 := newDevice(t)
	resp = post(t, d2, f.addr, loc+"?lt=600", "</1/0>,</3/0>,</5/0>")
	if resp.Code != codes.NotFound {
		t.Fatalf("Update from another source: %v %s", resp.Code, resp.Payload)
	}
	resp = post(t, d, f.addr, loc+"?lt=600", "</1/0>,</3/0>,</5/0>")
	if resp.Code != codes.Changed {
		t.Fatalf("Update: %v %s", resp.Code, resp.Payload)
	}
	ev = waitEvent(t, sub, Updated)
	if ev.Registration.Lifetime != 600 || len(ev.Registration.Objects) != 3 || ev.Previous.Lifetime != 300 ||
		ev.Registration.PeerAddr().String() != d.ep.LocalAddr().String() {
		t.Fatalf("updated %+v", ev.Registration)
	}
	// Update of an unknown location: 4.04; bad parameter: 4.00.
	if resp := post(t, d, f.addr, "/rd/zzzz", ""); resp.Code != codes.NotFound {
		t.Fatalf("unknown update: %v", resp.Code)
	}
	if resp := post(t, d, f.addr, loc+"?lt=abc", ""); resp.Code != codes.BadRequest || len(resp.Payload) == 0 {
		t.Fatalf("bad update: %v %q", resp.Code, resp.Payload)
	}
	// De-register.
	resp, err := d.ep.Delete(ctxT(t), f.addr, loc)
	if err != nil || resp.Code != codes.Deleted {
		t.Fatalf("De-register: %v %v", resp, err)
	}
	waitEvent(t, sub, Deregistered)
	if _, ok := f.srv.Lookup("dev-1"); ok {
		t.Fatal("still registered")
	}
	resp, _ = d.ep.Delete(ctxT(t), f.addr, loc)
	if resp.Code != codes.NotFound {
		t.Fatalf("second De-register: %v", resp.Code)
	}
	st := f.srv.Stats()
	if st.Registered.Load() != 1 || st.Updated.Load() != 1 || st.Deregistered.Load() != 1 || st.Rejected.Load() != 4 || st.WrongSource.Load() != 1 {
		t.Fatalf("stats reg=%d upd=%d dereg=%d rej=%d", st.Registered.Load(), st.Updated.Load(), st.Deregistered.Load(), st.Rejected.Load())
	}
}

func TestRegisterBadInput(t *testing.T) {
	f := newFixture(t, WithLifetimeBounds(10, 100000))
	d := newDevice(t)
	tests := []struct {
		name string
		code codes.Code
		req  func() *bearer.Request
	}{
		{"no ep", codes.BadRequest, func() *bearer.Request { return bearer.NewRequest(codes.POST, f.addr, "/rd?lt=60") }},
		{"bad binding", codes.BadRequest, func() *bearer.Request { return bearer.NewRequest(codes.POST, f.addr, "/rd?ep=a&b=X") }},
		{"version 1.9", codes.PreconditionFailed, func() *bearer.Request { return bearer.NewRequest(codes.POST, f.addr, "/rd?ep=a&lwm2m=1.9") }},
		{"lifetime bound", codes.BadRequest, func() *bearer.Request { return bearer.NewRequest(codes.POST, f.addr, "/rd?ep=a&lt=5") }},
		{"bad link", codes.BadRequest, func() *bearer.Request {
			r := bearer.NewRequest(codes.POST, f.addr, "/rd?ep=a")
			r.Payload = []byte("</3/0")
			return r
		}},
		{"wrong format", codes.UnsupportedMediaType, func() *bearer.Request {
			r := bearer.NewRequest(codes.POST, f.addr, "/rd?ep=a")
			r.SetOption(bearer.ContentFormatOption(message.AppJSON))
			r.Payload = []byte("{}")
			return r
		}},
		{"GET /rd", codes.MethodNotAllowed, func() *bearer.Request { return bearer.NewRequest(codes.GET, f.addr, "/rd") }},
		{"PUT /rd/1", codes.MethodNotAllowed, func() *bearer.Request { return bearer.NewRequest(codes.PUT, f.addr, "/rd/1") }},
		{"unknown path", codes.NotFound, func() *bearer.Request { return bearer.NewRequest(codes.POST, f.addr, "/bs?ep=a") }},
		{"send unregistered", codes.NotFound, func() *bearer.Request { return bearer.NewRequest(codes.POST, f.addr, "/dp") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := d.ep.Do(ctxT(t), tc.req())
			if err != nil {
				t.Fatal(err)
			}
			if resp.Code != tc.code {
				t.Fatalf("code %v, want %v (%s)", resp.Code, tc.code, resp.Payload)
			}
		})
	}
	if got := f.srv.Stats().Rejected.Load(); got != uint64(len(tests)) {
		t.Fatalf("Rejected = %d, want %d", got, len(tests))
	}
}

func TestSecurityBinding(t *testing.T) {
	sec := NewStaticSecurity(10)
	idA := bearer.Identity{Mode: "psk", PSKIdentity: []byte("id-a")}
	idB := bearer.Identity{Mode: "psk", PSKIdentity: []byte("id-b")}
	if err := sec.Bind("dev-a", idA); err != nil {
		t.Fatal(err)
	}
	sec.Bind("dev-b", idB)
	tests := []struct {
		name  string
		ep    string
		id    bearer.Identity
		nosec bool
		ok    bool
	}{
		{"own name", "dev-a", idA, false, true},
		{"A as B", "dev-b", idA, false, false},
		{"unbound name with bound identity", "dev-c", idA, false, false},
		{"bound name without identity", "dev-a", bearer.Identity{}, true, false},
		{"unbound identity, unbound name", "dev-c", bearer.Identity{Mode: "psk", PSKIdentity: []byte("x")}, false, true},
		{"nosec allowed", "dev-c", bearer.Identity{}, true, true},
		{"nosec refused", "dev-c", bearer.Identity{}, false, false},
		{"rpk vs psk", "dev-a", bearer.Identity{Mode: "rpk", PublicKey: []byte("id-a")}, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Authorize(sec, tc.nosec, tc.ep, tc.id)
			if (err == nil) != tc.ok {
				t.Errorf("%s: err = %v", tc.name, err)
			}
			if err != nil && !errors.Is(err, ErrForbidden) {
				t.Errorf("%s: %v does not wrap ErrForbidden", tc.name, err)
			}
		})
	}
	if ep, ok := sec.EndpointOf(idB); !ok || ep != "dev-b" {
		t.Fatal("EndpointOf")
	}
	// Rebinding an identity moves it.
	sec.Bind("dev-c", idB)
	if _, ok := sec.IdentityOf("dev-b"); ok || sec.Len() != 2 {
		t.Fatal("rebinding kept the old endpoint")
	}
	full := NewStaticSecurity(1)
	full.Bind("x", idA)
	if err := full.Bind("y", idB); !errors.Is(err, ErrTooManyBindings) {
		t.Fatalf("bound beyond max: %v", err)
	}
}

// identityAddr stands in for an address returned by bearer/secure.
type identityAddr struct {
	*net.UDPAddr
	id bearer.Identity
}

func (a identityAddr) PeerIdentity() bearer.Identity { return a.id }

// TestSecurityOverRegistration runs the binding through the handler with
// authenticated peers, as bearer/secure delivers them.
func TestSecurityOverRegistration(t *testing.T) {
	sec := NewStaticSecurity(0)
	idA := bearer.Identity{Mode: "psk", PSKIdentity: []byte("id-a")}
	sec.Bind("dev-a", idA)
	srv, err := New(new(registry.Memory), WithSecurity(sec), WithNoSec(false))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	h := srv.Handler("dtls")
	peer := identityAddr{&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4000}, idA}
	call := func(code codes.Code, p string, from net.Addr) *recorder {
		req := bearer.NewRequest(code, from, p)
		req.Identity = bearer.PeerIdentity(from)
		w := &recorder{}
		h.ServeCoAP(w, req)
		return w
	}
	if w := call(codes.POST, "/rd?ep=dev-b&lwm2m=1.1", peer); w.code != codes.Forbidden {
		t.Fatalf("A as B: %v", w.code)
	}
	// 1.1 Register without ep: the name comes from the identity.
	w := call(codes.POST, "/rd?lwm2m=1.1", peer)
	if w.code != codes.Created {
		t.Fatalf("no ep: %v %s", w.code, w.payload)
	}
	reg, ok := srv.Lookup("dev-a")
	if !ok || reg.Identity != "psk:id-a" {
		t.Fatalf("registration %+v", reg)
	}
	loc := reg.Location()
	// Another authenticated client may not update or delete A's registration.
	other := identityAddr{peer.UDPAddr, bearer.Identity{Mode: "psk", PSKIdentity: []byte("id-x")}}
	if w := call(codes.POST, loc+"?lt=5", other); w.code != codes.Forbidden {
		t.Fatalf("update by other: %v", w.code)
	}
	if w := call(codes.DELETE, loc, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4000}); w.code != codes.Forbidden {
		t.Fatalf("delete without identity: %v", w.code)
	}
	if w := call(codes.POST, loc+"?lt=5", peer); w.code != codes.Changed {
		t.Fatalf("own update: %v", w.code)
	}
	if got := srv.Stats().Forbidden.Load(); got != 3 {
		t.Fatalf("Forbidden = %d", got)
	}
}

type recorder struct {
	code    codes.Code
	payload []byte
	opts    message.Options
}

func (r *recorder) SetOption(o message.Option) { r.opts = r.opts.Set(o) }
func (r *recorder) AddOption(o message.Option) { r.opts = r.opts.Add(o) }
func (r *recorder) WriteResponse(c codes.Code, p []byte) error {
	r.code, r.payload = c, p
	return nil
}
func (r *recorder) Observe() (*bearer.Observer, error) { return nil, bearer.ErrNotObservable }

func TestExpiry(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	srv, err := New(new(registry.Memory), WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	sub := srv.Subscribe(8)
	h := srv.Handler("udp")
	w := &recorder{}
	h.ServeCoAP(w, bearer.NewRequest(codes.POST, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, "/rd?ep=short&lt=2"))
	if w.code != codes.Created {
		t.Fatal(w.code)
	}
	waitEvent(t, sub, Registered)
	// The timer is real; the clock says the lifetime has passed once the
	// loop looks, so the registration expires within ~2 s of real time.
	mu.Lock()
	now = now.Add(3 * time.Second)
	mu.Unlock()
	ev := waitEvent(t, sub, Expired)
	if ev.Registration.Endpoint != "short" || srv.Store().Len() != 0 || srv.Stats().Expired.Load() != 1 {
		t.Fatalf("expired %+v", ev.Registration)
	}
}

func TestDeviceManagement(t *testing.T) {
	f := newFixture(t)
	sub := f.srv.Subscribe(64)
	d := newDevice(t)
	m := d.mux
	m.HandleFunc("/3/0/0", func(w bearer.ResponseWriter, r *bearer.Request) {
		d.record(r)
		w.SetOption(bearer.ContentFormatOption(message.TextPlain))
		w.WriteResponse(codes.Content, []byte("ACME"))
	})
	m.HandleFunc("/3/0", func(w bearer.ResponseWriter, r *bearer.Request) {
		d.record(r)
		accept, _ := r.Options.Accept()
		if accept != message.AppLwm2mTLV {
			w.WriteResponse(codes.NotAcceptable, nil)
			return
		}
		w.SetOption(bearer.ContentFormatOption(message.AppLwm2mTLV))
		w.WriteResponse(codes.Content, []byte{0xC4, 0x00, 'A', 'C', 'M', 'E'})
	})
	m.HandleFunc("/3", func(w bearer.ResponseWriter, r *bearer.Request) {
		d.record(r)
		w.SetOption(bearer.ContentFormatOption(message.AppLinkFormat))
		w.WriteResponse(codes.Content, []byte(`</3>;ver=1.1,</3/0/0>,</3/0/13>;pmin=10`))
	})
	m.HandleFunc("/1/0/1", func(w bearer.ResponseWriter, r *bearer.Request) {
		d.record(r)
		w.WriteResponse(codes.Changed, nil)
	})
	m.HandleFunc("/3/0/4", func(w bearer.ResponseWriter, r *bearer.Request) {
		d.record(r)
		w.WriteResponse(codes.Changed, nil)
	})
	m.HandleFunc("/3303", func(w bearer.ResponseWriter, r *bearer.Request) {
		d.record(r)
		w.AddOption(message.Option{ID: message.LocationPath, Value: []byte("3303")})
		w.AddOption(message.Option{ID: message.LocationPath, Value: []byte("7")})
		w.WriteResponse(codes.Created, nil)
	})
	m.HandleFunc("/3303/7", func(w bearer.ResponseWriter, r *bearer.Request) {
		d.record(r)
		w.WriteResponse(codes.Deleted, nil)
	})
	m.HandleFunc("/", func(w bearer.ResponseWriter, r *bearer.Request) {
		if r.Path() != "/" {
			w.WriteResponse(codes.NotFound, nil)
			return
		}
		d.record(r)
		if r.Code == codes.FETCH {
			w.SetOption(bearer.ContentFormatOption(message.AppSenmlJSON))
			w.WriteResponse(codes.Content, []byte(`[{"n":"/3/0/0","vs":"ACME"}]`))
			return
		}
		w.WriteResponse(codes.Changed, nil)
	})
	var time13 observedResource
	m.HandleFunc("/3/0/13", time13.handler(message.TextPlain, []byte("1000"), d.record))

	resp := post(t, d, f.addr, "/rd?ep=dm&lwm2m=1.1&b=U", "</1/0>,</3/0>,</3303>")
	if resp.Code != codes.Created {
		t.Fatal(resp.Code)
	}
	ctx := ctxT(t)

	c, err := f.srv.Read(ctx, "dm", path.Resource(3, 0, 0))
	if err != nil || c.Text() != "ACME" || c.Format != FormatText {
		t.Fatalf("Read resource: %+v %v", c, err)
	}
	c, err = f.srv.Read(ctx, "dm", path.Instance(3, 0))
	if err != nil || c.Format != FormatTLV || len(c.Payload) != 6 {
		t.Fatalf("Read instance: %+v %v", c, err)
	}
	recs, err := f.srv.ReadValues(ctx, "dm", path.Instance(3, 0))
	if err != nil || len(recs) != 1 || recs[0].Path != path.Resource(3, 0, 0) || recs[0].Value.Str() != "ACME" {
		t.Fatalf("ReadValues: %v %v", recs, err)
	}
	recs, err = f.srv.ReadCompositeValues(ctx, "dm", path.Resource(3, 0, 0))
	if err != nil || len(recs) != 1 || recs[0].Value.Str() != "ACME" {
		t.Fatalf("ReadCompositeValues: %v %v", recs, err)
	}
	// SenML resolves a name as bn+n, so both forms name /3/0/0.
	if got := d.last(); got != `FETCH / [{"n":"/3/0/0"}]` && got != `FETCH / [{"bn":"/3/0/0"}]` {
		t.Fatalf("device saw %q", got)
	}
	_, err = f.srv.Read(ctx, "dm", path.Instance(3, 0), WithFormat(FormatSenMLCBOR))
	if Code(err) != codes.NotAcceptable {
		t.Fatalf("Read unacceptable: %v", err)
	}
	_, err = f.srv.Read(ctx, "dm", path.Resource(5, 0, 3))
	var lerr *Error
	if !errors.As(err, &lerr) || lerr.Code != codes.NotFound || lerr.Endpoint != "dm" || lerr.Path != "/5/0/3" {
		t.Fatalf("Read missing: %v", err)
	}
	if _, err := f.srv.Read(ctx, "nobody", path.Root); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("Read unregistered: %v", err)
	}
	links, err := f.srv.Discover(ctx, "dm", path.Object(3))
	if err != nil || len(links) != 3 || links[2].Target != "/3/0/13" {
		t.Fatalf("Discover: %v %v", links, err)
	}
	if err := f.srv.Write(ctx, "dm", path.Resource(1, 0, 1), Replace, Content{Format: FormatText, Payload: []byte("300")}); err != nil {
		t.Fatal(err)
	}
	if got := d.last(); got != "PUT /1/0/1 300" {
		t.Fatalf("device saw %q", got)
	}
	if err := f.srv.Write(ctx, "dm", path.Object(1), Replace, Content{}); Code(err) != codes.MethodNotAllowed {
		t.Fatalf("Write object: %v", err)
	}
	if err := f.srv.Execute(ctx, "dm", path.Resource(3, 0, 4), ExecuteArgs(map[int]string{1: "", 0: "on"})); err != nil {
		t.Fatal(err)
	}
	if got := d.last(); got != "POST /3/0/4 0='on',1" {
		t.Fatalf("device saw %q", got)
	}
	if err := f.srv.WriteAttributes(ctx, "dm", path.Resource(3, 0, 13), link.Attributes{Pmin: link.Ptr[uint32](5), Pmax: link.Ptr[uint32](60)}, "gt"); err != nil {
		t.Fatal(err)
	}
	if got := d.last(); got != "PUT /3/0/13?pmin=5&pmax=60&gt" {
		t.Fatalf("device saw %q", got)
	}
	np, err := f.srv.Create(ctx, "dm", path.Object(3303), Content{Format: FormatTLV, Payload: []byte{0xC1, 0x00, 0x01}})
	if err != nil || np != path.Instance(3303, 7) {
		t.Fatalf("Create: %v %v", np, err)
	}
	if err := f.srv.Delete(ctx, "dm", path.Instance(3303, 7)); err != nil {
		t.Fatal(err)
	}
	rc, err := f.srv.ReadComposite(ctx, "dm", Content{Format: FormatSenMLJSON, Payload: []byte(`[{"n":"/3/0/0"}]`)})
	if err != nil || rc.Format != FormatSenMLJSON || !strings.Contains(string(rc.Payload), "ACME") {
		t.Fatalf("ReadComposite: %+v %v", rc, err)
	}
	if err := f.srv.WriteComposite(ctx, "dm", Content{Format: FormatSenMLJSON, Payload: []byte(`[{"n":"/1/0/1","v":60}]`)}); err != nil {
		t.Fatal(err)
	}
	if got := d.last(); !strings.HasPrefix(got, "iPATCH / ") && !strings.HasPrefix(got, "IPATCH / ") {
		t.Fatalf("device saw %q", got)
	}

	// Observe, two notifications, cancel.
	notes := make(chan Notification, 4)
	o, first, err := f.srv.Observe(ctx, "dm", path.Resource(3, 0, 13), func(n Notification) { notes <- n })
	if err != nil || first.Text() != "1000" {
		t.Fatalf("Observe: %+v %v", first, err)
	}
	dev := time13.observer()
	if dev == nil {
		t.Fatal("device did not accept the observation")
	}
	for _, v := range []string{"1001", "1002"} {
		if err := dev.Notify(ctx, codes.Content, []byte(v), bearer.ContentFormatOption(message.TextPlain)); err != nil {
			t.Fatal(err)
		}
		select {
		case n := <-notes:
			if n.Content.Text() != v || n.Endpoint != "dm" {
				t.Fatalf("notification %+v", n)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("no notification")
		}
	}
	if ev := waitEvent(t, sub, Notified); ev.Notification.Content.Text() != "1001" {
		t.Fatalf("event %+v", ev.Notification)
	}
	if f.srv.Observations() != 1 {
		t.Fatal("observation not kept")
	}
	if err := f.srv.CancelObservation(ctx, "dm", path.Resource(3, 0, 13)); err != nil {
		t.Fatal(err)
	}
	<-o.Done()
	if f.srv.Observations() != 0 {
		t.Fatal("observation kept after cancel")
	}
	if err := f.srv.CancelObservation(ctx, "dm", path.Resource(3, 0, 13)); !errors.Is(err, ErrNoObservation) {
		t.Fatalf("second cancel: %v", err)
	}
}

func TestSend(t *testing.T) {
	got := make(chan SendEvent, 1)
	f := newFixture(t, WithSendHandler(func(ev SendEvent) { got <- ev }))
	d := newDevice(t)
	if resp := post(t, d, f.addr, "/rd?ep=sender&lwm2m=1.1", "</3/0>"); resp.Code != codes.Created {
		t.Fatal(resp.Code)
	}
	req := bearer.NewRequest(codes.POST, f.addr, "/dp")
	req.SetOption(bearer.ContentFormatOption(message.AppSenmlJSON))
	req.Payload = []byte(`[{"n":"/3303/0/5700","v":21.5}]`)
	resp, err := d.ep.Do(ctxT(t), req)
	if err != nil || resp.Code != codes.Changed {
		t.Fatalf("Send: %v %v", resp, err)
	}
	select {
	case ev := <-got:
		if ev.Endpoint != "sender" || ev.Content.Format != FormatSenMLJSON {
			t.Fatalf("send event %+v", ev)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no Send callback")
	}
	req.SetOption(bearer.ContentFormatOption(message.TextPlain))
	resp, _ = d.ep.Do(ctxT(t), req)
	if resp.Code != codes.UnsupportedMediaType {
		t.Fatalf("Send text: %v", resp.Code)
	}
}

func TestSubscriptionBounded(t *testing.T) {
	srv, err := New(new(registry.Memory))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	sub := srv.Subscribe(1)
	h := srv.Handler("udp")
	for i := range 3 {
		w := &recorder{}
		h.ServeCoAP(w, bearer.NewRequest(codes.POST, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1000 + i}, "/rd?ep=e"+string(rune('a'+i))))
		if w.code != codes.Created {
			t.Fatal(w.code)
		}
	}
	if sub.Dropped() != 2 || srv.Stats().EventsDropped.Load() != 2 {
		t.Fatalf("dropped %d / %d", sub.Dropped(), srv.Stats().EventsDropped.Load())
	}
	if ev := <-sub.C; ev.Registration.Endpoint != "ea" {
		t.Fatalf("first event %+v", ev)
	}
	sub.Close()
	if _, ok := <-sub.C; ok {
		t.Fatal("channel open after Close")
	}
	srv.Close()
	if s2 := srv.Subscribe(1); s2 == nil {
		t.Fatal("nil subscription after Close")
	} else if _, ok := <-s2.C; ok {
		t.Fatal("subscription after Close is open")
	}
}

// TestPeerCheck binds NoSec SMS clients by number: a device may register,
// update and de-register only as the endpoint its MSISDN is configured
// for, and only from that number.
func TestPeerCheck(t *testing.T) {
	numbers := map[string]string{"lamp-1": "+491710000001", "lamp-2": "+491710000002"}
	var calls []string
	check := func(ep, transport string, peer net.Addr, id bearer.Identity) error {
		calls = append(calls, ep+"|"+transport)
		if transport != "sms" {
			return nil
		}
		if want, ok := numbers[ep]; !ok || peer.String() != want {
			return fmt.Errorf("number %s is not the one configured for %q", peer, ep)
		}
		return nil
	}
	srv, err := New(new(registry.Memory), WithPeerCheck(check))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	h := srv.Handler("sms")
	call := func(code codes.Code, p string, from string) *recorder {
		addr, err := sms.ParseMSISDN(from)
		if err != nil {
			t.Fatal(err)
		}
		req := bearer.NewRequest(code, addr, p)
		w := &recorder{}
		h.ServeCoAP(w, req)
		return w
	}
	w := call(codes.POST, "/rd?ep=lamp-2&lwm2m=1.1&b=S", "+491710000001")
	if w.code != codes.Forbidden || !strings.Contains(string(w.payload), `configured for "lamp-2"`) {
		t.Fatalf("lamp-1 as lamp-2: %v %s", w.code, w.payload)
	}
	if _, ok := srv.Lookup("lamp-2"); ok {
		t.Fatal("refused registration stored")
	}
	if w := call(codes.POST, "/rd?ep=lamp-1&lwm2m=1.1&b=S", "+491710000001"); w.code != codes.Created {
		t.Fatalf("own name: %v %s", w.code, w.payload)
	}
	reg, _ := srv.Lookup("lamp-1")
	loc := reg.Location()
	if w := call(codes.POST, loc+"?lt=600", "+491710000002"); w.code != codes.Forbidden {
		t.Fatalf("update from another number: %v", w.code)
	}
	if w := call(codes.DELETE, loc, "+491710000002"); w.code != codes.Forbidden {
		t.Fatalf("de-register from another number: %v", w.code)
	}
	if w := call(codes.POST, loc+"?lt=600", "+491710000001"); w.code != codes.Changed {
		t.Fatalf("own update: %v", w.code)
	}
	if w := call(codes.DELETE, loc, "+491710000001"); w.code != codes.Deleted {
		t.Fatalf("own de-register: %v", w.code)
	}
	if got := srv.Stats().Forbidden.Load(); got != 3 {
		t.Fatalf("Forbidden = %d", got)
	}
	if len(calls) != 6 {
		t.Fatalf("check ran %d times: %v", len(calls), calls)
	}
}
