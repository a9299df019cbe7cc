package server

import (
	"net"
	"path/filepath"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
)

// TestBoltRestart registers with a server on a bbolt store, restarts
// both, and continues with the same location (Update) and address (Send).
func TestBoltRestart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "reg.db")
	peer := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 40000}
	open := func() (*Server, *registry.Bolt) {
		st, err := registry.OpenBolt(file, registry.BoltOptions{})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := New(st)
		if err != nil {
			t.Fatal(err)
		}
		return srv, st
	}
	srv, st := open()
	w := &recorder{}
	srv.Handler("udp").ServeCoAP(w, bearer.NewRequest(codes.POST, peer, "/rd?ep=durable&lt=3600&lwm2m=1.1"))
	if w.code != codes.Created {
		t.Fatal(w.code)
	}
	loc := optionsLocation(w.opts)
	srv.Close()
	st.Close()

	srv, st = open()
	defer st.Close()
	defer srv.Close()
	reg, ok := srv.Lookup("durable")
	if !ok || reg.Location() != loc || reg.PeerAddr().String() != peer.String() || reg.Transport() != "udp" {
		t.Fatalf("after restart: %+v", reg)
	}
	w = &recorder{}
	srv.Handler("udp").ServeCoAP(w, bearer.NewRequest(codes.POST, peer, loc+"?lt=60"))
	if w.code != codes.Changed {
		t.Fatalf("update after restart: %v", w.code)
	}
	req := bearer.NewRequest(codes.POST, peer, "/dp")
	req.SetOption(bearer.ContentFormatOption(message.AppSenmlJSON))
	req.Payload = []byte(`[{"n":"/3/0/0","vs":"x"}]`)
	w = &recorder{}
	srv.Handler("udp").ServeCoAP(w, req)
	if w.code != codes.Changed {
		t.Fatalf("send after restart: %v", w.code)
	}
}
