package firmware

import (
	"context"
	"fmt"

	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
)

// QueueWaker adapts a queue.Waker (the SMS waker, smswake.New) to Waker:
// it builds each device's queue.WakeTarget from its registration (version,
// binding) and Target's additions (the device's number, server SIM,
// /1/x/21 Trigger, framing), then sends the trigger.
//
// The number comes only from Target, i.e. from the operator's
// configuration: a registration's own "sms=" parameter is never used,
// since anyone who can send a Register can put any number there and have
// wake-ups sent to it at the operator's expense.
//
// The zero QueueWaker, without Registrations or Waker, wakes nothing: Wake
// fails with ErrUnsupported.
type QueueWaker struct {
	// Waker sends the trigger (a *smswake.Waker).
	Waker queue.Waker
	// Registrations looks endpoints up (the server's store).
	Registrations registry.Store
	// Target completes the wake target of a device: MSISDN (required for
	// a wake-up), SIM, Trigger, WAPPush, TransportArg. Nil: no device can
	// be woken.
	Target func(reg *registry.Registration, t *queue.WakeTarget)
}

// Wake implements Waker.
func (w *QueueWaker) Wake(ctx context.Context, ep string) error {
	if w.Registrations == nil || w.Waker == nil {
		return fmt.Errorf("%w: QueueWaker without Registrations or Waker", ErrUnsupported)
	}
	reg, ok := w.Registrations.ByEndpoint(ep)
	if !ok {
		return fmt.Errorf("firmware: wake %s: not registered", ep)
	}
	t := queue.WakeTarget{Version: reg.Version.String(), Binding: bindingString(reg), TransportArg: "U"}
	if reg.Version.String() != "1.0" {
		t.Trigger = true
	}
	if w.Target != nil {
		w.Target(reg, &t)
	}
	if !t.Wakeable() {
		return fmt.Errorf("%w: %s cannot be woken by SMS (configured number %q, binding %q)", ErrUnsupported, ep, t.MSISDN, t.Binding)
	}
	return w.Waker.Wake(ctx, ep, t)
}

func bindingString(reg *registry.Registration) string {
	s := ""
	for _, b := range []struct {
		bit registry.Binding
		c   string
	}{{registry.BindingU, "U"}, {registry.BindingT, "T"}, {registry.BindingS, "S"}, {registry.BindingN, "N"}} {
		if reg.Binding.Has(b.bit) {
			s += b.c
		}
	}
	if reg.Queue && reg.Version.String() == "1.0" {
		if len(s) > 0 && s[0] == 'U' {
			s = "UQ" + s[1:]
		} else {
			s += "Q"
		}
	}
	return s
}
