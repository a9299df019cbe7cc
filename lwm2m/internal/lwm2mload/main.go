// Command lwm2mload measures the LwM2M server's registration interface on
// this machine.
//
// # Usage
//
//	go run ./lwm2m/internal/lwm2mload -n 100000
//	go run ./lwm2m/internal/lwm2mload -bolt reg.db    # with the durable bbolt store
//
// # Design
//
// It starts the server on loopback UDP, registers -n distinct clients
// closed-loop from a pool of client sockets (lwm2m/internal/loadgen), and
// prints registrations per second at 10k and 100k registered and the heap
// growth per registered device; -state (on by default) also measures the
// registration state alone, without sockets.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/m2mbearer/m2mbearer/lwm2m/internal/loadgen"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
)

func main() {
	n := flag.Int("n", 10000, "registrations (distinct endpoint names)")
	sockets := flag.Int("sockets", 32, "client UDP sockets")
	workers := flag.Int("workers", 256, "concurrent closed-loop registrations")
	state := flag.Bool("state", true, "also measure registration state bytes per device without sockets")
	timeout := flag.Duration("timeout", 10*time.Minute, "give up after")
	boltFile := flag.String("bolt", "", "keep registrations in this bbolt file (fsync'd) instead of memory")
	flag.Parse()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	ctx, cancel2 := context.WithTimeout(ctx, *timeout)
	defer cancel2()
	cfg := loadgen.Config{N: *n, Sockets: *sockets, Workers: *workers}
	if *boltFile != "" {
		st, err := registry.OpenBolt(*boltFile, registry.BoltOptions{Options: registry.Options{MaxRegistrations: *n + 1}})
		if err != nil {
			fmt.Fprintln(os.Stderr, "lwm2mload:", err)
			os.Exit(1)
		}
		defer st.Close()
		cfg.Store = st
	}
	res, err := loadgen.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "lwm2mload:", err)
		os.Exit(1)
	}
	res.Print(os.Stdout)
	if *state {
		b, err := loadgen.StateBytes(*n, "")
		if err != nil {
			fmt.Fprintln(os.Stderr, "lwm2mload:", err)
			os.Exit(1)
		}
		fmt.Printf("registration state alone (store + indexes + address index, %d devices): %.0f bytes/device\n", *n, b)
	}
}
