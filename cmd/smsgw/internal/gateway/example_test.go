package gateway_test

import (
	"fmt"

	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/gateway"
)

// The demo fleet plan: which lights exist, how they are reached, and which
// server SIM each SMS-capable light accepts SMS from.
func ExampleFleetPlan() {
	plan := gateway.FleetPlan(gateway.FleetSpec{UDP: 1, Queue: 1, SMS: 1, DTLS: 1,
		ServerSIMs: []string{"+491710000001", "+491710000002"}})
	for _, l := range plan {
		fmt.Println(l.Name, l.Kind, l.MSISDN, l.ServerSIM, l.PSK != nil)
	}
	// Output:
	// light-udp-1 udp   false
	// light-queue-1 queue +491720000001 +491710000001 false
	// light-sms-1 sms +491720000002 +491710000002 false
	// light-dtls-1 dtls   true
}
