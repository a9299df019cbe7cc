package config_test

import (
	"fmt"

	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
)

func ExampleParse() {
	_, err := config.Parse([]byte("api:\n  listen: 127.0.0.1:8080\nlog:\n  level: loud\n"))
	fmt.Println(err)
	c, _ := config.Parse([]byte("simulator:\n  fleet:\n    sms: 3\n"))
	fmt.Println(c.Simulator.Fleet.UDP, c.Simulator.Fleet.Queue, c.Simulator.Fleet.SMS)
	// Output:
	// invalid configuration: line 4: log.level: unknown level "loud"; use debug, info, warn or error
	// 2 2 3
}
