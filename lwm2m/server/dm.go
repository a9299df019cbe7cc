package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/link"
	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
)

// LwM2M content formats (CoAP Content-Format numbers) used by the API:
// lwm2m/content's list as go-coap media types.
const (
	FormatText      = message.MediaType(content.Text)      // text/plain
	FormatLink      = message.MediaType(content.CoreLink)  // application/link-format
	FormatOpaque    = message.MediaType(content.Opaque)    // application/octet-stream
	FormatCBOR      = message.MediaType(content.CBOR)      // application/cbor
	FormatSenMLJSON = message.MediaType(content.SenMLJSON) // application/senml+json
	FormatSenMLCBOR = message.MediaType(content.SenMLCBOR) // application/senml+cbor
	FormatTLV       = message.MediaType(content.TLV)       // application/vnd.oma.lwm2m+tlv
	FormatJSON      = message.MediaType(content.OldJSON)   // application/vnd.oma.lwm2m+json (1.0, read only)
	FormatLwM2MCBOR = message.MediaType(content.LwM2MCBOR) // application/vnd.oma.lwm2m+cbor
)

// Error is a device management failure reported by the device: the CoAP
// response code (4.04 Not Found, 4.05 Method Not Allowed, 4.06 Not
// Acceptable, ...) and its diagnostic payload. Callers branch on Code.
type Error struct {
	Op       string // "read", "write", ...
	Endpoint string
	Path     string
	Code     codes.Code
	Message  string // diagnostic payload, if any
}

