package poolbench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/m2mbearer/m2mbearer/modem"
	"github.com/m2mbearer/m2mbearer/modem/sim"
	"github.com/warthog618/sms/encoding/tpdu"
)

// Result is one measurement.
type Result struct {
	Modems   int           // N
	SendTime time.Duration // T, the simulated +CMGS time
	Messages int           // messages sent
	Elapsed  time.Duration // wall time for all of them
	Errors   int           // sends that failed
}

// Rate is the measured SMS per second.
func (r Result) Rate() float64 { return float64(r.Messages-r.Errors) / r.Elapsed.Seconds() }

// Ideal is N × 1/T, the physical limit.
func (r Result) Ideal() float64 { return float64(r.Modems) / r.SendTime.Seconds() }

// Ratio is Rate / Ideal.
func (r Result) Ratio() float64 { return r.Rate() / r.Ideal() }

func (r Result) String() string {
	return fmt.Sprintf("N=%-3d T=%v msgs=%-5d elapsed=%-8v rate=%7.1f/s ideal=%7.1f/s ratio=%.3f errors=%d",
		r.Modems, r.SendTime, r.Messages, r.Elapsed.Round(time.Millisecond), r.Rate(), r.Ideal(), r.Ratio(), r.Errors)
}

// Rig is a network with N simulated modems in a pool, ready to send.
type Rig struct {
	Net  *sim.Network
	Pool *modem.Pool
	N    int
	T    time.Duration
	// Senders is the number of concurrent senders per modem (default 2).
	Senders int
	tpdu    []byte
}

// NewRig builds the network (unknown recipients are refused by the SMSC at
// once, so no receiver work is measured), N modems with +CMGS time t, and
// a pool over them.
func NewRig(ctx context.Context, n int, t time.Duration) (*Rig, error) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	net, err := sim.NewNetwork(sim.WithSeed(1), sim.WithRejectUnknown(), sim.WithLogger(log))
	if err != nil {
		return nil, err
	}
	pool, err := modem.NewPool(modem.WithPoolLogger(log), modem.WithMaxQueue(1024))
	if err != nil {
		net.Close()
		return nil, err
	}
	rig := &Rig{Net: net, Pool: pool, N: n, T: t}
	for i := 0; i < n; i++ {
		sm, err := net.AddModem(fmt.Sprintf("+1555%06d", i), sim.WithSendTime(t))
		if err != nil {
			rig.Close()
			return nil, err
		}
		m, err := modem.Open(ctx, modem.Config{MSISDN: sm.MSISDN(), HealthInterval: -1},
			modem.WithLogger(log),
			modem.WithDialer(func(context.Context) (io.ReadWriteCloser, error) { return sm.Pipe() }))
		if err != nil {
			rig.Close()
			return nil, err
		}
		if err := pool.Add(m); err != nil {
			_ = m.Close()
			rig.Close()
			return nil, err
		}
	}
	s, err := tpdu.NewSubmit()
	if err != nil {
		rig.Close()
		return nil, err
	}
	s.DA = tpdu.NewAddress(tpdu.FromNumber("+19990000000"))
	s.DCS = tpdu.Dcs8BitData
	s.UD = make([]byte, 140)
	rig.tpdu, err = s.MarshalBinary()
	if err != nil {
		rig.Close()
		return nil, err
	}
	return rig, nil
}

// Run sends msgs messages through the pool from Senders×N concurrent senders and
// times them.
func (r *Rig) Run(ctx context.Context, msgs int) Result {
	var next, errs atomic.Int64
	workers := r.Senders * r.N
	if workers < 1 {
		workers = 2 * r.N
	}
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(msgs) {
				if _, err := r.Pool.SendTPDU(ctx, "", r.tpdu); err != nil {
					errs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return Result{Modems: r.N, SendTime: r.T, Messages: msgs, Elapsed: time.Since(start), Errors: int(errs.Load())}
}

// Close stops the pool and the network.
func (r *Rig) Close() {
	_ = r.Pool.Close()
	_ = r.Net.Close()
}

// Measure builds a rig, warms it up with one message per modem, and
// measures perModem messages per modem.
func Measure(ctx context.Context, n int, t time.Duration, perModem, senders int) (Result, error) {
	rig, err := NewRig(ctx, n, t)
	if err != nil {
		return Result{}, err
	}
	rig.Senders = senders
	defer rig.Close()
	rig.Run(ctx, n)
	return rig.Run(ctx, n*perModem), nil
}
