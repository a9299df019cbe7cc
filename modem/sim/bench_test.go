package sim

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkCMGS measures the simulator's own cost per SMS: AT+CMGS over
// the in-memory pipe, SMSC, delivery to an Endpoint.
func BenchmarkCMGS(b *testing.B) {
	n, err := NewNetwork()
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	var got atomic.Int64
	if _, err := n.AddEndpoint("+15550002", func(EndpointMessage) bool { got.Add(1); return true }); err != nil {
		b.Fatal(err)
	}
	m, _ := n.AddModem("+15550001")
	c, _ := m.Pipe()
	r := bufio.NewReader(c)
	pdu := submitPDU(b, "+15550002", make([]byte, 140), false)
	line := fmt.Sprintf("00%X\x1a", pdu)
	cmd := fmt.Sprintf("AT+CMGS=%d\r", len(pdu))
	fmt.Fprint(c, "ATE0\r")
	readUntil(b, r, "OK")
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		fmt.Fprint(c, cmd)
		if _, err := r.ReadString('>'); err != nil {
			b.Fatal(err)
		}
		fmt.Fprint(c, line)
		readUntil(b, r, "OK")
	}
	b.StopTimer()
	deadline := time.Now().Add(waitLimit)
	for got.Load() < int64(b.N) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got.Load() != int64(b.N) {
		b.Fatalf("delivered %d of %d", got.Load(), b.N)
	}
}

func readUntil(b testing.TB, r *bufio.Reader, final string) {
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		l = strings.TrimSpace(l)
		if l == final {
			return
		}
		if strings.Contains(l, "ERROR") {
			b.Fatal(l)
		}
	}
}

// BenchmarkModemsParallel runs N modems sending at once, each with a
// configured +CMGS time, and reports the achieved rate as a fraction of the
// physical rate N / sendTime ("efficiency"): how much the simulator itself
// takes away from a pool benchmark.
func BenchmarkModemsParallel(b *testing.B) {
	for _, sendTime := range []time.Duration{20 * time.Millisecond, 100 * time.Millisecond} {
		for _, nm := range []int{1, 4, 16, 32} {
			b.Run(fmt.Sprintf("send=%v/modems=%d", sendTime, nm), func(b *testing.B) {
				benchParallel(b, nm, sendTime)
			})
		}
	}
}

func benchParallel(b *testing.B, nm int, sendTime time.Duration) {
	{
		{
			n, err := NewNetwork()
			if err != nil {
				b.Fatal(err)
			}
			defer n.Close()
			var got atomic.Int64
			if _, err := n.AddEndpoint("+19990000", func(EndpointMessage) bool { got.Add(1); return true }); err != nil {
				b.Fatal(err)
			}
			pdu := submitPDU(b, "+19990000", make([]byte, 140), false)
			cmd, line := fmt.Sprintf("AT+CMGS=%d\r", len(pdu)), fmt.Sprintf("00%X\x1a", pdu)
			var wg sync.WaitGroup
			per := max(b.N/nm, 1)
			start := make(chan struct{})
			for i := range nm {
				m, err := n.AddModem(fmt.Sprintf("+1555%04d", i), WithSendTime(sendTime))
				if err != nil {
					b.Fatal(err)
				}
				c, _ := m.Pipe()
				r := bufio.NewReader(c)
				fmt.Fprint(c, "ATE0\r")
				readUntil(b, r, "OK")
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					for range per {
						fmt.Fprint(c, cmd)
						if _, err := r.ReadString('>'); err != nil {
							return
						}
						fmt.Fprint(c, line)
						readUntil(b, r, "OK")
					}
				}()
			}
			b.ResetTimer()
			t0 := time.Now()
			close(start)
			wg.Wait()
			el := time.Since(t0)
			b.StopTimer()
			sent := float64(per * nm)
			rate := sent / el.Seconds()
			b.ReportMetric(rate, "sms/s")
			b.ReportMetric(rate/(float64(nm)/sendTime.Seconds()), "efficiency")
		}
	}
}

// BenchmarkEndpointFleet: SMS between 2,000 modem-less endpoints, the cost
// of the SMSC itself per message (no AT, no goroutine per device).
func BenchmarkEndpointFleet(b *testing.B) {
	const fleet = 2000
	n, err := NewNetwork()
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	var got atomic.Int64
	eps := make([]*Endpoint, fleet)
	pdus := make([][]byte, fleet)
	for i := range fleet {
		e, err := n.AddEndpoint(fmt.Sprintf("+1666%06d", i), func(EndpointMessage) bool { got.Add(1); return true })
		if err != nil {
			b.Fatal(err)
		}
		eps[i] = e
		pdus[i] = submitPDU(b, fmt.Sprintf("+1666%06d", (i+1)%fleet), make([]byte, 60), false)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := eps[i%fleet].Send(ctx, pdus[i%fleet]); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(waitLimit)
	for got.Load() < int64(b.N) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	if got.Load() != int64(b.N) {
		b.Fatalf("delivered %d of %d", got.Load(), b.N)
	}
}
