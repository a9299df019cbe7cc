package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/link"
	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// Device management routes beyond read/write/execute/create/delete/observe:
// Discover, Write-Attributes, Read-Composite, Write-Composite,
// Observe-Composite, the last known values, and the object model list.
// They call the server's Go API; for a device in queue mode the server
// queues the request, and one that is not answered within ?wait= (default
// 0) is answered 202 with its job, as the other operations are.

// dmRoutes adds the routes of this file.
func (g *Gateway) dmRoutes(handle func(pattern string, h http.HandlerFunc, auth bool)) {
	handle("GET /api/v1/devices/{ep}/discover/{path...}", g.discover, true)
	handle("PUT /api/v1/devices/{ep}/attributes/{path...}", g.writeAttributes, true)
	handle("POST /api/v1/devices/{ep}/composite/read", g.readComposite, true)
	handle("POST /api/v1/devices/{ep}/composite/write", g.writeComposite, true)
	handle("POST /api/v1/devices/{ep}/composite/observe", g.observeComposite, true)
	handle("DELETE /api/v1/devices/{ep}/composite/observe", g.cancelObserveComposite, true)
	handle("GET /api/v1/devices/{ep}/values", g.getValues, true)
	handle("GET /api/v1/objects", g.listObjects, true)
}

// ModelObject is an object of the model in GET /api/v1/objects.
type ModelObject struct {
	ID        uint16 `json:"id"`
	Name      string `json:"name"`
	Version   string `json:"version"`
	Multiple  bool   `json:"multiple"`
	Resources int    `json:"resources"`
	// Source is "built-in", or the DDF file under lwm2m.models it came from.
	Source string `json:"source"`
}

// loadModels adds the DDF files of lwm2m.models to the object model.
func (g *Gateway) loadModels() error {
	dir := g.cfg.LwM2M.Models
	if dir == "" {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("lwm2m.models: %w", err)
	}
	fsys := os.DirFS(dir)
	for _, e := range entries {
		if e.IsDir() || !strings.EqualFold(filepath.Ext(e.Name()), ".xml") {
			continue
		}
		data, err := readBounded(fsys, e.Name(), model.MaxDDFSize)
		if err != nil {
			return fmt.Errorf("lwm2m.models: %s: %w", e.Name(), err)
		}
		objs, err := g.model.LoadDDF(data)
		if err != nil {
			return fmt.Errorf("lwm2m.models: %s: %w", e.Name(), err)
		}
		for _, o := range objs {
			g.models = append(g.models, ModelObject{ID: o.ID, Name: o.Name, Version: o.Version, Multiple: o.Multiple,
				Resources: len(o.Resources), Source: e.Name()})
		}
	}
	g.log.Info("object models loaded", "dir", dir, "objects", len(g.models))
	return nil
}

func readBounded(fsys fs.FS, name string, limit int64) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("over %d bytes", limit)
	}
	return b, nil
}

// listObjects answers GET /api/v1/objects: every object of the model.
func (g *Gateway) listObjects(w http.ResponseWriter, r *http.Request) {
	src := map[uint16]string{}
	for _, m := range g.models {
		src[m.ID] = m.Source
	}
	out := []ModelObject{}
	for _, id := range g.model.IDs() {
		o, ok := g.model.Object(id)
		if !ok {
			continue
		}
		s := src[id]
		if s == "" {
			s = "built-in"
		}
		out = append(out, ModelObject{ID: o.ID, Name: o.Name, Version: o.Version, Multiple: o.Multiple, Resources: len(o.Resources), Source: s})
	}
	writeJSON(w, http.StatusOK, map[string]any{"objects": out, "count": len(out), "models_dir": g.cfg.LwM2M.Models})
}

// dmCall runs one device management call for the API: it resolves the
// device, bounds the call by ?wait= (queue-mode devices: 202 with the job
// when it is not answered in time), and maps errors as the other
// operation routes do.
func (g *Gateway) dmCall(w http.ResponseWriter, r *http.Request, op string, what string, call func(ctx context.Context, ep string) (*OpResult, error)) {
	start := time.Now()
	ep := r.PathValue("ep")
	reg, ok := g.lookup(w, ep)
	if !ok {
		return
	}
	wait, err := parseWait(r.URL.Query().Get("wait"), 0)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	timeout := opTimeout(reg, wait)
	if wait == 0 && reg.Queue {
		timeout = 50 * time.Millisecond // enqueue, answer 202 unless the device is awake and quick
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	res, err := call(ctx, ep)
	var qe *server.QueuedError
	switch {
	case errors.As(err, &qe):
		g.metrics.opLatency.WithLabelValues(op, "queued").Observe(since(start))
		job := &Job{ID: qe.ID, Endpoint: ep, Op: op, Paths: []string{what}, State: "queued"}
		if rec, err := g.qm.Get(qe.ID); err == nil {
			job = g.job(rec)
		}
		w.Header().Set("Location", fmt.Sprintf("/api/v1/jobs/%d", qe.ID))
		writeJSON(w, http.StatusAccepted, map[string]any{"job": job})
		return
	case err != nil:
		g.metrics.opLatency.WithLabelValues(op, "error").Observe(since(start))
		writeOpError(w, opRef{ep: ep, op: op, what: what, timeout: timeout}, err)
		return
	}
	g.metrics.opLatency.WithLabelValues(op, "ok").Observe(since(start))
	res.Endpoint, res.Op = ep, op
	if res.Path == "" {
		res.Path = what
	}
	writeJSON(w, http.StatusOK, res)
}

func apiPath(w http.ResponseWriter, r *http.Request) (path.Path, bool) {
	p, err := path.Parse("/" + strings.Trim(r.PathValue("path"), "/"))
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("bad LwM2M path: %v (use /object/instance/resource, e.g. /3/0/0)", err))
		return path.Path{}, false
	}
	return p, true
}

