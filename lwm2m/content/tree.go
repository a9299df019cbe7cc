package content

import (
	"fmt"
	"slices"

	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

func errf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))
}

// InstanceValue is one instance of a multiple resource.
type InstanceValue struct {
	ID    uint16
	Value Value
}

// ResourceNode is a resource of an object instance: a single value, or the
// instances of a multiple resource.
type ResourceNode struct {
	ID        uint16
	Multiple  bool
	Value     Value           // single resources
	Instances []InstanceValue // multiple resources, sorted by ID
}

// ObjectInstance is an object instance and its resources, sorted by ID.
//
// The zero ObjectInstance is instance 0 with no resources.
type ObjectInstance struct {
	ObjectID   uint16
	InstanceID uint16
	Resources  []ResourceNode
}

// Tree groups records (at resource or resource-instance level) into object
// instances, sorted by path. A resource given both as a single value and as
// instances, or a path given twice, is refused with ErrNotEncodable.
func Tree(recs []Record) ([]ObjectInstance, error) {
	sorted := slices.Clone(recs)
	slices.SortStableFunc(sorted, func(a, b Record) int { return path.Compare(a.Path, b.Path) })
	var out []ObjectInstance
	for k, r := range sorted {
		if r.Path.Len() < path.LevelResource {
			return nil, errf(ErrNotEncodable, "record at %v is not a resource", r.Path)
		}
		if k > 0 {
			prev := sorted[k-1].Path
			if prev == r.Path {
				return nil, errf(ErrNotEncodable, "%v given twice", r.Path)
			}
			if r.Path.HasPrefix(prev) {
				return nil, errf(ErrNotEncodable, "%v is both a single resource and has instance %v", prev, r.Path)
			}
		}
		o, i, rid := r.Path.ObjectID(), r.Path.InstanceID(), r.Path.ResourceID()
		if n := len(out); n == 0 || out[n-1].ObjectID != o || out[n-1].InstanceID != i {
			out = append(out, ObjectInstance{ObjectID: o, InstanceID: i})
		}
		oi := &out[len(out)-1]
		if r.Path.Len() == path.LevelResource {
			oi.Resources = append(oi.Resources, ResourceNode{ID: rid, Value: r.Value})
			continue
		}
		if n := len(oi.Resources); n == 0 || oi.Resources[n-1].ID != rid {
			oi.Resources = append(oi.Resources, ResourceNode{ID: rid, Multiple: true})
		}
		rn := &oi.Resources[len(oi.Resources)-1]
		rn.Instances = append(rn.Instances, InstanceValue{ID: r.Path.ResourceInstanceID(), Value: r.Value})
	}
	return out, nil
}

// Records flattens an object instance back into records.
func (oi ObjectInstance) Records() []Record {
	var out []Record
	for _, r := range oi.Resources {
		if !r.Multiple {
			out = append(out, Record{Path: path.Resource(oi.ObjectID, oi.InstanceID, r.ID), Value: r.Value})
			continue
		}
		for _, ri := range r.Instances {
			out = append(out, Record{Path: path.ResourceInstance(oi.ObjectID, oi.InstanceID, r.ID, ri.ID), Value: ri.Value})
		}
	}
	return out
}
