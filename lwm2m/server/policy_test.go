package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/secure"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/smswake"
)

// policyPeer is one way a request arrives: over transport, from addr,
// with an identity (zero for NoSec).
type policyPeer struct {
	transport string
	addr      net.Addr
}

func udpPeer(port int) policyPeer {
	return policyPeer{"udp", &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: port}}
}

func dtlsPeer(port int, psk string) policyPeer {
	return policyPeer{"dtls", identityAddr{&net.UDPAddr{IP: net.IPv4(192, 0, 2, 2), Port: port},
		bearer.Identity{Mode: "psk", PSKIdentity: []byte(psk)}}}
}

func smsPeer(t testing.TB, number string) policyPeer {
	a, err := sms.ParseMSISDN(number)
	if err != nil {
		t.Fatal(err)
	}
	return policyPeer{"sms", a}
}

// dtlsSMSPeer is a DTLS peer over SMS: the number and the PSK identity.
func dtlsSMSPeer(t testing.TB, number, psk string) policyPeer {
	return policyPeer{"sms", &secure.Addr{Inner: smsPeer(t, number).addr, Identity: bearer.Identity{Mode: "psk", PSKIdentity: []byte(psk)}}}
}

// call sends one registration-interface request straight to the handler.
func (p policyPeer) call(s *Server, code codes.Code, uri string, payload ...string) *recorder {
	req := bearer.NewRequest(code, p.addr, uri)
	req.Identity = bearer.PeerIdentity(p.addr)
	if len(payload) > 0 {
		req.SetOption(bearer.ContentFormatOption(message.AppLinkFormat))
		req.Payload = []byte(payload[0])
	}
	w := &recorder{}
	s.Handler(p.transport).ServeCoAP(w, req)
	return w
}

