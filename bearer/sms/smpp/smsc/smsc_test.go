package smsc

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/internal/smppwire"
	"github.com/m2mbearer/m2mbearer/modem/sim"
)

func start(t *testing.T) *Server {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := sim.NewNetwork(sim.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	s, err := Start(Config{Network: n, Logger: log, Accounts: []Account{{SystemID: "gw", Password: "pw", Numbers: []string{"+15550100"}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// exchange sends one request on a fresh connection (after a bind when
// bind is set) and returns the answer's status.
func exchange(t *testing.T, s *Server, bind *smppwire.Bind, id smppwire.CommandID, body []byte) smppwire.Status {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	if bind != nil {
		b, _ := bind.Marshal()
		c.Write(smppwire.Marshal(smppwire.BindTransceiver, 0, 1, b))
		p, err := smppwire.ReadPDU(br, 0)
		if err != nil || p.Status != smppwire.ROK {
			t.Fatalf("bind: %v %v", p.Status, err)
		}
	}
	c.Write(smppwire.Marshal(id, 0, 2, body))
	p, err := smppwire.ReadPDU(br, 0)
	if err != nil {
		t.Fatal(err)
	}
	return p.Status
}

func TestRefusals(t *testing.T) {
	s := start(t)
	ok := &smppwire.Bind{SystemID: "gw", Password: "pw", InterfaceVersion: smppwire.InterfaceVersion}
	sm := func(f func(*smppwire.SM)) []byte {
		m := &smppwire.SM{SourceTON: 1, SourceNPI: 1, SourceAddr: "15550100", DestTON: 1, DestNPI: 1, DestAddr: "15551234",
			DataCoding: 4, ShortMessage: []byte{1, 2}}
		f(m)
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	bindBody := func(b *smppwire.Bind) []byte { x, _ := b.Marshal(); return x }
	cases := []struct {
		name string
		bind *smppwire.Bind
		id   smppwire.CommandID
		body []byte
		want smppwire.Status
	}{
		{"wrong password", nil, smppwire.BindTransceiver, bindBody(&smppwire.Bind{SystemID: "gw", Password: "no"}), smppwire.RInvPaswd},
		{"unknown system_id", nil, smppwire.BindTransceiver, bindBody(&smppwire.Bind{SystemID: "who"}), smppwire.RInvSysID},
		{"submit before bind", nil, smppwire.SubmitSM, sm(func(*smppwire.SM) {}), smppwire.RInvBndSts},
		{"bound twice", ok, smppwire.BindTransceiver, bindBody(ok), smppwire.RAlyBnd},
		{"source not the account's", ok, smppwire.SubmitSM, sm(func(m *smppwire.SM) { m.SourceAddr = "15559999" }), smppwire.RInvSrcAdr},
		{"alphanumeric source", ok, smppwire.SubmitSM, sm(func(m *smppwire.SM) { m.SourceTON, m.SourceAddr = 5, "CITY" }), smppwire.RInvSrcTON},
		{"source NPI", ok, smppwire.SubmitSM, sm(func(m *smppwire.SM) { m.SourceNPI = 9 }), smppwire.RInvSrcNPI},
		{"national destination", ok, smppwire.SubmitSM, sm(func(m *smppwire.SM) { m.DestTON = 2 }), smppwire.RInvDstTON},
		{"truncated body", ok, smppwire.SubmitSM, []byte{0, 1}, smppwire.RInvMsgLen},
		{"unknown command", ok, 0x00000099, nil, smppwire.RInvCmdID},
		{"accepted", ok, smppwire.SubmitSM, sm(func(*smppwire.SM) {}), smppwire.ROK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := exchange(t, s, c.bind, c.id, c.body); got != c.want {
				t.Fatalf("status %s, want %s", got, c.want)
			}
		})
	}
	if st := s.Stats(); st.Submits != 1 || st.BindsRefused < 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestThrottleFaults(t *testing.T) {
	s := start(t)
	s.SetFaults(Faults{MaxRate: 1})
	ok := &smppwire.Bind{SystemID: "gw", Password: "pw"}
	b, _ := (&smppwire.SM{SourceTON: 1, SourceNPI: 1, SourceAddr: "15550100", DestTON: 1, DestNPI: 1, DestAddr: "15551234",
		DataCoding: 4, ShortMessage: []byte{1}}).Marshal()
	throttled := 0
	for i := 0; i < 5; i++ {
		if exchange(t, s, ok, smppwire.SubmitSM, b) == smppwire.RThrottled {
			throttled++
		}
	}
	if throttled == 0 {
		t.Fatal("5 submits at once above 1/s: none throttled")
	}
}

// TestOnSubmit: every accepted submit_sm is told with the connection it
// came on and the SMS-SUBMITs it became; refused ones are not.
func TestOnSubmit(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := sim.NewNetwork(sim.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	got := make(chan Submitted, 4)
	s, err := Start(Config{Network: n, Logger: log, OnSubmit: func(x Submitted) { got <- x },
		Accounts: []Account{{SystemID: "gw", Password: "pw", Numbers: []string{"+15550100"}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ok := &smppwire.Bind{SystemID: "gw", Password: "pw"}
	body := func(src string) []byte {
		b, _ := (&smppwire.SM{SourceTON: 1, SourceNPI: 1, SourceAddr: src, DestTON: 1, DestNPI: 1, DestAddr: "15551234",
			DataCoding: 4, ShortMessage: []byte{1, 2, 3}}).Marshal()
		return b
	}
	if st := exchange(t, s, ok, smppwire.SubmitSM, body("15559999")); st != smppwire.RInvSrcAdr {
		t.Fatalf("status %s", st)
	}
	for session := int64(2); session <= 3; session++ {
		if st := exchange(t, s, ok, smppwire.SubmitSM, body("15550100")); st != smppwire.ROK {
			t.Fatalf("status %s", st)
		}
		x := <-got
		if x.Session != session || x.ID == "" || x.From != "+15550100" || x.To != "+15551234" || len(x.TPDUs) != 1 {
			t.Fatalf("submitted %+v", x)
		}
	}
	if len(got) != 0 {
		t.Fatalf("refused submit told: %+v", <-got)
	}
}