// dmBody reads a required JSON body strictly (jsonbody.go: bounded, UTF-8,
// one object, no unknown fields, nothing after it).
func dmBody(w http.ResponseWriter, r *http.Request, v any) bool { return decodeBody(w, r, v) }

// LinkJSON is one link of a Discover answer.
type LinkJSON struct {
	Path       string            `json:"path"`
	Attributes map[string]string `json:"attributes,omitempty"`
	// Name and Operations come from the object model for resources it knows.
	Name       string `json:"name,omitempty"`
	Operations string `json:"operations,omitempty"`
}

// discover answers GET /api/v1/devices/{ep}/discover/{path}: the device's
// link-format description of an object, instance or resource (Discover,
// Core §6.3.3), every link with its attributes.
func (g *Gateway) discover(w http.ResponseWriter, r *http.Request) {
	p, ok := apiPath(w, r)
	if !ok {
		return
	}
	if p.IsRoot() {
		writeError(w, http.StatusBadRequest, "discover needs an object, instance or resource path (/3, /3/0, /3/0/1)")
		return
	}
	g.dmCall(w, r, "discover", p.String(), func(ctx context.Context, ep string) (*OpResult, error) {
		links, err := g.srv.Discover(ctx, ep, p)
		if err != nil {
			return nil, err
		}
		res := &OpResult{Code: coapCode(uint8(codes.Content)), Format: content.CoreLink.String(), Text: string(link.Encode(links))}
		for _, l := range links {
			lj := LinkJSON{Path: l.Target}
			for _, prm := range l.Params {
				if lj.Attributes == nil {
					lj.Attributes = map[string]string{}
				}
				lj.Attributes[prm.Name] = prm.Value
			}
			if lp, err := path.Parse(l.Target); err == nil && lp.Len() >= path.LevelResource {
				if rd, ok := g.model.Resource(lp.ObjectID(), lp.ResourceID()); ok {
					lj.Name, lj.Operations = rd.Name, rd.Operations.String()
				}
			}
			res.Links = append(res.Links, lj)
		}
		return res, nil
	})
}

// AttributesBody is the body of Write-Attributes: attribute values by
// name (pmin, pmax, gt, lt, st, epmin, epmax, edge, con, hqmax) and the
// names to remove.
type AttributesBody struct {
	Set   map[string]json.Number `json:"set,omitempty"`
	Unset []string               `json:"unset,omitempty"`
}

// writeAttributes answers PUT /api/v1/devices/{ep}/attributes/{path}
// (Write-Attributes, Core §6.3.4).
func (g *Gateway) writeAttributes(w http.ResponseWriter, r *http.Request) {
	p, ok := apiPath(w, r)
	if !ok {
		return
	}
	var body AttributesBody
	if !dmBody(w, r, &body) {
		return
	}
	names := make([]string, 0, len(body.Set))
	for k := range body.Set {
		names = append(names, k)
	}
	sort.Strings(names)
	var q []string
	for _, k := range names {
		q = append(q, k+"="+body.Set[k].String())
	}
	q = append(q, body.Unset...)
	if len(q) == 0 {
		writeError(w, http.StatusBadRequest, `write-attributes needs {"set": {"pmin": 10, ...}} and/or {"unset": ["pmax"]}`)
		return
	}
	a, unset, err := link.ParseQuery(q)
	if err == nil {
		err = a.Check()
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	g.dmCall(w, r, "write-attributes", p.String()+"?"+strings.Join(q, "&"), func(ctx context.Context, ep string) (*OpResult, error) {
		if err := g.srv.WriteAttributes(ctx, ep, p, a, unset...); err != nil {
			return nil, err
		}
		return &OpResult{Code: coapCode(uint8(codes.Changed)), Path: p.String()}, nil
	})
}

// CompositeBody is the body of the composite operations: paths to read or
// observe, or values to write by path (with an explicit type for
// resources outside the object model).
type CompositeBody struct {
	Paths  []string          `json:"paths,omitempty"`
	Values map[string]any    `json:"values,omitempty"`
	Types  map[string]string `json:"types,omitempty"`
}

// maxCompositePaths bounds the paths of one composite request.
const maxCompositePaths = 256

func compositePaths(w http.ResponseWriter, r *http.Request) ([]path.Path, bool) {
	var body CompositeBody
	if !dmBody(w, r, &body) {
		return nil, false
	}
	if len(body.Paths) == 0 || len(body.Paths) > maxCompositePaths || len(body.Values) > 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf(`give {"paths": ["/3/0/0", "/3311/0"]} (1 to %d paths)`, maxCompositePaths))
		return nil, false
	}
	ps := make([]path.Path, 0, len(body.Paths))
	for _, s := range body.Paths {
		p, err := path.Parse(s)
		if err != nil || p.IsRoot() {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("path %q: not an LwM2M object, instance or resource path", s))
			return nil, false
		}
		ps = append(ps, p)
	}
	return ps, true
}