// policyFixture is a server with the deployment the issue describes: a
// PSK-bound light, an SMS-only light, a UDP light in queue mode whose
// number is configured for wake-ups (NoSec allowed), and a NoSec rule.
func policyFixture(t testing.TB, nosec NoSecRule, opts ...Option) *Server {
	t.Helper()
	sec := NewStaticSecurity(0)
	for ep, b := range map[string]Binding{
		"light-dtls-1":  {Identity: bearer.Identity{Mode: "psk", PSKIdentity: []byte("light-dtls-1")}},
		"light-sms-1":   {MSISDN: "+491720000003"},
		"light-queue-1": {MSISDN: "+491720000001", NoSec: true},
		"meter-dtls-sms": {Identity: bearer.Identity{Mode: "psk", PSKIdentity: []byte("meter-dtls-sms")},
			MSISDN: "+491720000005", SMSSecured: true},
	} {
		if err := sec.Set(ep, b); err != nil {
			t.Fatalf("bind %s: %v", ep, err)
		}
	}
	srv, err := New(new(registry.Memory), append([]Option{WithSecurity(sec), WithNoSecRule(nosec)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// TestPolicyRegister: who may register which name, one case per rule.
func TestPolicyRegister(t *testing.T) {
	lights, err := NoSecNames("light-udp-*", "light-queue-1", "meter-7")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		nosec NoSecRule
		peer  policyPeer
		query string
		want  codes.Code
		why   string // part of the diagnostic payload of a refusal
	}{
		{"PSK-bound name over UDP (hijack)", NoSecAll(), udpPeer(1), "ep=light-dtls-1&b=U", codes.Forbidden, "requires identity"},
		{"PSK-bound name with its PSK", NoSecNone(), dtlsPeer(1, "light-dtls-1"), "ep=light-dtls-1&b=U", codes.Created, ""},
		{"PSK-bound name with an unbound PSK", NoSecAll(), dtlsPeer(1, "stranger"), "ep=light-dtls-1&b=U", codes.Forbidden, "requires identity"},
		{"bound PSK as another name", NoSecAll(), dtlsPeer(1, "light-dtls-1"), "ep=light-udp-9&b=U", codes.Forbidden, "bound to another endpoint"},
		{"SMS-only name over UDP (hijack)", NoSecAll(), udpPeer(1), "ep=light-sms-1&b=U", codes.Forbidden, "registers only over SMS"},
		{"SMS-only name over DTLS with an unbound PSK", NoSecAll(), dtlsPeer(1, "stranger"), "ep=light-sms-1&b=U", codes.Forbidden, "registers only over SMS"},
		{"SMS-only name from its number", NoSecNone(), smsPeer(t, "+491720000003"), "ep=light-sms-1&b=S", codes.Created, ""},
		{"SMS-only name from another number", NoSecAll(), smsPeer(t, "+491720000099"), "ep=light-sms-1&b=S", codes.Forbidden, "only from its configured number"},
		{"bound number as another name", NoSecAll(), smsPeer(t, "+491720000003"), "ep=x&b=S", codes.Forbidden, "bound to another endpoint"},
		{"queue light over UDP, NoSec allowed for it", lights, udpPeer(1), "ep=light-queue-1&lwm2m=1.0&b=UQS&sms=491720000001", codes.Created, ""},
		{"queue light over UDP, NoSec denied", NoSecNone(), udpPeer(1), "ep=light-queue-1&b=UQ", codes.Forbidden, "bound to SMS number"},
		{"unbound name in the NoSec list", lights, udpPeer(1), "ep=light-udp-3&b=U", codes.Created, ""},
		{"unbound exact name in the NoSec list", lights, udpPeer(1), "ep=meter-7&b=U", codes.Created, ""},
		{"unbound name outside the NoSec list", lights, udpPeer(1), "ep=meter-70&b=U", codes.Forbidden, "NoSec is not allowed"},
		{"unbound name, NoSec denied", NoSecNone(), udpPeer(1), "ep=x&b=U", codes.Forbidden, "NoSec is not allowed"},
		{"unbound name over SMS from an unbound number, NoSec denied", NoSecNone(), smsPeer(t, "+491720000099"), "ep=x&b=S", codes.Forbidden, "NoSec is not allowed"},
		{"unbound name with an unbound identity", NoSecNone(), dtlsPeer(1, "stranger"), "ep=x&b=U", codes.Created, ""},
		{"SMS-secured name from its number in plain", NoSecAll(), smsPeer(t, "+491720000005"), "ep=meter-dtls-sms&b=S", codes.Forbidden, "only with its security identity"},
		{"SMS-secured name over DTLS over SMS", NoSecNone(), dtlsSMSPeer(t, "+491720000005", "meter-dtls-sms"), "ep=meter-dtls-sms&b=S", codes.Created, ""},
		{"SMS-secured name over DTLS over SMS from another number", NoSecAll(), dtlsSMSPeer(t, "+491720000099", "meter-dtls-sms"), "ep=meter-dtls-sms&b=S", codes.Forbidden, "only from its configured number"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := policyFixture(t, tc.nosec)
			w := registerQ(srv, tc.peer, tc.query)
			if w.code != tc.want {
				t.Fatalf("code %v, want %v (%s)", w.code, tc.want, w.payload)
			}
			if tc.why != "" && !strings.Contains(string(w.payload), tc.why) {
				t.Fatalf("diagnostic %q does not say %q", w.payload, tc.why)
			}
			ep := strings.TrimPrefix(strings.Split(tc.query, "&")[0], "ep=")
			_, stored := srv.Lookup(ep)
			if stored != (tc.want == codes.Created) {
				t.Fatalf("stored = %v", stored)
			}
			if tc.want == codes.Forbidden && srv.Stats().Forbidden.Load() == 0 {
				t.Fatal("refusal not counted")
			}
		})
	}
}

// registerQ sends a Register with the queries of q ("k=v&k=v").
func registerQ(s *Server, p policyPeer, q string) *recorder {
	req := bearer.NewRequest(codes.POST, p.addr, "/rd")
	for _, kv := range strings.Split(q, "&") {
		req.AddOption(bearer.StringOption(message.URIQuery, kv))
	}
	req.Identity = bearer.PeerIdentity(p.addr)
	req.SetOption(bearer.ContentFormatOption(message.AppLinkFormat))
	req.Payload = []byte("</1/0>,</3/0>")
	w := &recorder{}
	s.Handler(p.transport).ServeCoAP(w, req)
	return w
}

func location(w *recorder) string {
	var segs []string
	for _, o := range w.opts {
		if o.ID == message.LocationPath {
			segs = append(segs, string(o.Value))
		}
	}
	return "/" + strings.Join(segs, "/")
}

// TestPolicyUpdateDeregister: Update and De-register come from the
// identity that registered; a NoSec registration from its source address.
func TestPolicyUpdateDeregister(t *testing.T) {
	srv := policyFixture(t, NoSecAll())
	owner, other := udpPeer(1000), udpPeer(2000)
	w := registerQ(srv, owner, "ep=plain&b=U")
	if w.code != codes.Created {
		t.Fatal(w.code)
	}
	loc := location(w)
	queueLight := udpPeer(3000)
	if w := registerQ(srv, queueLight, "ep=light-queue-1&lwm2m=1.0&b=UQS"); w.code != codes.Created {
		t.Fatal(w.code, string(w.payload))
	}
	qreg, _ := srv.Lookup("light-queue-1")
	dtls := dtlsPeer(4000, "light-dtls-1")
	w = registerQ(srv, dtls, "ep=light-dtls-1&b=U")
	if w.code != codes.Created {
		t.Fatal(w.code)
	}
	dloc := location(w)
	tests := []struct {
		name string
		peer policyPeer
		code codes.Code
		uri  string
		want codes.Code
	}{
		{"update from another port", other, codes.POST, loc + "?lt=60", codes.NotFound},
		{"update from another IP, same port", policyPeer{"udp", &net.UDPAddr{IP: net.IPv4(192, 0, 2, 9), Port: 1000}}, codes.POST, loc + "?lt=60", codes.NotFound},
		{"de-register from another port", other, codes.DELETE, loc, codes.NotFound},
		{"update with an identity", dtlsPeer(1000, "x"), codes.POST, loc + "?lt=60", codes.Forbidden},
		{"update from the source", owner, codes.POST, loc + "?lt=60", codes.Changed},
		{"guessed location", other, codes.POST, "/rd/1?lt=60", codes.NotFound},
		{"queue light updates over SMS from its bound number", smsPeer(t, "+491720000001"), codes.POST, qreg.Location(), codes.Changed},
		{"queue light over SMS from another number", smsPeer(t, "+491720000002"), codes.POST, qreg.Location(), codes.Forbidden},
		{"DTLS registration from NoSec, same address", policyPeer{"udp", dtls.addr.(identityAddr).UDPAddr}, codes.POST, dloc, codes.Forbidden},
		{"DTLS registration with another PSK", dtlsPeer(4000, "light-sms-1"), codes.DELETE, dloc, codes.Forbidden},
		{"DTLS registration from a new address (CID)", dtlsPeer(4999, "light-dtls-1"), codes.POST, dloc + "?lt=60", codes.Changed},
		{"de-register from the source", owner, codes.DELETE, loc, codes.Deleted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if w := tc.peer.call(srv, tc.code, tc.uri); w.code != tc.want {
				t.Fatalf("code %v, want %v (%s)", w.code, tc.want, w.payload)
			}
		})
	}
	if got := srv.Stats().WrongSource.Load(); got != 3 {
		t.Fatalf("WrongSource = %d, want 3", got)
	}
}

// TestRegistrationFlood: one source is held to its rate with 4.29 and
// Max-Age; another source is not affected; an IPv6 /64 is one source; the
// sources tracked stay bounded.
func TestRegistrationFlood(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	srv, err := New(new(registry.Memory), WithClock(clock),
		WithLimits(Limits{SourceRate: 10, SourceBurst: 20, MaxSources: 8}))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	a := udpPeer(1)
	created := 0
	for i := range 1000 {
		w := registerQ(srv, a, fmt.Sprintf("ep=flood-%d&b=U", i))
		switch w.code {
		case codes.Created:
			created++
		case codes.TooManyRequests:
			if age, err := w.opts.GetUint32(message.MaxAge); err != nil || age < 1 {
				t.Fatalf("4.29 without Max-Age: %v", err)
			}
		default:
			t.Fatalf("%v %s", w.code, w.payload)
		}
	}
	if created != 20 || srv.Stats().RateLimited.Load() != 980 || srv.Store().Len() != 20 {
		t.Fatalf("created %d, rate limited %d", created, srv.Stats().RateLimited.Load())
	}
	if w := registerQ(srv, udpPeer(2), "ep=b&b=U"); w.code != codes.TooManyRequests {
		t.Fatalf("another port of the same address is the same source: want 4.29, got %v", w.code)
	}
	if w := registerQ(srv, policyPeer{"udp", &net.UDPAddr{IP: net.IPv4(198, 51, 100, 7), Port: 1}}, "ep=c&b=U"); w.code != codes.Created {
		t.Fatalf("another source: %v", w.code)
	}
	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	n := 0
	for i := range 20 {
		if w := registerQ(srv, a, fmt.Sprintf("ep=later-%d&b=U", i)); w.code == codes.Created {
			n++
		}
	}
	if n != 10 {
		t.Fatalf("after 1 s at 10/s: %d accepted", n)
	}
	// One IPv6 /64 is one source.
	v6 := func(host byte) policyPeer {
		return policyPeer{"udp", &net.UDPAddr{IP: net.ParseIP(fmt.Sprintf("2001:db8:1:2::%x", host)), Port: 5683}}
	}
	n = 0
	for i := range 40 {
		if w := registerQ(srv, v6(byte(i)), fmt.Sprintf("ep=v6-%d&b=U", i)); w.code == codes.Created {
			n++
		}
	}
	if n != 20 {
		t.Fatalf("40 hosts of one /64: %d accepted, want the burst of 20", n)
	}
	// Many sources: the table stays bounded (the others share a bucket).
	for i := range 200 {
		registerQ(srv, policyPeer{"udp", &net.UDPAddr{IP: net.IPv4(10, 0, byte(i), 1), Port: 1}}, fmt.Sprintf("ep=m-%d&b=U", i))
	}
	if got := srv.sources.tracked(); got > 8 {
		t.Fatalf("%d sources tracked, max 8", got)
	}
}

// TestRegistrationLimits: lifetime bounds (enforced by default), payload
// and attribute sizes, a full registry.
func TestRegistrationLimits(t *testing.T) {
	attr := `</1/0>;x="` + strings.Repeat("a", 60<<10) + `"`
	tests := []struct {
		name    string
		opts    []Option
		store   registry.Options
		query   string
		payload string
		want    codes.Code
	}{
		{"lifetime 2^32-1 refused by default", nil, registry.Options{}, "ep=a&lt=4294967295", "</1/0>", codes.BadRequest},
		{"lifetime of 30 days accepted by default", nil, registry.Options{}, "ep=a&lt=2592000", "</1/0>", codes.Created},
		{"lifetime over 30 days refused by default", nil, registry.Options{}, "ep=a&lt=2592001", "</1/0>", codes.BadRequest},
		{"any lifetime when allowed explicitly", []Option{WithLifetimeBounds(1, math.MaxUint32)}, registry.Options{}, "ep=a&lt=4294967295", "</1/0>", codes.Created},
		{"lifetime under the minimum", []Option{WithLifetimeBounds(60, 0)}, registry.Options{}, "ep=a&lt=59", "</1/0>", codes.BadRequest},
		{"60 KB link attribute", nil, registry.Options{}, "ep=a", attr, codes.BadRequest},
		{"object list over 64 KiB", nil, registry.Options{}, "ep=a", strings.Repeat("</3/0>,", 10000) + "</3/0>", codes.RequestEntityTooLarge},
		{"registry full", nil, registry.Options{MaxRegistrations: 1}, "ep=a", "</1/0>", codes.ServiceUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store, err := registry.NewMemory(tc.store)
			if err != nil {
				t.Fatal(err)
			}
			if tc.store.MaxRegistrations == 1 {
				now := time.Now().UnixNano()
				if _, err := store.Add(context.Background(), &registry.Registration{Endpoint: "first", Lifetime: 3600,
					Version: registry.V1_1, Binding: registry.BindingU, Registered: now, Updated: now}); err != nil {
					t.Fatal(err)
				}
			}
			srv, err := New(store, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			req := bearer.NewRequest(codes.POST, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}, "/rd")
			for _, kv := range strings.Split(tc.query, "&") {
				req.AddOption(bearer.StringOption(message.URIQuery, kv))
			}
			req.SetOption(bearer.ContentFormatOption(message.AppLinkFormat))
			req.Payload = []byte(tc.payload)
			w := &recorder{}
			srv.Handler("udp").ServeCoAP(w, req)
			if w.code != tc.want {
				t.Fatalf("code %v, want %v (%.200s)", w.code, tc.want, w.payload)
			}
			st := srv.Stats()
			switch tc.want {
			case codes.BadRequest:
				if strings.HasPrefix(tc.query, "ep=a&lt") && st.BadLifetime.Load() != 1 {
					t.Fatal("lifetime refusal not counted")
				}
			case codes.RequestEntityTooLarge:
				if st.TooLarge.Load() != 1 {
					t.Fatal("not counted")
				}
			case codes.ServiceUnavailable:
				if age, err := w.opts.GetUint32(message.MaxAge); st.Full.Load() != 1 || err != nil || age == 0 {
					t.Fatalf("full: counted %d, Max-Age %d %v", st.Full.Load(), age, err)
				}
			}
			if len(w.payload) > 300 {
				t.Fatalf("diagnostic of %d bytes", len(w.payload))
			}
		})
	}
}

