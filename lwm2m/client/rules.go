package client

import (
	"fmt"

	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/model"
)

// checkValue checks a written value against its resource definition:
// type and RangeEnumeration (content.Check), so a Dimmer of 150 with range
// 0..100 is refused with 4.00 and the reason, before any handler runs or
// anything is stored.
func checkValue(rec content.Record, def *model.Resource) (content.Value, error) {
	v, err := content.Check(rec.Value, def)
	if err != nil {
		return rec.Value, fmt.Errorf("%v: %w", rec.Path, err)
	}
	return v, nil
}

// undeletable says why a Delete of an instance of o is refused (4.05), or
// "" when it is allowed: the instance of a mandatory single-instance
// object (Device /3/0) and the last instance of a mandatory object (the
// LwM2M Server /1/x the client registers with) must exist for the client
// to be an LwM2M client at all (Core §6.3.5 lets the client refuse; the
// server's Bootstrap-Delete is handled apart). Caller holds c.t.mu.
func undeletable(o *objNode) string {
	switch {
	case !o.def.Mandatory:
		return ""
	case !o.def.Multiple:
		return fmt.Sprintf("object %d is mandatory and single-instance", o.def.ID)
	case len(o.insts) <= 1:
		return fmt.Sprintf("the last instance of mandatory object %d", o.def.ID)
	}
	return ""
}
