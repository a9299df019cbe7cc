package smswake

import (
	"fmt"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
)

// Peers gives the SMS bearer the peers lwm2m/server learns in queue mode
// (server.QueueConfig.Peers): the configured number of a device that
// registered over another transport, with its wake target's server SIM
// and framing, so the bearer accepts the device's messages and sends from
// the right SIM. The zero Peers has no Setter: AddWakePeer fails with
// queue.ErrNotCreated.
type Peers struct {
	// Setter is the SMS bearer (*sms.Bearer).
	Setter PeerSetter
	// Security is the SMS security mode of the peers added. Its zero
	// value is sms.ModeDTLS, as for sms.Peer: unsecured SMS (what LwM2M
	// permits for triggers where configured) must be chosen explicitly
	// with sms.ModeNoSec.
	Security sms.Mode
}

// AddWakePeer adds t.MSISDN as a peer in mode p.Security, with t's SIM and
// framing.
func (p Peers) AddWakePeer(t queue.WakeTarget) error {
	if p.Setter == nil {
		return fmt.Errorf("smswake: Peers without Setter: %w", queue.ErrNotCreated)
	}
	return p.Setter.AddPeer(t.MSISDN, sms.Peer{Security: p.Security, SIM: t.SIM, Framing: Framing(t)})
}
