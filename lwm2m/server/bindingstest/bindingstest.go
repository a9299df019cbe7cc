package bindingstest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// Factory makes the stores under test.
type Factory struct {
	// New returns an empty store holding at most max bindings (0: the
	// default).
	New func(t *testing.T, max int) server.BindingStore
	// Peer returns a second store over s's bindings (another node); nil
	// when not shared.
	Peer func(t *testing.T, s server.BindingStore) server.BindingStore
}

func psk(id string) bearer.Identity { return bearer.Identity{Mode: "psk", PSKIdentity: []byte(id)} }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// Run runs every case against f.
func Run(t *testing.T, f Factory) {
	for _, c := range []struct {
		name string
		peer bool
		run  func(t *testing.T, f Factory)
	}{
		{name: "set and look up by name, identity and number", run: setAndLookUp},
		{name: "an identity or number moves to its new endpoint", run: identityMoves},
		{name: "a zero binding removes", run: zeroRemoves},
		{name: "bad input and the bound", run: badInputAndBound},
		{name: "concurrent sets of one identity leave one owner", run: concurrentSets},
		{name: "a peer node sees every change", peer: true, run: peerSeesChanges},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.peer && f.Peer == nil {
				t.Skip("not shared")
			}
			c.run(t, f)
		})
	}
}

// setAndLookUp is the case "set and look up by name, identity and number".
func setAndLookUp(t *testing.T, f Factory) {
	s := f.New(t, 0)
	must(t, s.Set("pole-7", server.Binding{Identity: psk("pole-7"), PSK: []byte{1, 2, 3}}))
	must(t, s.Set("meter-1", server.Binding{MSISDN: "00491720000001", NoSec: true}))
	rpk := bearer.Identity{Mode: "rpk", PublicKey: []byte{0x30, 0x00, 0xff, 0x01}}
	must(t, s.Set("cam-1", server.Binding{Identity: rpk}))
	must(t, s.Set("meter-2", server.Binding{Identity: psk("meter-2"), MSISDN: "+491720000002", SMSSecured: true}))
	if b, ok := s.Binding("meter-2"); !ok || !b.SMSSecured || b.MSISDN != "+491720000002" {
		t.Fatalf("SMS security mode kept: %+v %v", b, ok)
	}
	if b, ok := s.Binding("pole-7"); !ok || !server.SameIdentity(b.Identity, psk("pole-7")) || !bytes.Equal(b.PSK, []byte{1, 2, 3}) {
		t.Fatalf("Binding %+v %v", b, ok)
	}
	if b, ok := s.Binding("meter-1"); !ok || b.MSISDN != "+491720000001" || !b.NoSec {
		t.Fatalf("number normalised: %+v", b)
	}
	if ep, ok := s.EndpointOf(psk("pole-7")); !ok || ep != "pole-7" {
		t.Fatalf("EndpointOf %q %v", ep, ok)
	}
	if ep, ok := s.EndpointOf(rpk); !ok || ep != "cam-1" {
		t.Fatalf("EndpointOf rpk %q %v", ep, ok)
	}
	if ep, ok := s.EndpointOfNumber("+491720000001"); !ok || ep != "meter-1" {
		t.Fatalf("EndpointOfNumber %q %v", ep, ok)
	}
	if s.Len() != 4 {
		t.Fatalf("Len %d", s.Len())
	}
	key, err := server.PSKLookup(s)([]byte("pole-7"))
	if err != nil || !bytes.Equal(key, []byte{1, 2, 3}) {
		t.Fatalf("PSKLookup %x %v", key, err)
	}
	if _, err := server.PSKLookup(s)([]byte("nobody")); err == nil {
		t.Fatal("PSKLookup of an unknown identity")
	}
}

