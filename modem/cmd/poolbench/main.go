// Command poolbench prints the modem pool throughput table.
//
// # Usage
//
//	go run ./modem/cmd/poolbench -t 50ms -per 40
//
// # Design
//
// For N = 1, 4, 16, 32 simulated modems it prints SMS/s through the pool
// divided by N × the physical rate of one modem (1 / +CMGS time), measured
// by modem/internal/poolbench.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/m2mbearer/m2mbearer/modem/internal/poolbench"
)

func main() {
	t := flag.Duration("t", 50*time.Millisecond, "simulated +CMGS time per message")
	per := flag.Int("per", 40, "messages per modem")
	senders := flag.Int("senders", 4, "concurrent senders per modem")
	ns := flag.String("n", "1,4,16,32", "pool sizes")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	fmt.Printf("GOMAXPROCS=%d  +CMGS time T=%v  %d messages per modem, %d senders per modem\n\n", runtime.GOMAXPROCS(0), *t, *per, *senders)
	// How late do timers fire on this machine right now? The simulated
	// +CMGS time is a timer, so a loaded machine stretches it.
	var slept time.Duration
	for i := 0; i < 10; i++ {
		s := time.Now()
		time.Sleep(*t)
		slept += time.Since(s)
	}
	eff := slept / 10
	fmt.Printf("timer check: sleep(%v) took %v on average (%.1f%% late)\n\n", *t, eff.Round(10*time.Microsecond), 100*(float64(eff)/float64(*t)-1))
	fmt.Println("| N | messages | elapsed | SMS/s | ideal N/T | ratio | ratio vs measured timer |")
	fmt.Println("|---|---|---|---|---|---|---|")
	fail := false
	for _, f := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bad -n value %q\n", f)
			os.Exit(2)
		}
		r, err := poolbench.Measure(ctx, n, *t, *per, *senders)
		if err != nil {
			fmt.Fprintln(os.Stderr, "poolbench:", err)
			os.Exit(1)
		}
		fmt.Printf("| %d | %d | %v | %.1f | %.1f | %.3f | %.3f |\n", n, r.Messages, r.Elapsed.Round(time.Millisecond), r.Rate(), r.Ideal(), r.Ratio(),
			r.Rate()/(float64(n)/eff.Seconds()))
		if r.Errors > 0 {
			fmt.Fprintf(os.Stderr, "N=%d: %d sends failed\n", n, r.Errors)
			fail = true
		}
	}
	if fail {
		os.Exit(1)
	}
}