// TestRefusalLogBounded: 10,000 refused requests write a bounded number of
// log lines; Stats carry the totals.
func TestRefusalLogBounded(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	srv, err := New(new(registry.Memory), WithNoSec(false),
		WithLogger(slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, nil))), WithLimits(Limits{SourceRate: -1}))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for i := range 10000 {
		w := registerQ(srv, udpPeer(i%60000+1), "ep=x&b=U")
		if w.code != codes.Forbidden {
			t.Fatal(w.code)
		}
	}
	mu.Lock()
	lines := strings.Count(buf.String(), "\n")
	size := buf.Len()
	mu.Unlock()
	st := srv.Stats()
	t.Logf("10,000 refusals: %d log lines, %d bytes; Rejected %d, LogSuppressed %d", lines, size, st.Rejected.Load(), st.LogSuppressed.Load())
	if lines > 20 || st.Rejected.Load() != 10000 || st.LogSuppressed.Load() != uint64(10000-lines) {
		t.Fatalf("%d lines; stats %d/%d", lines, st.Rejected.Load(), st.LogSuppressed.Load())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestSecurityDefaults: one case per security-relevant default of the
// package, so a change to any of them fails here and is a decision.
func TestSecurityDefaults(t *testing.T) {
	t.Run("zero NoSecRule allows no name", func(t *testing.T) {
		if (NoSecRule{}).Allows("x") || NoSecNone().Allows("") {
			t.Fatal("allowed")
		}
	})
	t.Run("NoSecNames refuses bad patterns", func(t *testing.T) {
		for _, p := range []string{"", "a*b", "**"} {
			t.Run(p, func(t *testing.T) {
				if _, err := NoSecNames(p); err == nil {
					t.Errorf("%q accepted", p)
				}
			})
		}
	})
	t.Run("zero Binding grants nothing", func(t *testing.T) {
		sec := NewStaticSecurity(0)
		if err := sec.Set("x", Binding{}); err != nil || sec.Len() != 0 {
			t.Fatalf("%v %d", err, sec.Len())
		}
		p := policy{bindings: sec, nosec: NoSecAll()}
		sec.Set("y", Binding{MSISDN: "+491720000001"})
		if err := p.bound("y", &net.UDPAddr{}, bearer.Identity{}); !errors.Is(err, ErrForbidden) {
			t.Fatalf("a binding with only a number let NoSec UDP in: %v", err)
		}
	})
	t.Run("zero StaticSecurity is usable", func(t *testing.T) {
		var s StaticSecurity
		id := bearer.Identity{Mode: "psk", PSKIdentity: []byte("a")}
		if err := s.Bind("a", id); err != nil {
			t.Fatal(err)
		}
		if ep, ok := s.EndpointOf(id); !ok || ep != "a" || s.Len() != 1 {
			t.Fatal("lookup")
		}
		s.Unbind("a")
		var z StaticSecurity
		z.Unbind("none")
		if _, ok := z.Binding("x"); ok {
			t.Fatal("binding in a zero table")
		}
	})
	t.Run("library NoSec default is allow, documented", func(t *testing.T) {
		srv, err := New(new(registry.Memory))
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		if !srv.policy.nosec.Allows("any") {
			t.Fatal("default changed: update WithNoSecRule's documentation and SECURITY.md")
		}
	})
	t.Run("limits on by default", func(t *testing.T) {
		l := Limits{}.withDefaults()
		if l.SourceRate != DefaultSourceRate || l.SourceBurst != DefaultSourceBurst || l.MaxLifetime != DefaultMaxLifetime || l.MinLifetime != 1 {
			t.Fatalf("%+v", l)
		}
		if newSourceLimiter(l) == nil {
			t.Fatal("no rate limit by default")
		}
		if newSourceLimiter(Limits{SourceRate: -1}.withDefaults()) != nil {
			t.Fatal("negative rate does not lift the limit")
		}
	})
	t.Run("QueueConfig Peers: zero smswake.Peers Security is DTLS", func(t *testing.T) {
		sec := NewStaticSecurity(0)
		sec.Set("q", Binding{MSISDN: "+491720000001", NoSec: true})
		srv, err := New(new(registry.Memory), WithSecurity(sec))
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		peers := &peerRecorder{}
		q, err := srv.EnableQueue(QueueConfig{Config: queue.Config{Store: queue.NewMemStore()}, Peers: smswake.Peers{Setter: peers}})
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		if w := registerQ(srv, udpPeer(1), "ep=q&lwm2m=1.0&b=UQS"); w.code != codes.Created {
			t.Fatal(w.code)
		}
		got := peers.get()
		if len(got) != 1 || got["+491720000001"].Security != sms.ModeDTLS {
			t.Fatalf("peers added %+v; want the configured number as DTLS", got)
		}
	})
	t.Run("sms= of a registration never becomes an SMS peer", func(t *testing.T) {
		srv, err := New(new(registry.Memory))
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		peers := &peerRecorder{}
		q, err := srv.EnableQueue(QueueConfig{Config: queue.Config{Store: queue.NewMemStore()}, Peers: smswake.Peers{Setter: peers, Security: sms.ModeNoSec}})
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		if w := registerQ(srv, udpPeer(1), "ep=x&lwm2m=1.0&b=UQS&sms=4915100000001"); w.code != codes.Created {
			t.Fatal(w.code)
		}
		if got := peers.get(); len(got) != 0 {
			t.Fatalf("peers added from sms=: %+v", got)
		}
	})
}

type peerRecorder struct {
	mu sync.Mutex
	m  map[string]sms.Peer
}

func (p *peerRecorder) AddPeer(number string, peer sms.Peer) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]sms.Peer{}
	}
	p.m[number] = peer
	return nil
}