func (e *Error) Error() string {
	s := fmt.Sprintf("lwm2m %s %s %s: %v", e.Op, e.Endpoint, e.Path, e.Code)
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Code returns the CoAP code of an *Error in err's chain, or 0.
func Code(err error) codes.Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// Content is an LwM2M payload with its content format.
//
// The zero Content is an empty text/plain payload.
type Content struct {
	Format  message.MediaType
	Payload []byte
}

// Text returns the payload as text (plain-text single resources).
func (c Content) Text() string { return string(c.Payload) }

// reqOpts are per-call options of the device management API.
type reqOpts struct {
	format message.MediaType
	hasFmt bool
	// types are explicit types of resources outside the model (WithType).
	types map[model.ResourceKey]model.Type
}

// RequestOption adjusts one device management request.
type RequestOption func(*reqOpts)

// WithFormat asks for (Read, Observe) or sends (Write, Create) the given
// content format instead of the one chosen from the client's announcement.
func WithFormat(f message.MediaType) RequestOption {
	return func(o *reqOpts) { o.format, o.hasFmt = f, true }
}

// WithType types resource p (any instance of its object) as t when the
// server's model does not define it: a Read's answer (ReadValues) and what
// the server remembers of it, and an Observe's notifications, are decoded
// as t instead of raw (TLV and plain text carry no types; without a type a
// resource outside the model decodes as Opaque from TLV, String from
// text). The model wins where it defines the resource. Give it once per
// resource; p shorter than a resource path is ignored.
func WithType(p path.Path, t model.Type) RequestOption {
	return func(o *reqOpts) {
		if p.Len() < path.LevelResource {
			return
		}
		if o.types == nil {
			o.types = map[model.ResourceKey]model.Type{}
		}
		o.types[model.ResourceKey{Object: p.ObjectID(), Resource: p.ResourceID()}] = t
	}
}

// resolver is the model the answers of a request are decoded with: the
// server's, plus the explicit types of WithType.
func (s *Server) resolverFor(o reqOpts) model.Resolver {
	if len(o.types) == 0 {
		return s.resolver()
	}
	return model.Typed{Base: s.resolver(), Types: o.types}
}

// PreferredFormat returns the content format the server uses for a
// multi-value payload with a client: content.Preferred for its LwM2M
// version and its "ct" announcement (SenML CBOR, SenML JSON or TLV for
// 1.1; LwM2M CBOR first for 1.2; TLV for 1.0 and when nothing was
// announced by a 1.0/1.1 client).
func PreferredFormat(r *registry.Registration) message.MediaType { return formatFor(r) }

// compositeFormat returns the format for composite operations (SenML).
func compositeFormat(r *registry.Registration) message.MediaType {
	for _, f := range []message.MediaType{FormatSenMLCBOR, FormatLwM2MCBOR, FormatSenMLJSON} {
		if r.Formats.Has(uint16(f)) {
			return f
		}
	}
	return FormatSenMLJSON
}

// target resolves an endpoint name to its registration, Endpoint and peer.
func (s *Server) target(ep string) (*registry.Registration, *bearer.Endpoint, net.Addr, error) {
	if err := s.checkOpen(); err != nil {
		return nil, nil, nil, err
	}
	reg, ok := s.store.ByEndpoint(ep)
	if !ok {
		return nil, nil, nil, notRegistered(ep)
	}
	e, ok := s.endpoint(reg.Transport())
	if !ok {
		return nil, nil, nil, fmt.Errorf("%w %q (endpoint %s)", ErrNoTransport, reg.Transport(), ep)
	}
	peer := reg.PeerAddr()
	if peer == nil {
		return nil, nil, nil, fmt.Errorf("lwm2m server: %s has no address", ep)
	}
	return reg, e, peer, nil
}

// devicePath prefixes p with the client's alternate root path.
func devicePath(reg *registry.Registration, p path.Path) string {
	alt := reg.AltPath()
	if alt == "/" {
		return p.String()
	}
	if p.IsRoot() {
		return alt
	}
	return alt + p.String()
}

// dmOp names one device management operation: what it is ("read",
// "write", ...; the Error's Op), on which endpoint, at which path.
type dmOp struct {
	op, ep string
	p      path.Path
}

// do sends the request build fills in for o (through the queue when the
// device has one) and checks its answer against want.
func (s *Server) do(ctx context.Context, o dmOp, build func(reg *registry.Registration, req *bearer.Request), want ...codes.Code) (*bearer.Response, *registry.Registration, error) {
	op, ep, p := o.op, o.ep, o.p
	reg, e, peer, err := s.target(ep)
	if err != nil {
		return nil, nil, err
	}
	req := bearer.NewRequest(codes.GET, peer, devicePath(reg, p))
	build(reg, req)
	if q := s.queueFor(ctx, reg); q != nil {
		if kind, ok := opKind(op, req.Code); ok {
			resp, err := q.viaQueue(ctx, toQueued(ep, kind, p, req))
			if err != nil {
				return nil, reg, err
			}
			return checkCode(o, resp, reg, want)
		}
	}
	resp, err := e.Do(ctx, req)
	if err != nil {
		return nil, reg, fmt.Errorf("lwm2m %s %s %s: %w", op, ep, p, err)
	}
	return checkCode(o, resp, reg, want)
}

func checkCode(o dmOp, resp *bearer.Response, reg *registry.Registration, want []codes.Code) (*bearer.Response, *registry.Registration, error) {
	for _, c := range want {
		if resp.Code == c {
			return resp, reg, nil
		}
	}
	return resp, reg, &Error{Op: o.op, Endpoint: o.ep, Path: o.p.String(), Code: resp.Code, Message: diag(resp.Payload)}
}

func diag(b []byte) string {
	if len(b) > 128 {
		b = b[:128]
	}
	return strings.ToValidUTF8(string(b), "?")
}

func applyOpts(opts []RequestOption) reqOpts {
	var o reqOpts
	for _, f := range opts {
		f(&o)
	}
	return o
}

func contentOf(resp *bearer.Response, fallback message.MediaType) Content {
	cf, ok := resp.ContentFormat()
	if !ok {
		cf = fallback
	}
	return Content{Format: cf, Payload: resp.Payload}
}

// Read reads an object, instance, resource or resource instance (Core
// §6.3.1: GET, 2.05 Content). Without WithFormat, a single resource is
// read in the client's choice of format and anything larger in
// PreferredFormat.
func (s *Server) Read(ctx context.Context, ep string, p path.Path, opts ...RequestOption) (Content, error) {
	o := applyOpts(opts)
	resp, _, err := s.do(ctx, dmOp{"read", ep, p}, func(reg *registry.Registration, req *bearer.Request) {
		req.Code = codes.GET
		if o.hasFmt {
			req.SetOption(bearer.UintOption(message.Accept, uint32(o.format)))
		} else if p.Len() < path.LevelResource {
			req.SetOption(bearer.UintOption(message.Accept, uint32(PreferredFormat(reg))))
		}
	}, codes.Content)
	if err != nil {
		return Content{}, err
	}
	c := contentOf(resp, FormatText)
	s.remember(ep, "read", p, c, s.resolverFor(o))
	return c, nil
}

// Discover returns the client's link-format description of p (Core
// §6.3.3: GET with Accept 40), with attributes.
func (s *Server) Discover(ctx context.Context, ep string, p path.Path) ([]link.Link, error) {
	resp, _, err := s.do(ctx, dmOp{"discover", ep, p}, func(_ *registry.Registration, req *bearer.Request) {
		req.Code = codes.GET
		req.SetOption(bearer.UintOption(message.Accept, uint32(FormatLink)))
	}, codes.Content)
	if err != nil {
		return nil, err
	}
	links, err := link.Parse(resp.Payload)
	if err != nil {
		s.stats.BadPayloadResp.Add(1)
		return nil, fmt.Errorf("lwm2m discover %s %s: %w", ep, p, err)
	}
	return links, nil
}

// WriteMode selects Write replace (PUT) or partial update (POST).
type WriteMode uint8

// Write modes (Core §6.3.2).
const (
	Replace       WriteMode = iota // PUT: the target is replaced
	PartialUpdate                  // POST: the given resources are written, others kept
)

// Write writes an already-encoded payload c to p (2.04 Changed). What the
// device accepted is remembered as its last known values (source "write",
// decoded with the server's model).
func (s *Server) Write(ctx context.Context, ep string, p path.Path, mode WriteMode, c Content) error {
	if err := s.write(ctx, ep, p, mode, c); err != nil {
		return err
	}
	s.remember(ep, "write", p, c, s.resolver())
	return nil
}

func (s *Server) write(ctx context.Context, ep string, p path.Path, mode WriteMode, c Content) error {
	if p.IsRoot() || p.IsObject() {
		return &Error{Op: "write", Endpoint: ep, Path: p.String(), Code: codes.MethodNotAllowed, Message: "write needs an object instance or deeper"}
	}
	_, _, err := s.do(ctx, dmOp{"write", ep, p}, func(_ *registry.Registration, req *bearer.Request) {
		req.Code = codes.PUT
		if mode == PartialUpdate {
			req.Code = codes.POST
		}
		req.SetOption(bearer.ContentFormatOption(c.Format))
		req.Payload = c.Payload
	}, codes.Changed)
	return err
}

// WriteAttributes sets notification attributes on p (Core §6.3.4: PUT with
// Uri-Query and no payload). Names listed in unset are removed.
func (s *Server) WriteAttributes(ctx context.Context, ep string, p path.Path, a link.Attributes, unset ...string) error {
	if err := a.Check(); err != nil {
		return fmt.Errorf("lwm2m write-attributes %s %s: %w", ep, p, err)
	}
	_, _, err := s.do(ctx, dmOp{"write-attributes", ep, p}, func(_ *registry.Registration, req *bearer.Request) {
		req.Code = codes.PUT
		for _, prm := range a.Params() {
			req.AddOption(bearer.StringOption(message.URIQuery, prm.Name+"="+prm.Value))
		}
		for _, name := range unset {
			req.AddOption(bearer.StringOption(message.URIQuery, name))
		}
	}, codes.Changed)
	return err
}

// Execute executes resource p with optional arguments (Core §6.3.5: POST,
// text arguments such as "0='v',1"; 2.04 Changed).
func (s *Server) Execute(ctx context.Context, ep string, p path.Path, args string) error {
	if !p.IsResource() {
		return &Error{Op: "execute", Endpoint: ep, Path: p.String(), Code: codes.MethodNotAllowed, Message: "execute needs a resource path"}
	}
	_, _, err := s.do(ctx, dmOp{"execute", ep, p}, func(_ *registry.Registration, req *bearer.Request) {
		req.Code = codes.POST
		if args != "" {
			req.SetOption(bearer.ContentFormatOption(FormatText))
			req.Payload = []byte(args)
		}
	}, codes.Changed)
	return err
}

// Create creates an object instance under object p with the encoded
// content c (Core §6.3.6: POST, 2.01 Created). It returns the new
// instance's path from Location-Path when the client sent one.
func (s *Server) Create(ctx context.Context, ep string, p path.Path, c Content) (path.Path, error) {
	if !p.IsObject() {
		return path.Path{}, &Error{Op: "create", Endpoint: ep, Path: p.String(), Code: codes.BadRequest, Message: "create needs an object path"}
	}
	resp, reg, err := s.do(ctx, dmOp{"create", ep, p}, func(_ *registry.Registration, req *bearer.Request) {
		req.Code = codes.POST
		req.SetOption(bearer.ContentFormatOption(c.Format))
		req.Payload = c.Payload
	}, codes.Created)
	if err != nil {
		return path.Path{}, err
	}
	loc := resp.LocationPath()
	if alt := reg.AltPath(); alt != "/" {
		loc = strings.TrimPrefix(loc, alt)
	}
	if loc == "" {
		return path.Path{}, nil
	}
	np, err := path.Parse(loc)
	if err != nil {
		s.stats.BadPayloadResp.Add(1)
		return path.Path{}, fmt.Errorf("lwm2m create %s %s: location %q: %w", ep, p, loc, err)
	}
	return np, nil
}

// Delete deletes an object instance (Core §6.3.7: DELETE, 2.02 Deleted).
func (s *Server) Delete(ctx context.Context, ep string, p path.Path) error {
	if !p.IsInstance() && !p.IsRoot() {
		return &Error{Op: "delete", Endpoint: ep, Path: p.String(), Code: codes.MethodNotAllowed, Message: "delete needs an object instance"}
	}
	_, _, err := s.do(ctx, dmOp{"delete", ep, p}, func(_ *registry.Registration, req *bearer.Request) {
		req.Code = codes.DELETE
	}, codes.Deleted)
	return err
}

// ReadComposite reads several paths in one request (Core 1.1 §6.3.8: FETCH
// on the root with a SenML path list, 2.05 Content). paths is the encoded
// request body in format reqFormat (110 or 112; a SenML array of {"n":
// path} records); the response comes in the client's composite format.
func (s *Server) ReadComposite(ctx context.Context, ep string, reqBody Content) (Content, error) {
	resp, _, err := s.do(ctx, dmOp{"read-composite", ep, path.Root}, func(reg *registry.Registration, req *bearer.Request) {
		req.Code = codes.FETCH
		req.SetOption(bearer.ContentFormatOption(reqBody.Format))
		req.SetOption(bearer.UintOption(message.Accept, uint32(compositeFormat(reg))))
		req.Payload = reqBody.Payload
	}, codes.Content)
	if err != nil {
		return Content{}, err
	}
	c := contentOf(resp, FormatSenMLJSON)
	s.remember(ep, "read-composite", path.Root, c, s.resolver())
	return c, nil
}

// WriteComposite writes several resources in one request (Core 1.1
// §6.3.9: iPATCH on the root with a SenML payload, 2.04 Changed). What the
// device accepted is remembered (source "write-composite").
func (s *Server) WriteComposite(ctx context.Context, ep string, c Content) error {
	if err := s.writeComposite(ctx, ep, c); err != nil {
		return err
	}
	s.remember(ep, "write-composite", path.Root, c, s.resolver())
	return nil
}

func (s *Server) writeComposite(ctx context.Context, ep string, c Content) error {
	_, _, err := s.do(ctx, dmOp{"write-composite", ep, path.Root}, func(_ *registry.Registration, req *bearer.Request) {
		req.Code = codes.IPATCH
		req.SetOption(bearer.ContentFormatOption(c.Format))
		req.Payload = c.Payload
	}, codes.Changed)
	return err
}

// ExecuteArgs formats Execute arguments (Core 1.1 §5.4.5): digits with an
// optional quoted value, comma separated, e.g. 0='on',1.
func ExecuteArgs(args map[int]string) string {
	keys := make([]int, 0, len(args))
	for k := range args {
		if k >= 0 && k <= 9 {
			keys = append(keys, k)
		}
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	var sb strings.Builder
	for i, k := range keys {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.Itoa(k))
		if v := args[k]; v != "" {
			sb.WriteString("='" + v + "'")
		}
	}
	return sb.String()
}
