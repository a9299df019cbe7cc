package modemlink_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer/sms/modemlink"
	"github.com/m2mbearer/m2mbearer/modem"
	"github.com/m2mbearer/m2mbearer/modem/quarantine"
	"github.com/m2mbearer/m2mbearer/modem/sim"
	"github.com/warthog618/sms/encoding/tpdu"
)

// submitTo is an SMS-SUBMIT of 8-bit data to dst.
func submitTo(t *testing.T, dst string) []byte {
	t.Helper()
	s, err := tpdu.NewSubmit()
	if err != nil {
		t.Fatal(err)
	}
	s.DA = tpdu.NewAddress(tpdu.FromNumber(dst))
	s.DCS = tpdu.Dcs8BitData
	s.UD = []byte{0x40, 0x01, 0x00, 0x01}
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A TPDU the modem driver hands over (its framing is sound: SMSC part,
// <length>, TP-MTI of an SMS-DELIVER) but the SMS bearer cannot decode is
// quarantined before it is acknowledged, instead of being acknowledged and
// dropped by the bearer; a decodable one still reaches the bearer.
func TestUndecodableTPDUQuarantined(t *testing.T) {
	n, err := sim.NewNetwork(sim.WithSeed(21))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	sm, err := n.AddModem(serverNum)
	if err != nil {
		t.Fatal(err)
	}
	// SMS-DELIVER cut after its originator address: 10 octets, as announced.
	const cut = "040B911326880736F40004"
	idx, err := sm.StoreRaw("SM", 0, len(cut)/2, "00"+cut, false)
	if err != nil {
		t.Fatal(err)
	}
	path, err := sm.OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	q, err := quarantine.Open(filepath.Join(t.TempDir(), "q.db"), quarantine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	m, err := openModem(path, serverNum)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := modem.NewPool(modem.WithPoolLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	if err := pool.Add(m); err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	link, err := modemlink.New(pool, modemlink.WithQuarantine(q), modemlink.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	defer link.Close()
	if err := m.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for q.Stats().Entries == 0 || sm.Stats().Stored != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("quarantine %+v, modem holds %d", q.Stats(), sm.Stats().Stored)
		}
		time.Sleep(10 * time.Millisecond)
	}
	es, _ := q.List(0, 0)
	if len(es) != 1 || es[0].Index != idx || es[0].Lines[0] != cut || es[0].Modem != serverNum {
		t.Fatalf("quarantine %+v", es)
	}
	select {
	case in := <-link.Inbound():
		t.Fatalf("undecodable TPDU forwarded: %X", in.TPDU)
	default:
	}
	// A good message passes.
	ep, err := n.AddEndpoint("+491710000009", func(sim.EndpointMessage) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ep.Send(context.Background(), submitTo(t, serverNum)); err != nil {
		t.Fatal(err)
	}
	select {
	case in := <-link.Inbound():
		if err := in.Ack(context.Background()); err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("decodable TPDU not forwarded")
	}
	if q.Stats().Entries != 1 {
		t.Fatalf("quarantine %+v", q.Stats())
	}
}
