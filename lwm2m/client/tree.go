package client

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/link"
	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

// Handlers are an object's hooks into the application. Every field is
// optional: without Read the stored value is served, without Write the
// written value is stored, without Execute an executable resource does
// nothing and answers 2.04.
type Handlers struct {
	// Read returns the current value of a resource (or resource instance)
	// instead of the stored one; ok false falls back to the stored value.
	Read func(p path.Path) (v content.Value, ok bool)
	// Write is called before a written value is stored; an error refuses
	// the write with 4.00 (or the code of a *Error).
	Write func(p path.Path, v content.Value) error
	// Execute runs an executable resource with its arguments.
	Execute func(p path.Path, args string) error
	// Create and Delete are told about instances the server creates or
	// deletes; an error refuses the operation.
	Create func(inst uint16) error
	Delete func(inst uint16) error
}

// Error is returned by Handlers to answer with a specific CoAP code
// (e.g. 4.05 Method Not Allowed, 5.00).
type Error struct {
	Code    uint8 // CoAP code as class<<5 | detail, e.g. 0x85 for 4.05
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("lwm2m client: %d.%02d %s", e.Code>>5, e.Code&31, e.Message)
}

// Tree errors.
var (
	ErrNoObject   = errors.New("lwm2m client: no such object")
	ErrNoInstance = errors.New("lwm2m client: no such object instance")
	ErrNoResource = errors.New("lwm2m client: no such resource")
	ErrExists     = errors.New("lwm2m client: object instance exists")
	ErrTooMany    = errors.New("lwm2m client: too many instances or resource instances")
)

// Limits of the object tree.
const (
	MaxInstances         = 1024
	MaxResourceInstances = 1024
)

type resNode struct {
	single content.Value
	multi  map[uint16]content.Value // non-nil for multiple resources
}

type instNode map[uint16]*resNode

type objNode struct {
	def   *model.Object
	h     Handlers
	insts map[uint16]instNode
}

// tree is the client's object data, guarded by mu.
type tree struct {
	mu    sync.RWMutex
	objs  map[uint16]*objNode
	attrs map[path.Path]link.Attributes
}

func (t *tree) init() {
	t.objs = map[uint16]*objNode{}
	t.attrs = map[path.Path]link.Attributes{}
}

func (t *tree) obj(id uint16) (*objNode, bool) {
	o, ok := t.objs[id]
	return o, ok
}

// set stores v at a resource or resource instance path, creating the
// instance when needed. Caller holds mu.
func (t *tree) set(p path.Path, v content.Value) error {
	if p.Len() < path.LevelResource {
		return fmt.Errorf("%w: %v is not a resource", ErrNoResource, p)
	}
	o, ok := t.objs[p.ObjectID()]
	if !ok {
		return fmt.Errorf("%w: %d", ErrNoObject, p.ObjectID())
	}
	def, ok := o.def.Resource(p.ResourceID())
	if !ok {
		return fmt.Errorf("%w: %v", ErrNoResource, p)
	}
	if def.Type != model.None && !v.IsNone() {
		cv, err := content.Coerce(v, def.Type)
		if err != nil {
			return err
		}
		v = cv
	}
	inst, ok := o.insts[p.InstanceID()]
	if !ok {
		if len(o.insts) >= MaxInstances {
			return ErrTooMany
		}
		inst = instNode{}
		o.insts[p.InstanceID()] = inst
	}
	rn, ok := inst[p.ResourceID()]
	if !ok {
		rn = &resNode{}
		if def.Multiple {
			rn.multi = map[uint16]content.Value{}
		}
		inst[p.ResourceID()] = rn
	}
	switch {
	case rn.multi != nil && p.IsResourceInstance():
		if _, ok := rn.multi[p.ResourceInstanceID()]; !ok && len(rn.multi) >= MaxResourceInstances {
			return ErrTooMany
		}
		rn.multi[p.ResourceInstanceID()] = v
	case rn.multi != nil:
		return fmt.Errorf("%w: %v is a multiple resource; write resource instances", ErrNoResource, p)
	case p.IsResourceInstance():
		return fmt.Errorf("%w: %v: single resource has no instances", ErrNoResource, p)
	default:
		rn.single = v
	}
	return nil
}

// records collects the readable values under p. Caller holds mu (read).
func (t *tree) records(p path.Path) ([]content.Record, error) {
	if p.IsRoot() {
		return nil, fmt.Errorf("%w: read of the root", ErrNoObject)
	}
	o, ok := t.objs[p.ObjectID()]
	if !ok {
		return nil, fmt.Errorf("%w: %d", ErrNoObject, p.ObjectID())
	}
	var out []content.Record
	instIDs := slices.Sorted(maps.Keys(o.insts))
	for _, iid := range instIDs {
		if p.Len() >= 2 && iid != p.InstanceID() {
			continue
		}
		inst := o.insts[iid]
		for _, rid := range slices.Sorted(maps.Keys(inst)) {
			if p.Len() >= 3 && rid != p.ResourceID() {
				continue
			}
			def, ok := o.def.Resource(rid)
			if !ok || !def.Operations.Readable() {
				continue
			}
			rn := inst[rid]
			rp := path.Resource(p.ObjectID(), iid, rid)
			if rn.multi != nil {
				for _, ri := range slices.Sorted(maps.Keys(rn.multi)) {
					if p.Len() == 4 && ri != p.ResourceInstanceID() {
						continue
					}
					rip := path.ResourceInstance(p.ObjectID(), iid, rid, ri)
					out = append(out, content.Record{Path: rip, Value: t.read(o, rip, rn.multi[ri])})
				}
				continue
			}
			out = append(out, content.Record{Path: rp, Value: t.read(o, rp, rn.single)})
		}
	}
	return out, nil
}

func (t *tree) read(o *objNode, p path.Path, stored content.Value) content.Value {
	if o.h.Read != nil {
		if v, ok := o.h.Read(p); ok {
			return v
		}
	}
	return stored
}

// exists reports whether p names something in the tree (object, instance,
// resource, resource instance).
func (t *tree) exists(p path.Path) bool {
	if p.IsRoot() {
		return true
	}
	o, ok := t.objs[p.ObjectID()]
	if !ok {
		return false
	}
	if p.Len() == 1 {
		return true
	}
	inst, ok := o.insts[p.InstanceID()]
	if !ok {
		return false
	}
	if p.Len() == 2 {
		return true
	}
	rn, ok := inst[p.ResourceID()]
	if !ok {
		_, defined := o.def.Resource(p.ResourceID())
		return defined && p.Len() == 3 && isExecutable(o, p.ResourceID())
	}
	if p.Len() == 3 {
		return true
	}
	if rn.multi == nil {
		return false
	}
	_, ok = rn.multi[p.ResourceInstanceID()]
	return ok
}

func isExecutable(o *objNode, rid uint16) bool {
	d, ok := o.def.Resource(rid)
	return ok && d.Operations.Executable()
}

func isNoResource(err error) bool { return errors.Is(err, ErrNoResource) }