func (p *peerRecorder) get() map[string]sms.Peer {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]sms.Peer{}
	for k, v := range p.m {
		out[k] = v
	}
	return out
}

// TestStaticSecurityMoves: an identity or number bound again moves to the
// new endpoint; the old one keeps the rest of its binding.
func TestStaticSecurityMoves(t *testing.T) {
	s := NewStaticSecurity(0)
	id := bearer.Identity{Mode: "psk", PSKIdentity: []byte("k")}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Set("a", Binding{Identity: id, MSISDN: "00491720000001"}))
	if ep, ok := s.EndpointOfNumber("+491720000001"); !ok || ep != "a" {
		t.Fatal("number not normalised")
	}
	must(s.Set("b", Binding{MSISDN: "+491720000001"}))
	if b, _ := s.Binding("a"); b.MSISDN != "" || !SameIdentity(b.Identity, id) {
		t.Fatalf("a kept %+v", b)
	}
	must(s.Bind("b", id))
	if _, ok := s.Binding("a"); ok || s.Len() != 1 {
		t.Fatal("a should be gone with nothing left")
	}
	if b, _ := s.Binding("b"); b.MSISDN != "+491720000001" || !SameIdentity(b.Identity, id) {
		t.Fatalf("b %+v", b)
	}
	if err := s.Set("c", Binding{MSISDN: "12"}); err == nil {
		t.Fatal("bad number accepted")
	}
}

