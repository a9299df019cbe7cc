package sim_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/m2mbearer/m2mbearer/modem/sim"
	"github.com/warthog618/sms/encoding/tpdu"
)

// Two modems on one simulated network: A sends an SMS with AT+CMGS, B gets
// it as a +CMT unsolicited result code.
func Example() {
	net, err := sim.NewNetwork(sim.WithSeed(1), sim.WithConditions(sim.Conditions{
		Latency: sim.Uniform(10*time.Millisecond, 50*time.Millisecond),
	}))
	if err != nil {
		panic(err)
	}
	defer net.Close()
	sim800, _ := sim.ProfileByName("sim800")
	a, _ := net.AddModem("+4915110000001", sim.WithProfile(sim800))
	b, _ := net.AddModem("+4915110000002")
	connA, _ := a.Pipe() // or a.OpenPTY() for a real serial path
	connB, _ := b.Pipe()
	ra, rb := bufio.NewReader(connA), bufio.NewReader(connB)

	// until reads lines up to one starting with prefix.
	until := func(r *bufio.Reader, prefix string) string {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return err.Error()
			}
			if l = strings.TrimSpace(l); strings.HasPrefix(l, prefix) {
				return l
			}
		}
	}
	fmt.Fprint(connB, "ATE0;+CNMI=2,2,0,0,0\r")
	until(rb, "OK")
	fmt.Fprint(connA, "ATE0\r")
	until(ra, "OK")

	submit, _ := tpdu.NewSubmit()
	submit.DA = tpdu.NewAddress(tpdu.FromNumber("+4915110000002"))
	submit.DCS = tpdu.Dcs8BitData
	submit.UD = []byte("hello")
	pdu, _ := submit.MarshalBinary()
	fmt.Fprintf(connA, "AT+CMGS=%d\r", len(pdu))
	ra.ReadString('>')
	fmt.Fprintf(connA, "00%X\x1a", pdu)
	fmt.Println(until(ra, "+CMGS:"))

	fmt.Println(until(rb, "+CMT:"))
	h := until(rb, "")
	raw, _ := hex.DecodeString(h)
	var deliver tpdu.TPDU
	_ = deliver.UnmarshalBinary(raw[1+raw[0]:]) // skip the SMSC address
	fmt.Printf("from %s: %s\n", deliver.OA.Number(), deliver.UD)
	// Output:
	// +CMGS: 0
	// +CMT: ,25
	// from +4915110000001: hello
}

// An Endpoint is a number without a modem, for large simulated fleets.
func ExampleNetwork_AddEndpoint() {
	net, err := sim.NewNetwork()
	if err != nil {
		panic(err)
	}
	defer net.Close()
	got := make(chan []byte, 1)
	_, _ = net.AddEndpoint("+15550002", func(m sim.EndpointMessage) bool {
		got <- m.TPDU
		return true
	})
	dev, _ := net.AddEndpoint("+15550001", nil)

	submit, _ := tpdu.NewSubmit()
	submit.DA = tpdu.NewAddress(tpdu.FromNumber("+15550002"))
	submit.DCS = tpdu.Dcs8BitData
	submit.UD = []byte{0x40, 0x01}
	b, _ := submit.MarshalBinary()
	mr, err := dev.Send(context.Background(), b)
	fmt.Println(mr, err)
	var d tpdu.TPDU
	_ = d.UnmarshalBinary(<-got)
	fmt.Printf("% x from %s\n", d.UD, d.OA.Number())
	// Output:
	// 0 <nil>
	// 40 01 from +15550001
}
