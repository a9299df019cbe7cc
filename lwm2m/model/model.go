package model

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/m2mbearer/m2mbearer/internal/cfgcheck"
)

// Type is an LwM2M resource data type (Core Appendix C).
type Type uint8

// Resource data types. None is the type of executable resources (no value).
const (
	None Type = iota
	String
	Integer
	Unsigned
	Float
	Boolean
	Opaque
	Time
	Objlnk
	Corelnk
)

var typeNames = [...]string{
	None: "none", String: "String", Integer: "Integer", Unsigned: "Unsigned Integer",
	Float: "Float", Boolean: "Boolean", Opaque: "Opaque", Time: "Time",
	Objlnk: "Objlnk", Corelnk: "Corelnk",
}

// String returns the DDF spelling of the type ("Unsigned Integer").
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// ParseType parses a DDF <Type> value. The empty string is None
// (executable resources carry no type).
func ParseType(s string) (Type, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return None, nil
	}
	for t, n := range typeNames {
		if strings.EqualFold(s, n) {
			return Type(t), nil
		}
	}
	switch strings.ToLower(s) {
	case "unsignedinteger", "unsigned":
		return Unsigned, nil
	case "objectlink", "objlink":
		return Objlnk, nil
	case "corelink":
		return Corelnk, nil
	}
	return None, fmt.Errorf("%w: unknown type %q", ErrInvalid, s)
}

// Operations is the set of operations a resource allows.
type Operations uint8

// Operation bits.
const (
	Read Operations = 1 << iota
	Write
	Execute
)

// Common combinations.
const (
	NoOps = Operations(0)
	R     = Read
	W     = Write
	RW    = Read | Write
	E     = Execute
)

// String returns the DDF spelling: "R", "W", "RW", "E" or "" (none).
func (o Operations) String() string {
	var b strings.Builder
	if o&Read != 0 {
		b.WriteByte('R')
	}
	if o&Write != 0 {
		b.WriteByte('W')
	}
	if o&Execute != 0 {
		b.WriteByte('E')
	}
	return b.String()
}

// Readable reports whether Read is allowed.
func (o Operations) Readable() bool { return o&Read != 0 }

// Writable reports whether Write is allowed.
func (o Operations) Writable() bool { return o&Write != 0 }

// Executable reports whether Execute is allowed.
func (o Operations) Executable() bool { return o&Execute != 0 }

// ParseOperations parses a DDF <Operations> value ("R", "RW", "E", "").
func ParseOperations(s string) (Operations, error) {
	var o Operations
	for _, c := range strings.TrimSpace(s) {
		switch c {
		case 'R', 'r':
			o |= Read
		case 'W', 'w':
			o |= Write
		case 'E', 'e':
			o |= Execute
		default:
			return 0, fmt.Errorf("%w: operations %q", ErrInvalid, s)
		}
	}
	if o&Execute != 0 && o&(Read|Write) != 0 {
		return 0, fmt.Errorf("%w: operations %q mix E with R/W", ErrInvalid, s)
	}
	return o, nil
}

// Resource describes one resource of an object.
type Resource struct {
	ID          uint16
	Name        string
	Operations  Operations
	Multiple    bool // multiple resource instances
	Mandatory   bool
	Type        Type
	Range       string // RangeEnumeration, as written in the definition
	Units       string
	Description string
}

// Object describes an LwM2M object.
//
// The zero Object describes nothing: Validate refuses it (no name).
type Object struct {
	ID           uint16
	Name         string
	Description  string
	URN          string // e.g. "urn:oma:lwm2m:oma:3"
	Version      string // object version, "1.0" when not stated
	LwM2MVersion string // enabler version the object was defined for
	Multiple     bool   // multiple object instances
	Mandatory    bool
	// Resources sorted by ID.
	Resources []Resource
}

// Resource returns the definition of resource id.
func (o *Object) Resource(id uint16) (*Resource, bool) {
	i, ok := slices.BinarySearchFunc(o.Resources, id, func(r Resource, id uint16) int {
		return int(r.ID) - int(id)
	})
	if !ok {
		return nil, false
	}
	return &o.Resources[i], true
}

