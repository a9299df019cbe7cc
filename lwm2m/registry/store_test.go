package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"pgregory.net/rapid"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newReg(ep string, lt uint32, updated time.Time) *Registration {
	r := &Registration{Endpoint: ep, Lifetime: lt, Version: V1_1, Binding: BindingU,
		Registered: updated.UnixNano(), Updated: updated.UnixNano(),
		Objects: []ObjectLink{{Object: 1, Instance: 0}, {Object: 3, Instance: 0, VerMajor: 1, VerMinor: 2}}}
	r.SetPeerAddr(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5683})
	return r
}

func stores(t *testing.T) map[string]func(o Options) Store {
	dir := t.TempDir()
	n := 0
	return map[string]func(o Options) Store{
		"memory": func(o Options) Store {
			m, err := NewMemory(o)
			if err != nil {
				t.Fatal(err)
			}
			return m
		},
		"bolt": func(o Options) Store {
			n++
			b, err := OpenBolt(filepath.Join(dir, fmt.Sprintf("s%d.db", n)), BoltOptions{Options: o})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			return b
		},
	}
}

func TestStoreContract(t *testing.T) {
	ctx := context.Background()
	for name, mk := range stores(t) {
		t.Run(name, func(t *testing.T) {
			s := mk(Options{MaxRegistrations: 3, Grace: time.Second})
			a := newReg("a", 60, t0)
			if prev, err := s.Add(ctx, a); err != nil || prev != nil || a.ID == 0 {
				t.Fatalf("Add: %v %v id=%d", prev, err, a.ID)
			}
			if got, ok := s.Get(a.ID); !ok || got != a {
				t.Fatal("Get after Add")
			}
			if got, ok := s.ByEndpoint("a"); !ok || got != a {
				t.Fatal("ByEndpoint after Add")
			}
			// Re-register replaces, with a new location.
			a2 := newReg("a", 120, t0)
			prev, err := s.Add(ctx, a2)
			if err != nil || prev != a || a2.ID == a.ID {
				t.Fatalf("re-Add: prev=%v err=%v", prev, err)
			}
			if _, ok := s.Get(a.ID); ok {
				t.Fatal("old location still present")
			}
			b := newReg("b", 10, t0)
			c := newReg("c", 30, t0)
			if _, err := s.Add(ctx, b); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Add(ctx, c); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Add(ctx, newReg("d", 1, t0)); !errors.Is(err, ErrFull) {
				t.Fatalf("4th Add: %v, want ErrFull", err)
			}
			if s.Len() != 3 {
				t.Fatalf("Len = %d", s.Len())
			}
			// Update b's lifetime: it now expires after c.
			old, cur, err := s.Update(ctx, b.ID, func(o *Registration) (*Registration, error) {
				n := o.Clone()
				n.Lifetime = 100
				return n, nil
			})
			if err != nil || old != b || cur.Lifetime != 100 || cur.ID != b.ID {
				t.Fatalf("Update: %v %v %v", old, cur, err)
			}
			if _, _, err := s.Update(ctx, 9999, func(o *Registration) (*Registration, error) { return o, nil }); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Update unknown: %v", err)
			}
			boom := errors.New("boom")
			if _, _, err := s.Update(ctx, b.ID, func(o *Registration) (*Registration, error) { return nil, boom }); !errors.Is(err, boom) {
				t.Fatalf("Update fn error: %v", err)
			}
			next, ok := s.NextExpiry()
			if !ok || !next.Equal(t0.Add(31*time.Second)) {
				t.Fatalf("NextExpiry = %v %v", next, ok)
			}
			// Nothing due before c's lifetime + grace.
			if got, _ := s.Expire(ctx, t0.Add(30*time.Second), 10); len(got) != 0 {
				t.Fatalf("early expire: %v", got)
			}
			got, err := s.Expire(ctx, t0.Add(200*time.Second), 1)
			if err != nil || len(got) != 1 || got[0] != c {
				t.Fatalf("Expire(1) = %v %v", got, err)
			}
			got, _ = s.Expire(ctx, t0.Add(200*time.Second), 10)
			if len(got) != 2 || got[0].Endpoint != "b" || got[1].Endpoint != "a" {
				t.Fatalf("Expire order = %v", got)
			}
			if s.Len() != 0 {
				t.Fatalf("Len after expiry = %d", s.Len())
			}
			if _, err := s.Remove(ctx, a2.ID); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Remove expired: %v", err)
			}
			d := newReg("d", 5, t0)
			s.Add(ctx, d)
			if r, err := s.Remove(ctx, d.ID); err != nil || r != d {
				t.Fatalf("Remove: %v", err)
			}
			if _, ok := s.NextExpiry(); ok {
				t.Fatal("NextExpiry on empty store")
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Add(ctx, newReg("e", 1, t0)); !errors.Is(err, ErrClosed) {
				t.Fatalf("Add after Close: %v", err)
			}
		})
	}
}

