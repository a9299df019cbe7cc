package modem_test

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/m2mbearer/m2mbearer/modem"
	"github.com/m2mbearer/m2mbearer/modem/sim"
	"github.com/warthog618/sms/encoding/tpdu"
)

func exampleSubmit(dst string, data []byte) []byte {
	s, _ := tpdu.NewSubmit()
	s.DA = tpdu.NewAddress(tpdu.FromNumber(dst))
	s.DCS = tpdu.Dcs8BitData
	s.UD = data
	b, _ := s.MarshalBinary()
	return b
}

// Open two modems (simulated here; on hardware give Config.Device, e.g.
// /dev/ttyUSB2, instead of WithDialer), send a binary SMS from one to the
// other, and acknowledge it once stored.
func ExampleOpen() {
	net, err := sim.NewNetwork()
	if err != nil {
		panic(err)
	}
	defer net.Close()
	sa, _ := net.AddModem("+4915100000001")
	sb, _ := net.AddModem("+4915100000002")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	open := func(sm *sim.Modem) *modem.Modem {
		m, err := modem.Open(ctx, modem.Config{MSISDN: sm.MSISDN()}, modem.WithLogger(quiet()),
			modem.WithDialer(func(context.Context) (io.ReadWriteCloser, error) { return sm.Pipe() }))
		if err != nil {
			panic(err)
		}
		return m
	}
	a, b := open(sa), open(sb)
	defer a.Close()
	defer b.Close()

	fmt.Println(a.Identity().Model, a.Identity().Profile)
	mr, err := a.SendPDU(ctx, exampleSubmit("+4915100000002", []byte{0x40, 0x01, 0x00, 0x01}))
	fmt.Println("sent, TP-MR", mr, err)

	r := <-b.Received()
	fmt.Println("received", r.Kind, len(r.TPDU), "octets in", r.Storage)
	// Store r.TPDU durably first, then:
	fmt.Println("ack:", r.Ack(ctx))
	// Output:
	// SIM-27005 generic
	// sent, TP-MR 0 <nil>
	// received deliver 24 octets in SM
	// ack: <nil>
}

// A pool sends from the SIM a device knows, and merges what all modems
// receive.
func ExamplePool() {
	net, err := sim.NewNetwork()
	if err != nil {
		panic(err)
	}
	defer net.Close()
	pool, err := modem.NewPool(modem.WithPoolLogger(quiet()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()
	ctx := context.Background()
	for _, n := range []string{"+4915100000001", "+4915100000002"} {
		sm, _ := net.AddModem(n)
		m, err := modem.Open(ctx, modem.Config{MSISDN: n}, modem.WithLogger(quiet()),
			modem.WithDialer(func(context.Context) (io.ReadWriteCloser, error) { return sm.Pipe() }))
		if err != nil {
			panic(err)
		}
		_ = pool.Add(m, modem.WithRate(0.5, 3)) // one SMS every 2 s, bursts of 3
	}
	device, _ := net.AddModem("+4917000000042")
	dm, _ := modem.Open(ctx, modem.Config{MSISDN: device.MSISDN()}, modem.WithLogger(quiet()),
		modem.WithDialer(func(context.Context) (io.ReadWriteCloser, error) { return device.Pipe() }))
	defer dm.Close()

	rc, err := pool.SendTPDU(ctx, "+4915100000002", exampleSubmit("+4917000000042", []byte("wake")))
	fmt.Println("from", rc.From, "MR", rc.MR, err)
	_, _ = dm.SendPDU(ctx, exampleSubmit("+4915100000001", []byte("update")))
	in := <-pool.Received()
	fmt.Println("pool received on", in.Modem)
	_ = in.Ack(ctx)
	// Output:
	// from +4915100000002 MR 0 <nil>
	// pool received on +4915100000001
}
