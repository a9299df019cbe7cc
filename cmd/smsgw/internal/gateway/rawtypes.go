package gateway

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// Explicit types of resources outside the object model. An API caller
// names them ("type" in a write, ?type= on a read); they type the answer,
// the last known values, and, for a device in queue mode, the job's result
// when it arrives later: a queued request keeps them in its Meta under
// metaTypes, as "31024/1=Integer,31024/3=Float" (object/resource=type).

const metaTypes = "types"

// parseType reads an explicit type name ("Integer", "opaque", "unsigned").
func parseType(s string) (model.Type, error) {
	t, err := model.ParseType(s)
	if err != nil || t == model.None {
		return model.None, fmt.Errorf("type %q: use String, Integer, Unsigned Integer, Float, Boolean, Opaque, Time, Objlnk or Corelnk", s)
	}
	return t, nil
}

type explicitTypes map[model.ResourceKey]model.Type

func keyOf(p path.Path) model.ResourceKey {
	return model.ResourceKey{Object: p.ObjectID(), Resource: p.ResourceID()}
}

// readType is the explicit type of a read of p (?type=): none for a path
// above a resource or a type the model already defines.
func (g *Gateway) readType(p path.Path, typ string) explicitTypes {
	t, err := parseType(typ)
	if typ == "" || err != nil || p.Len() < path.LevelResource {
		return nil
	}
	if _, ok := g.model.Resource(p.ObjectID(), p.ResourceID()); ok {
		return nil
	}
	return explicitTypes{keyOf(p): t}
}

// recordTypes are the types of the records of a write that the model does
// not define (they were written as the type the caller gave).
func (g *Gateway) recordTypes(recs []content.Record) explicitTypes {
	var out explicitTypes
	for _, r := range recs {
		if r.Path.Len() < path.LevelResource || r.Value.IsNone() {
			continue
		}
		if _, ok := g.model.Resource(r.Path.ObjectID(), r.Path.ResourceID()); ok {
			continue
		}
		if out == nil {
			out = explicitTypes{}
		}
		out[keyOf(r.Path)] = r.Value.Type()
	}
	return out
}

// resolver is the model with the explicit types.
func (g *Gateway) resolver(ts explicitTypes) model.Resolver {
	if len(ts) == 0 {
		return g.model
	}
	return model.Typed{Base: g.model, Types: ts}
}

// options are the server's request options for the explicit types.
func (ts explicitTypes) options() []server.RequestOption {
	var out []server.RequestOption
	for k, t := range ts {
		out = append(out, server.WithType(path.Resource(k.Object, 0, k.Resource), t))
	}
	return out
}

// meta is the Meta value of the explicit types ("" for none).
func (ts explicitTypes) meta() string {
	parts := make([]string, 0, len(ts))
	for k, t := range ts {
		parts = append(parts, fmt.Sprintf("%d/%d=%s", k.Object, k.Resource, t))
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// typesOfMeta reads the explicit types of a queued request's Meta; an
// entry it cannot read is left out (the value then decodes raw).
func typesOfMeta(meta map[string]string) explicitTypes {
	s := meta[metaTypes]
	if s == "" {
		return nil
	}
	out := explicitTypes{}
	for _, part := range strings.Split(s, ",") {
		key, name, ok := strings.Cut(part, "=")
		o, r, ok2 := strings.Cut(key, "/")
		if !ok || !ok2 {
			continue
		}
		obj, err1 := strconv.ParseUint(o, 10, 16)
		res, err2 := strconv.ParseUint(r, 10, 16)
		t, err3 := parseType(name)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		out[model.ResourceKey{Object: uint16(obj), Resource: uint16(res)}] = t
	}
	return out
}