// TestAccountCheck: a bootstrap account's security mode must fit its URI
// and credentials (Mode's zero value is PSK in the LwM2M numbering).
func TestAccountCheck(t *testing.T) {
	tests := []struct {
		name string
		a    Account
		ok   bool
	}{
		{"coap NoSec", Account{ServerURI: "coap://h:5683", Mode: ModeNoSec}, true},
		{"coap with Mode forgotten (zero = PSK)", Account{ServerURI: "coap://h:5683"}, false},
		{"coaps PSK", Account{ServerURI: "coaps://h:5684", Mode: ModePSK, Identity: []byte("id"), SecretKey: []byte("k")}, true},
		{"coaps PSK without key", Account{ServerURI: "coaps://h:5684", Identity: []byte("id")}, false},
		{"coaps NoSec", Account{ServerURI: "coaps://h:5684", Mode: ModeNoSec}, false},
		{"coaps certificate", Account{ServerURI: "coaps://h:5684", Mode: ModeCert}, true},
		{"unknown mode", Account{ServerURI: "coaps://h", Mode: 9}, false},
		{"sms NoSec", Account{ServerURI: "sms://+491710000001", Mode: ModeNoSec}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.a.Check(); (err == nil) != tc.ok {
				t.Fatalf("Check() = %v", err)
			}
		})
	}
}