// identityMoves is the case "an identity or number moves to its new endpoint".
func identityMoves(t *testing.T, f Factory) {
	s := f.New(t, 0)
	must(t, s.Set("a", server.Binding{Identity: psk("x"), PSK: []byte{9}, MSISDN: "+491720000001"}))
	must(t, s.Set("b", server.Binding{Identity: psk("x")}))
	if ep, _ := s.EndpointOf(psk("x")); ep != "b" {
		t.Fatalf("identity stays with %q", ep)
	}
	if a, ok := s.Binding("a"); !ok || !a.Identity.IsZero() || a.PSK != nil || a.MSISDN != "+491720000001" {
		t.Fatalf("a keeps %+v %v", a, ok)
	}
	must(t, s.Set("c", server.Binding{MSISDN: "+491720000001"}))
	if _, ok := s.Binding("a"); ok {
		t.Fatal("a, left with nothing, is still bound")
	}
	if ep, _ := s.EndpointOfNumber("+491720000001"); ep != "c" {
		t.Fatalf("number stays with %q", ep)
	}
}

// zeroRemoves is the case "a zero binding removes".
func zeroRemoves(t *testing.T, f Factory) {
	s := f.New(t, 0)
	must(t, s.Set("a", server.Binding{Identity: psk("a"), MSISDN: "+491720000009"}))
	must(t, s.Set("a", server.Binding{}))
	if _, ok := s.Binding("a"); ok {
		t.Fatal("still bound")
	}
	if _, ok := s.EndpointOf(psk("a")); ok {
		t.Fatal("identity still indexed")
	}
	if _, ok := s.EndpointOfNumber("+491720000009"); ok {
		t.Fatal("number still indexed")
	}
}

// badInputAndBound is the case "bad input and the bound".
func badInputAndBound(t *testing.T, f Factory) {
	s := f.New(t, 2)
	if err := s.Set("", server.Binding{NoSec: true}); err == nil {
		t.Fatal("empty endpoint accepted")
	}
	if err := s.Set("x", server.Binding{MSISDN: "not a number"}); err == nil {
		t.Fatal("bad number accepted")
	}
	must(t, s.Set("a", server.Binding{NoSec: true}))
	must(t, s.Set("b", server.Binding{NoSec: true}))
	if err := s.Set("c", server.Binding{NoSec: true}); !errors.Is(err, server.ErrTooManyBindings) {
		t.Fatalf("3rd binding: %v", err)
	}
	must(t, s.Set("a", server.Binding{Identity: psk("a")}))
}

// concurrentSets is the case "concurrent sets of one identity leave one owner".
func concurrentSets(t *testing.T, f Factory) {
	s := f.New(t, 0)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if err := s.Set(fmt.Sprintf("ep-%d", i), server.Binding{Identity: psk("shared"), NoSec: true}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	owners := 0
	for i := range 8 {
		if b, ok := s.Binding(fmt.Sprintf("ep-%d", i)); ok && !b.Identity.IsZero() {
			owners++
		}
	}
	ep, ok := s.EndpointOf(psk("shared"))
	if b, _ := s.Binding(ep); owners != 1 || !ok || b.Identity.IsZero() {
		t.Fatalf("%d owners, index says %q", owners, ep)
	}
}

// peerSeesChanges is the case "a peer node sees every change".
func peerSeesChanges(t *testing.T, f Factory) {
	a := f.New(t, 0)
	b := f.Peer(t, a)
	must(t, a.Set("pole-7", server.Binding{Identity: psk("pole-7"), PSK: []byte{7}}))
	eventually(t, "B sees the binding", func() bool {
		key, err := server.PSKLookup(b)([]byte("pole-7"))
		return err == nil && bytes.Equal(key, []byte{7})
	})
	must(t, b.Set("pole-8", server.Binding{Identity: psk("pole-7")}))
	eventually(t, "A sees the identity move", func() bool {
		ep, _ := a.EndpointOf(psk("pole-7"))
		_, old := a.Binding("pole-7")
		return ep == "pole-8" && !old
	})
}
