package client

import (
	"errors"
	"maps"
	"slices"
	"strconv"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/link"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

// ServeCoAP implements bearer.Handler: the device management and
// information reporting interfaces (Core §6.3, §6.4).
func (c *Client) ServeCoAP(w bearer.ResponseWriter, r *bearer.Request) {
	if c.stop == nil { // a zero Client has no objects to serve
		answer(w, codes.ServiceUnavailable, ErrNotCreated.Error())
		return
	}
	w = &countingWriter{ResponseWriter: w, c: c, r: r}
	c.touch()
	if r.Path() == "/bs" && r.Code == codes.POST {
		c.finishBootstrap(w)
		return
	}
	p, err := path.Parse(r.Path())
	if err != nil {
		answer(w, codes.NotFound, err.Error())
		return
	}
	bs := c.bootstrapping()
	if bs {
		switch {
		case r.Code == codes.DELETE && p.Len() <= path.LevelInstance:
			c.bootstrapDelete(w, p)
			return
		case r.Code == codes.GET && p.Len() <= path.LevelObject:
			if accept, err := r.Options.Accept(); err == nil && accept == message.AppLinkFormat {
				c.bootstrapDiscover(w, p)
				return
			}
		}
	}
	if !bs && !p.IsRoot() && p.ObjectID() == 0 {
		// The Security object is not accessible through the DM interface.
		answer(w, codes.Unauthorized, "security object")
		return
	}
	switch r.Code {
	case codes.GET:
		if accept, err := r.Options.Accept(); err == nil && accept == message.AppLinkFormat {
			c.discover(w, p)
			return
		}
		if obs, err := r.Options.Observe(); err == nil && obs == 0 {
			c.observe(w, r, p)
			return
		}
		c.read(w, r, p)
	case codes.PUT:
		if len(r.Payload) == 0 {
			if _, err := r.Options.ContentFormat(); err != nil {
				c.writeAttributes(w, r, p)
				return
			}
		}
		c.write(w, r, p, true)
	case codes.POST:
		switch p.Len() {
		case path.LevelObject:
			c.create(w, r, p)
		case path.LevelInstance:
			c.write(w, r, p, false)
		case path.LevelResource:
			c.execute(w, r, p)
		default:
			answer(w, codes.MethodNotAllowed, "POST not allowed here")
		}
	case codes.DELETE:
		c.delete(w, p)
	case codes.FETCH:
		if obs, err := r.Options.Observe(); err == nil && obs == 0 {
			c.observeComposite(w, r, p)
			return
		}
		c.readComposite(w, r, p)
	case codes.IPATCH:
		c.writeComposite(w, r, p)
	default:
		answer(w, codes.MethodNotAllowed, "")
	}
}

func answer(w bearer.ResponseWriter, code codes.Code, diag string) {
	var b []byte
	if diag != "" && code>>5 >= 4 {
		b = []byte(diag)
	}
	_ = w.WriteResponse(code, b)
}

// codeOf maps an application or decoding error to a CoAP code.
func codeOf(err error) codes.Code {
	var e *Error
	switch {
	case errors.As(err, &e):
		return codes.Code(e.Code)
	case errors.Is(err, content.ErrUnsupportedFormat):
		return codes.UnsupportedMediaType
	case errors.Is(err, ErrNoObject), errors.Is(err, ErrNoInstance), errors.Is(err, ErrNoResource):
		return codes.NotFound
	case errors.Is(err, ErrTooMany):
		return codes.RequestEntityTooLarge
	}
	return codes.BadRequest
}

// responseFormat picks the format of a Read or notification: the Accept
// option, else plain text (opaque for Opaque resources) for one single
// resource, else TLV for 1.0 clients and SenML CBOR for 1.1 and later.
func (c *Client) responseFormat(r *bearer.Request, p path.Path, recs []content.Record) content.Format {
	if a, err := r.Options.Accept(); err == nil {
		return content.Format(a)
	}
	if len(recs) == 1 && recs[0].Path == p && p.Len() >= path.LevelResource {
		if recs[0].Value.Type() == 6 { // model.Opaque
			return content.Opaque
		}
		return content.Text
	}
	if c.cfg.version == "1.0" {
		return content.TLV
	}
	return content.SenMLCBOR
}

func (c *Client) encode(r *bearer.Request, p path.Path) (content.Format, []byte, codes.Code, string) {
	c.t.mu.RLock()
	ok := c.t.exists(p)
	var recs []content.Record
	var err error
	if ok {
		recs, err = c.t.records(p)
	}
	c.t.mu.RUnlock()
	if !ok || err != nil {
		return 0, nil, codes.NotFound, "not found"
	}
	if p.Len() >= path.LevelResource && len(recs) == 0 {
		return 0, nil, codes.MethodNotAllowed, "not readable"
	}
	f := c.responseFormat(r, p, recs)
	body, err := content.Encode(f, p, recs)
	if err != nil {
		return 0, nil, codes.NotAcceptable, err.Error()
	}
	return f, body, codes.Content, ""
}

func (c *Client) read(w bearer.ResponseWriter, r *bearer.Request, p path.Path) {
	f, body, code, diag := c.encode(r, p)
	if code != codes.Content {
		answer(w, code, diag)
		return
	}
	w.SetOption(bearer.ContentFormatOption(message.MediaType(f)))
	_ = w.WriteResponse(codes.Content, body)
}

func (c *Client) discover(w bearer.ResponseWriter, p path.Path) {
	c.t.mu.RLock()
	defer c.t.mu.RUnlock()
	if p.IsRoot() || !c.t.exists(p) {
		answer(w, codes.NotFound, "not found")
		return
	}
	o := c.t.objs[p.ObjectID()]
	var links []link.Link
	add := func(lp path.Path, extra ...link.Param) {
		l := link.PathLink(lp, c.t.attrs[lp])
		l.Params = append(l.Params, extra...)
		links = append(links, l)
	}
	if p.Len() == 1 {
		var ver []link.Param
		if v := objectVersion(o.def, c.cfg.version); v != "1.0" {
			ver = append(ver, link.Param{Name: "ver", Value: v, HasValue: true})
		}
		add(p, ver...)
	}
	for _, iid := range slices.Sorted(maps.Keys(o.insts)) {
		if p.Len() >= 2 && iid != p.InstanceID() {
			continue
		}
		ip := path.Instance(p.ObjectID(), iid)
		if p.Len() <= 2 {
			add(ip)
		}
		inst := o.insts[iid]
		for _, rid := range discoverIDs(o, inst) {
			if p.Len() >= 3 && rid != p.ResourceID() {
				continue
			}
			rn := inst[rid]
			rp := path.Resource(p.ObjectID(), iid, rid)
			if rn == nil { // executable: no value, but the instance has it (Execute answers 2.04)
				add(rp)
				continue
			}
			if rn.multi != nil {
				add(rp, link.Param{Name: "dim", Value: strconv.Itoa(len(rn.multi)), HasValue: true})
				if p.Len() >= 3 {
					for _, ri := range slices.Sorted(maps.Keys(rn.multi)) {
						add(path.ResourceInstance(p.ObjectID(), iid, rid, ri))
					}
				}
				continue
			}
			add(rp)
		}
	}
	w.SetOption(bearer.ContentFormatOption(message.AppLinkFormat))
	_ = w.WriteResponse(codes.Content, link.Encode(links))
}

// discoverIDs lists the resources an instance has, for Discover (Core
// §6.3.3: every resource of the instance): those holding a value, and the
// executable resources of the object's definition, which hold none but
// answer Execute.
func discoverIDs(o *objNode, inst instNode) []uint16 {
	ids := slices.Collect(maps.Keys(inst))
	for _, r := range o.def.Resources {
		if _, ok := inst[r.ID]; !ok && r.Operations.Executable() {
			ids = append(ids, r.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

func (c *Client) writeAttributes(w bearer.ResponseWriter, r *bearer.Request, p path.Path) {
	a, unset, err := link.ParseQuery(r.Queries())
	if err != nil {
		answer(w, codes.BadRequest, err.Error())
		return
	}
	c.t.mu.Lock()
	if !c.t.exists(p) || p.IsRoot() {
		c.t.mu.Unlock()
		answer(w, codes.NotFound, "not found")
		return
	}
	merged := mergeAttrs(c.t.attrs[p], a, unset)
	if err := merged.Check(); err != nil {
		c.t.mu.Unlock()
		answer(w, codes.BadRequest, err.Error())
		return
	}
	if merged == (link.Attributes{}) {
		delete(c.t.attrs, p)
	} else {
		c.t.attrs[p] = merged
	}
	c.t.mu.Unlock()
	c.obs.changed(p) // new attributes apply at once
	answer(w, codes.Changed, "")
}

func mergeAttrs(cur, a link.Attributes, unset []string) link.Attributes {
	set := func(dst **uint32, v *uint32) {
		if v != nil {
			*dst = v
		}
	}
	setF := func(dst **float64, v *float64) {
		if v != nil {
			*dst = v
		}
	}
	set(&cur.Pmin, a.Pmin)
	set(&cur.Pmax, a.Pmax)
	setF(&cur.Gt, a.Gt)
	setF(&cur.Lt, a.Lt)
	setF(&cur.St, a.St)
	set(&cur.Epmin, a.Epmin)
	set(&cur.Epmax, a.Epmax)
	if a.Edge != nil {
		cur.Edge = a.Edge
	}
	if a.Con != nil {
		cur.Con = a.Con
	}
	for _, n := range unset {
		switch n {
		case link.AttrPmin:
			cur.Pmin = nil
		case link.AttrPmax:
			cur.Pmax = nil
		case link.AttrGt:
			cur.Gt = nil
		case link.AttrLt:
			cur.Lt = nil
		case link.AttrSt:
			cur.St = nil
		case "epmin":
			cur.Epmin = nil
		case "epmax":
			cur.Epmax = nil
		case "edge":
			cur.Edge = nil
		case "con":
			cur.Con = nil
		}
	}
	return cur
}

// decode decodes a request payload for base with the client's model.
func (c *Client) decode(r *bearer.Request, base path.Path) ([]content.Record, error) {
	cf, err := r.Options.ContentFormat()
	if err != nil {
		cf = message.TextPlain
	}
	return content.Decode(content.Format(cf), base, r.Payload, c.cfg.model)
}

func (c *Client) write(w bearer.ResponseWriter, r *bearer.Request, p path.Path, replace bool) {
	if p.Len() < path.LevelInstance {
		answer(w, codes.MethodNotAllowed, "write needs an instance or resource")
		return
	}
	recs, err := c.decode(r, p)
	if err != nil {
		answer(w, codeOf(err), err.Error())
		return
	}
	bs := c.bootstrapping()
	c.t.mu.Lock()
	o, ok := c.t.obj(p.ObjectID())
	if ok && bs && !c.t.exists(p.Truncate(2)) && len(o.insts) < MaxInstances {
		o.insts[p.InstanceID()] = instNode{} // Bootstrap-Write creates the instance
	}
	if !ok || !c.t.exists(p.Truncate(2)) {
		c.t.mu.Unlock()
		answer(w, codes.NotFound, "not found")
		return
	}
	for i, rec := range recs {
		def, ok := o.def.Resource(rec.Path.ResourceID())
		if !ok {
			c.t.mu.Unlock()
			answer(w, codes.NotFound, "no resource "+rec.Path.String())
			return
		}
		if !def.Operations.Writable() && !bs {
			c.t.mu.Unlock()
			answer(w, codes.MethodNotAllowed, rec.Path.String()+" is not writable")
			return
		}
		if recs[i].Value, err = checkValue(rec, def); err != nil {
			c.t.mu.Unlock()
			answer(w, codes.BadRequest, err.Error())
			return
		}
	}
	if replace && p.Len() == path.LevelResource {
		// Replacing a multiple resource drops its old instances.
		if rn, ok := o.insts[p.InstanceID()][p.ResourceID()]; ok && rn.multi != nil {
			clear(rn.multi)
		}
	}
	if replace && p.Len() == path.LevelInstance {
		// Replacing an instance removes the writable resources not given.
		given := map[uint16]bool{}
		for _, rec := range recs {
			given[rec.Path.ResourceID()] = true
		}
		for rid := range o.insts[p.InstanceID()] {
			if def, ok := o.def.Resource(rid); ok && def.Operations.Writable() && !given[rid] {
				delete(o.insts[p.InstanceID()], rid)
			}
		}
	}
	for _, rec := range recs {
		if o.h.Write != nil {
			if err := o.h.Write(rec.Path, rec.Value); err != nil {
				c.t.mu.Unlock()
				answer(w, codeOf(err), err.Error())
				return
			}
		}
		if err := c.t.set(rec.Path, rec.Value); err != nil {
			c.t.mu.Unlock()
			answer(w, codeOf(err), err.Error())
			return
		}
	}
	c.t.mu.Unlock()
	for _, rec := range recs {
		c.obs.changed(rec.Path)
	}
	answer(w, codes.Changed, "")
}

func (c *Client) execute(w bearer.ResponseWriter, r *bearer.Request, p path.Path) {
	c.t.mu.RLock()
	o, ok := c.t.obj(p.ObjectID())
	exists := ok && c.t.exists(p.Truncate(2))
	c.t.mu.RUnlock()
	if !exists {
		answer(w, codes.NotFound, "not found")
		return
	}
	if !isExecutable(o, p.ResourceID()) {
		answer(w, codes.MethodNotAllowed, "not executable")
		return
	}
	if p.ObjectID() == 1 && p.ResourceID() == 8 { // Registration Update Trigger
		if err := c.acceptTrigger(r); err != nil {
			c.log.Warn("lwm2m client: trigger refused", "ep", c.name, "err", err)
			answer(w, codes.Unauthorized, "not from the server")
			return
		}
		c.TriggerUpdate()
	}
	if o.h.Execute != nil {
		if err := o.h.Execute(p, string(r.Payload)); err != nil {
			answer(w, codeOf(err), err.Error())
			return
		}
	}
	answer(w, codes.Changed, "")
}

func (c *Client) create(w bearer.ResponseWriter, r *bearer.Request, p path.Path) {
	recs, err := c.decode(r, p)
	if err != nil {
		answer(w, codeOf(err), err.Error())
		return
	}
	c.t.mu.Lock()
	o, ok := c.t.obj(p.ObjectID())
	if !ok {
		c.t.mu.Unlock()
		answer(w, codes.NotFound, "no such object")
		return
	}
	var iid uint16
	if len(recs) > 0 && recs[0].Path.Len() >= 2 {
		iid = recs[0].Path.InstanceID()
	} else {
		for ; iid < path.MaxID; iid++ {
			if _, used := o.insts[iid]; !used {
				break
			}
		}
	}
	if _, exists := o.insts[iid]; exists {
		c.t.mu.Unlock()
		answer(w, codes.BadRequest, "instance exists")
		return
	}
	if len(o.insts) >= MaxInstances {
		c.t.mu.Unlock()
		answer(w, codes.RequestEntityTooLarge, "too many instances")
		return
	}
	for i, rec := range recs {
		if rec.Path.Len() < 3 {
			continue
		}
		def, ok := o.def.Resource(rec.Path.ResourceID())
		if !ok {
			c.t.mu.Unlock()
			answer(w, codes.NotFound, "no resource "+rec.Path.String())
			return
		}
		if recs[i].Value, err = checkValue(rec, def); err != nil {
			c.t.mu.Unlock()
			answer(w, codes.BadRequest, err.Error())
			return
		}
	}
	if o.h.Create != nil {
		if err := o.h.Create(iid); err != nil {
			c.t.mu.Unlock()
			answer(w, codeOf(err), err.Error())
			return
		}
	}
	o.insts[iid] = instNode{}
	for _, rec := range recs {
		if rec.Path.Len() < 3 || rec.Path.InstanceID() != iid {
			continue
		}
		if err := c.t.set(rec.Path, rec.Value); err != nil {
			delete(o.insts, iid)
			c.t.mu.Unlock()
			answer(w, codeOf(err), err.Error())
			return
		}
	}
	c.t.mu.Unlock()
	w.AddOption(bearer.StringOption(message.LocationPath, strconv.Itoa(int(p.ObjectID()))))
	w.AddOption(bearer.StringOption(message.LocationPath, strconv.Itoa(int(iid))))
	answer(w, codes.Created, "")
	c.TriggerUpdate() // the object list changed
}

func (c *Client) delete(w bearer.ResponseWriter, p path.Path) {
	if !p.IsInstance() {
		answer(w, codes.MethodNotAllowed, "delete needs an object instance")
		return
	}
	c.t.mu.Lock()
	o, ok := c.t.obj(p.ObjectID())
	if !ok || !c.t.exists(p) {
		c.t.mu.Unlock()
		answer(w, codes.NotFound, "not found")
		return
	}
	if why := undeletable(o); why != "" {
		c.t.mu.Unlock()
		answer(w, codes.MethodNotAllowed, why)
		return
	}
	if o.h.Delete != nil {
		if err := o.h.Delete(p.InstanceID()); err != nil {
			c.t.mu.Unlock()
			answer(w, codeOf(err), err.Error())
			return
		}
	}
	delete(o.insts, p.InstanceID())
	for ap := range c.t.attrs {
		if ap.HasPrefix(p) {
			delete(c.t.attrs, ap)
		}
	}
	c.t.mu.Unlock()
	c.obs.dropUnder(p)
	answer(w, codes.Deleted, "")
	c.TriggerUpdate()
}

func (c *Client) readComposite(w bearer.ResponseWriter, r *bearer.Request, p path.Path) {
	if !p.IsRoot() {
		answer(w, codes.MethodNotAllowed, "FETCH on the root only")
		return
	}
	paths, err := c.compositePaths(r)
	if err != nil {
		answer(w, codeOf(err), err.Error())
		return
	}
	f, body, err := c.encodeComposite(r, paths)
	if err != nil {
		answer(w, codes.NotAcceptable, err.Error())
		return
	}
	w.SetOption(bearer.ContentFormatOption(message.MediaType(f)))
	_ = w.WriteResponse(codes.Content, body)
}

// compositePaths decodes the paths of a Read- or Observe-Composite request.
func (c *Client) compositePaths(r *bearer.Request) ([]path.Path, error) {
	req, err := c.decode(r, path.Root)
	if err != nil {
		return nil, err
	}
	paths := make([]path.Path, 0, len(req))
	for _, q := range req {
		paths = append(paths, q.Path)
	}
	return paths, nil
}

// encodeComposite encodes the current values under paths in the format the
// request asked for (Accept, else its Content-Format, else SenML CBOR).
func (c *Client) encodeComposite(r *bearer.Request, paths []path.Path) (content.Format, []byte, error) {
	var out []content.Record
	c.t.mu.RLock()
	for _, p := range paths {
		recs, err := c.t.records(p)
		if err == nil {
			out = append(out, recs...)
		}
	}
	c.t.mu.RUnlock()
	f := content.SenMLCBOR
	if a, err := r.Options.Accept(); err == nil {
		f = content.Format(a)
	} else if cf, err := r.Options.ContentFormat(); err == nil {
		f = content.Format(cf)
	}
	body, err := content.Encode(f, path.Root, out)
	return f, body, err
}

func (c *Client) writeComposite(w bearer.ResponseWriter, r *bearer.Request, p path.Path) {
	if !p.IsRoot() {
		answer(w, codes.MethodNotAllowed, "iPATCH on the root only")
		return
	}
	recs, err := c.decode(r, path.Root)
	if err != nil {
		answer(w, codeOf(err), err.Error())
		return
	}
	c.t.mu.Lock()
	for i, rec := range recs {
		o, ok := c.t.obj(rec.Path.ObjectID())
		if !ok || rec.Path.Len() < 3 {
			c.t.mu.Unlock()
			answer(w, codes.NotFound, "no resource "+rec.Path.String())
			return
		}
		def, ok := o.def.Resource(rec.Path.ResourceID())
		if !ok || !def.Operations.Writable() {
			c.t.mu.Unlock()
			answer(w, codes.MethodNotAllowed, rec.Path.String()+" is not writable")
			return
		}
		if recs[i].Value, err = checkValue(rec, def); err != nil {
			c.t.mu.Unlock()
			answer(w, codes.BadRequest, err.Error())
			return
		}
	}
	for _, rec := range recs {
		o := c.t.objs[rec.Path.ObjectID()]
		if o.h.Write != nil {
			if err := o.h.Write(rec.Path, rec.Value); err != nil {
				c.t.mu.Unlock()
				answer(w, codeOf(err), err.Error())
				return
			}
		}
		if err := c.t.set(rec.Path, rec.Value); err != nil {
			c.t.mu.Unlock()
			answer(w, codeOf(err), err.Error())
			return
		}
	}
	c.t.mu.Unlock()
	for _, rec := range recs {
		c.obs.changed(rec.Path)
	}
	answer(w, codes.Changed, "")
}

// countingWriter counts and logs refused requests (4.xx, 5.xx).
type countingWriter struct {
	bearer.ResponseWriter
	c *Client
	r *bearer.Request
}

func (w *countingWriter) WriteResponse(code codes.Code, payload []byte) error {
	if code>>5 >= 4 {
		w.c.refused.Add(1)
		w.c.log.Info("lwm2m client: request refused", "code", code.String(), "method", w.r.Code.String(),
			"path", w.r.Path(), "reason", string(payload))
	}
	return w.ResponseWriter.WriteResponse(code, payload)
}

// Refused returns how many server requests the client refused with an
// error code (bad paths, payloads, formats, operations).
func (c *Client) Refused() uint64 { return c.refused.Load() }