// readComposite answers POST /api/v1/devices/{ep}/composite/read
// (Read-Composite, Core 1.1 §6.3.8).
func (g *Gateway) readComposite(w http.ResponseWriter, r *http.Request) {
	ps, ok := compositePaths(w, r)
	if !ok {
		return
	}
	g.dmCall(w, r, "read-composite", pathsString(ps), func(ctx context.Context, ep string) (*OpResult, error) {
		recs, err := g.srv.ReadCompositeValues(ctx, ep, ps...)
		if err != nil {
			return nil, err
		}
		return &OpResult{Code: coapCode(uint8(codes.Content)), Values: recordsJSON(recs)}, nil
	})
}

// writeComposite answers POST /api/v1/devices/{ep}/composite/write
// (Write-Composite, Core 1.1 §6.3.9): {"values": {"/3311/0/5851": 40}}.
func (g *Gateway) writeComposite(w http.ResponseWriter, r *http.Request) {
	var body CompositeBody
	if !dmBody(w, r, &body) {
		return
	}
	if len(body.Values) == 0 || len(body.Values) > maxCompositePaths || len(body.Paths) > 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf(`give {"values": {"/3311/0/5851": 40, ...}} (1 to %d resources)`, maxCompositePaths))
		return
	}
	keys := make([]string, 0, len(body.Values))
	for k := range body.Values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	recs := make([]content.Record, 0, len(keys))
	for _, k := range keys {
		p, err := path.Parse(k)
		if err != nil || p.Len() < path.LevelResource {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("path %q: write-composite needs resource paths (/o/i/r)", k))
			return
		}
		rec, err := g.parseValue(p, body.Values[k], body.Types[k])
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		recs = append(recs, rec)
	}
	g.dmCall(w, r, "write-composite", strings.Join(keys, ","), func(ctx context.Context, ep string) (*OpResult, error) {
		if err := g.srv.WriteCompositeValues(ctx, ep, recs...); err != nil {
			return nil, err
		}
		return &OpResult{Code: coapCode(uint8(codes.Changed))}, nil
	})
}

// observeComposite answers POST /api/v1/devices/{ep}/composite/observe
// (Observe-Composite, Core 1.1 §6.4.3): the current values; later
// notifications go to the event stream with their values. Like Observe it
// is not queued: the device must be awake.
func (g *Gateway) observeComposite(w http.ResponseWriter, r *http.Request) {
	ps, ok := compositePaths(w, r)
	if !ok {
		return
	}
	g.dmCall(w, r, "observe-composite", pathsString(ps), func(ctx context.Context, ep string) (*OpResult, error) {
		_, c, err := g.srv.ObserveComposite(ctx, ep, ps, nil)
		if err != nil {
			return nil, err
		}
		res := &OpResult{Code: coapCode(uint8(codes.Content))}
		g.fillContent(res, path.Root, c, g.model)
		return res, nil
	})
}

// cancelObserveComposite answers DELETE .../composite/observe with the
// same body: the observation of that path set is cancelled actively.
func (g *Gateway) cancelObserveComposite(w http.ResponseWriter, r *http.Request) {
	ps, ok := compositePaths(w, r)
	if !ok {
		return
	}
	g.dmCall(w, r, "cancel-observe-composite", pathsString(ps), func(ctx context.Context, ep string) (*OpResult, error) {
		if err := g.srv.CancelCompositeObservation(ctx, ep, ps); err != nil {
			if errors.Is(err, server.ErrNoObservation) {
				return nil, &server.Error{Op: "cancel-observe-composite", Endpoint: ep, Path: pathsString(ps), Code: codes.NotFound, Message: "no observation of this path set"}
			}
			return nil, err
		}
		return &OpResult{Code: coapCode(uint8(codes.Content))}, nil
	})
}