// Validate checks an object definition: IDs ≤ 65534, resources unique, a
// type on every non-executable resource.
func (o *Object) Validate() error {
	if o.ID == 65535 {
		return fmt.Errorf("%w: object id 65535 is reserved", ErrInvalid)
	}
	if o.Name == "" {
		return fmt.Errorf("%w: object %d has no name", ErrInvalid, o.ID)
	}
	if o.Version != "" {
		var a, b int
		if n, err := fmt.Sscanf(o.Version, "%d.%d", &a, &b); n != 2 || err != nil || fmt.Sprintf("%d.%d", a, b) != o.Version {
			return fmt.Errorf("%w: object %d version %q", ErrInvalid, o.ID, o.Version)
		}
	}
	if len(o.Resources) > MaxResources {
		return fmt.Errorf("%w: object %d has %d resources (max %d)", ErrInvalid, o.ID, len(o.Resources), MaxResources)
	}
	for k, r := range o.Resources {
		if r.ID == 65535 {
			return fmt.Errorf("%w: object %d: resource id 65535 is reserved", ErrInvalid, o.ID)
		}
		if k > 0 && o.Resources[k-1].ID >= r.ID {
			return fmt.Errorf("%w: object %d: resources not sorted or duplicate id %d", ErrInvalid, o.ID, r.ID)
		}
		if r.Operations.Executable() && r.Type != None {
			return fmt.Errorf("%w: object %d: executable resource %d has type %v", ErrInvalid, o.ID, r.ID, r.Type)
		}
		if !r.Operations.Executable() && r.Type == None {
			return fmt.Errorf("%w: object %d: resource %d has no type", ErrInvalid, o.ID, r.ID)
		}
		if r.Type > Corelnk {
			return fmt.Errorf("%w: object %d: resource %d has unknown type", ErrInvalid, o.ID, r.ID)
		}
	}
	return nil
}

// Limits of a Registry and of DDF files.
const (
	// DefaultMaxObjects is the default number of objects a Registry holds.
	DefaultMaxObjects = 4096
	// MaxResources is the most resources one object may define.
	MaxResources = 4096
)

// Errors.
var (
	// ErrInvalid is wrapped by errors for malformed object definitions.
	ErrInvalid = errors.New("lwm2m model: invalid definition")
	// ErrFull is returned when a Registry is at its object limit.
	ErrFull = errors.New("lwm2m model: registry full")
	// ErrExists is returned when an object ID (and version) is already registered.
	ErrExists = errors.New("lwm2m model: object already registered")
	// ErrInvalidOption is wrapped by NewRegistry's error for an option out
	// of its range.
	ErrInvalidOption = errors.New("lwm2m model: invalid option")
)

// Registry holds object definitions by ID. It is safe for concurrent use.
// Registered objects must not be modified. The zero Registry is an empty
// registry ready to use, as NewRegistry().
type Registry struct {
	mu   sync.RWMutex
	objs map[uint16]*Object
	max  int
}

// Option configures a Registry. An option given a value out of its range
// makes NewRegistry fail with an error wrapping ErrInvalidOption.
type Option func(*Registry) error

// WithMaxObjects bounds the number of objects, at least 1 (default
// DefaultMaxObjects).
func WithMaxObjects(n int) Option {
	return func(r *Registry) error {
		r.max = n
		return cfgcheck.AtLeast1(ErrInvalidOption, "WithMaxObjects", n)
	}
}

// NewRegistry returns an empty registry, or an error wrapping
// ErrInvalidOption.
func NewRegistry(opts ...Option) (*Registry, error) {
	r := &Registry{objs: make(map[uint16]*Object), max: DefaultMaxObjects}
	for _, o := range opts {
		if err := o(r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// DefaultRegistry returns a new registry with the core objects 0–7 and the
// embedded objects (3311 Light Control).
func DefaultRegistry() *Registry {
	r := new(Registry)
	for _, o := range Core() {
		_ = r.Put(o)
	}
	_ = r.Put(OSCORE())
	for _, o := range Embedded() {
		_ = r.Put(o)
	}
	return r
}

// Add registers o; it fails with ErrExists if the ID is taken, ErrFull at
// the limit, or ErrInvalid if o does not validate.
func (r *Registry) Add(o *Object) error { return r.add(o, false) }

// Put registers o, replacing any definition with the same ID.
func (r *Registry) Put(o *Object) error { return r.add(o, true) }

func (r *Registry) add(o *Object, replace bool) error {
	if err := o.Validate(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.objs == nil { // the zero Registry: NewRegistry's
		r.objs, r.max = make(map[uint16]*Object), DefaultMaxObjects
	}
	if _, ok := r.objs[o.ID]; ok {
		if !replace {
			return fmt.Errorf("%w: %d", ErrExists, o.ID)
		}
	} else if len(r.objs) >= r.max {
		return fmt.Errorf("%w: %d objects", ErrFull, r.max)
	}
	r.objs[o.ID] = o
	return nil
}

// Object returns the definition of object id.
func (r *Registry) Object(id uint16) (*Object, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	o, ok := r.objs[id]
	return o, ok
}

// Resource returns the definition of resource res of object obj.
func (r *Registry) Resource(obj, res uint16) (*Resource, bool) {
	o, ok := r.Object(obj)
	if !ok {
		return nil, false
	}
	return o.Resource(res)
}

// Len returns the number of registered objects (for a gauge).
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.objs)
}

// IDs returns the registered object IDs in ascending order.
func (r *Registry) IDs() []uint16 {
	r.mu.RLock()
	ids := make([]uint16, 0, len(r.objs))
	for id := range r.objs {
		ids = append(ids, id)
	}
	r.mu.RUnlock()
	slices.Sort(ids)
	return ids
}

// Resolver is the smallest view of a model that decoders need.
// *Registry implements it.
type Resolver interface {
	Resource(obj, res uint16) (*Resource, bool)
}