func TestBoltDurable(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "reg.db")
	b, err := OpenBolt(file, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a := newReg("a", 60, t0)
	a.SetAltPath("/lwm2m")
	a.SMS = "+4915112345"
	a.Identity = "psk:a"
	b.Add(ctx, a)
	s := newReg("s", 60, t0)
	s.SetPeerAddr(StoredAddr{"sms", "+4915199999"})
	b.Add(ctx, s)
	gone := newReg("gone", 60, t0)
	b.Add(ctx, gone)
	b.Remove(ctx, gone.ID)
	b.Update(ctx, a.ID, func(o *Registration) (*Registration, error) {
		n := o.Clone()
		n.Lifetime = 99
		n.SetPeerAddr(&net.UDPAddr{IP: net.ParseIP("::1"), Port: 6000})
		return n, nil
	})
	b.Close()

	b2, err := OpenBolt(file, BoltOptions{AddrDecoder: func(network, addr string) (net.Addr, error) {
		return StoredAddr{network + "!", addr}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if b2.Len() != 2 {
		t.Fatalf("Len after reopen = %d", b2.Len())
	}
	got, ok := b2.ByEndpoint("a")
	if !ok || got.Lifetime != 99 || got.AltPath() != "/lwm2m" || got.SMS != a.SMS || got.Identity != "psk:a" ||
		got.Addr != netip.MustParseAddrPort("[::1]:6000") || len(got.Objects) != 2 || got.Objects[1].Version() != "1.2" {
		t.Fatalf("reloaded %+v", got)
	}
	if got, _ := b2.ByEndpoint("s"); got.PeerAddr().Network() != "sms!" {
		t.Fatalf("sms addr %v", got.PeerAddr())
	}
	// IDs are random: a removed registration's location is not handed
	// out again after a restart (a collision has probability 2^-64).
	n := newReg("new", 60, t0)
	b2.Add(ctx, n)
	if n.ID == gone.ID || n.ID == a.ID {
		t.Fatalf("new ID %d reuses an old one", n.ID)
	}
}

// TestExpiryHeapProperty checks that Expire returns exactly the due
// registrations, in expiry order, whatever the sequence of adds and updates.
func TestExpiryHeapProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ctx := context.Background()
		s := new(Memory)
		want := map[string]int64{}
		ops := rapid.IntRange(1, 60).Draw(t, "ops")
		for range ops {
			ep := fmt.Sprintf("e%d", rapid.IntRange(0, 15).Draw(t, "ep"))
			lt := uint32(rapid.IntRange(1, 100).Draw(t, "lt"))
			if cur, ok := s.ByEndpoint(ep); ok && rapid.Bool().Draw(t, "update") {
				s.Update(ctx, cur.ID, func(o *Registration) (*Registration, error) {
					n := o.Clone()
					n.Lifetime = lt
					return n, nil
				})
			} else {
				s.Add(ctx, newReg(ep, lt, t0))
			}
			want[ep] = int64(lt)
		}
		cut := int64(rapid.IntRange(0, 101).Draw(t, "cut"))
		got, _ := s.Expire(ctx, t0.Add(time.Duration(cut)*time.Second), 1000)
		due := 0
		for _, lt := range want {
			if lt <= cut {
				due++
			}
		}
		if len(got) != due {
			t.Fatalf("expired %d, want %d", len(got), due)
		}
		for i := 1; i < len(got); i++ {
			if got[i-1].expiry() > got[i].expiry() {
				t.Fatal("not in expiry order")
			}
		}
		if s.Len() != len(want)-due {
			t.Fatalf("Len %d, want %d", s.Len(), len(want)-due)
		}
	})
}

func TestCodecRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r := &Registration{
			ID:         rapid.Uint64Range(1, 1<<63).Draw(t, "id"),
			Endpoint:   rapid.StringN(1, 40, -1).Draw(t, "ep"),
			Lifetime:   rapid.Uint32().Draw(t, "lt"),
			Version:    Version(rapid.IntRange(1, 3).Draw(t, "v")),
			Binding:    Binding(rapid.IntRange(1, 15).Draw(t, "b")),
			Queue:      rapid.Bool().Draw(t, "q"),
			Formats:    Formats(rapid.Uint16().Draw(t, "f")),
			SMS:        rapid.StringMatching(`(\+?[0-9]{1,15})?`).Draw(t, "sms"),
			Identity:   rapid.String().Draw(t, "id"),
			Registered: rapid.Int64().Draw(t, "reg"),
			Updated:    rapid.Int64().Draw(t, "upd"),
		}
		r.SetAltPath(rapid.SampledFrom([]string{"/", "/lwm2m", "/a/b"}).Draw(t, "alt"))
		r.SetTransport(rapid.SampledFrom([]string{"", "udp", "dtls"}).Draw(t, "tr"))
		r.SetNode(rapid.SampledFrom([]string{"", "node-a", "gw-2.example"}).Draw(t, "node"))
		for range rapid.IntRange(0, 20).Draw(t, "n") {
			r.Objects = append(r.Objects, ObjectLink{rapid.Uint16().Draw(t, "o"), rapid.Uint16().Draw(t, "i"), rapid.Uint8().Draw(t, "M"), rapid.Uint8().Draw(t, "m")})
		}
		switch rapid.IntRange(0, 2).Draw(t, "addr") {
		case 1:
			r.SetPeerAddr(&net.UDPAddr{IP: net.IP(rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(t, "ip")), Port: rapid.IntRange(0, 65535).Draw(t, "port")})
		case 2:
			r.SetPeerAddr(StoredAddr{"sms", rapid.String().Draw(t, "msisdn")})
		}
		got, err := UnmarshalRegistration(MarshalRegistration(nil, r), nil)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(*got) != fmt.Sprint(*r) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
		}
	})
}

func FuzzUnmarshalRegistration(f *testing.F) {
	r := newReg("dev-1", 300, t0)
	r.ID = 42
	r.SetAltPath("/lwm2m")
	f.Add(MarshalRegistration(nil, r))
	r.SetPeerAddr(StoredAddr{"sms", "+4915112345"})
	f.Add(MarshalRegistration(nil, r))
	r.SetNode("node-a")
	f.Add(MarshalRegistration(nil, r))
	f.Add([]byte{1, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := UnmarshalRegistration(data, nil)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		again, err := UnmarshalRegistration(MarshalRegistration(nil, r), nil)
		if err != nil || fmt.Sprint(*again) != fmt.Sprint(*r) {
			t.Fatalf("re-encode: %v", err)
		}
	})
}
