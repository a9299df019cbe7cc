package gateway

import (
	"context"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

//go:embed openapi.json
var openAPI []byte

// maxBody bounds API request bodies.
const maxBody = 64 << 10

func (g *Gateway) startAPI() error {
	ln, err := net.Listen("tcp", g.cfg.API.Listen)
	if err != nil {
		return listenError("api.listen", g.cfg.API.Listen, err)
	}
	g.apiLn = ln
	h := g.Handler() // creates g.web
	g.httpSrv = g.web.server(h)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := g.httpSrv.Serve(g.web.listener(ln)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.log.Error("api server", "err", err)
		}
	}()
	return nil
}

// Handler returns the HTTP handler of the API, /openapi.json and /metrics,
// behind the guard of httpserver.go (per-route deadlines and body bounds,
// JSON errors for unrouted requests).
func (g *Gateway) Handler() http.Handler {
	if g.web == nil {
		g.web = newHTTPGuard(g.cfg, g.log, g.metrics)
	}
	return g.guard(g.routes().ServeMux)
}

// routes registers every route on a mux that remembers their patterns
// (TestRoutesMatchOpenAPI holds them against openapi.json).
func (g *Gateway) routes() *routeMux {
	mux := &routeMux{ServeMux: http.NewServeMux()}
	handle := func(pattern string, h http.HandlerFunc, auth bool) {
		route := pattern
		if i := strings.IndexByte(route, ' '); i >= 0 {
			route = route[i+1:]
		}
		if strings.Contains(pattern, "/{ep}/") {
			h = g.routed(h) // to the node holding the device (cluster mode)
		}
		var hh http.Handler = h
		if auth {
			hh = g.auth(h)
		}
		mux.Handle(pattern, g.instrument(route, hh))
	}
	handle("GET /openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openAPI)
	}, false)
	if g.cfg.API.MetricsAuth {
		mux.Handle("GET /metrics", g.auth(g.metrics.Handler()))
	} else {
		mux.Handle("GET /metrics", g.metrics.Handler())
	}
	handle("GET /healthz", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) }, false)
	handle("GET /api/v1/devices", g.listDevices, true)
	handle("GET /api/v1/devices/{ep}", g.getDevice, true)
	handle("GET /api/v1/devices/{ep}/sms", g.getDeviceSMS, true)
	handle("GET /api/v1/devices/{ep}/data/{path...}", g.opHandler(queue.KindRead), true)
	handle("PUT /api/v1/devices/{ep}/data/{path...}", g.opHandler(queue.KindWrite), true)
	handle("POST /api/v1/devices/{ep}/data/{path...}", g.opHandler(queue.KindWritePartial), true)
	handle("DELETE /api/v1/devices/{ep}/data/{path...}", g.opHandler(queue.KindDelete), true)
	handle("POST /api/v1/devices/{ep}/execute/{path...}", g.opHandler(queue.KindExecute), true)
	handle("POST /api/v1/devices/{ep}/create/{path...}", g.opHandler(queue.KindCreate), true)
	handle("POST /api/v1/devices/{ep}/observe/{path...}", g.opHandler(queue.KindObserve), true)
	handle("DELETE /api/v1/devices/{ep}/observe/{path...}", g.opHandler(queue.KindCancelObserve), true)
	handle("GET /api/v1/jobs", g.listJobs, true)
	handle("GET /api/v1/jobs/{id}", g.getJob, true)
	handle("DELETE /api/v1/jobs/{id}", g.cancelJob, true)
	handle("GET /api/v1/modems", g.listModems, true)
	handle("GET /api/v1/sms", g.smsStats, true)
	handle("GET /api/v1/sms/quarantine", g.listQuarantine, true)
	handle("GET /api/v1/sms/spend", g.getSMSSpend, true)
	handle("GET /api/v1/wakeups", g.getWakeups, true)
	handle("DELETE /api/v1/sms/quarantine/{id}", g.deleteQuarantine, true)
	handle("GET /api/v1/events", g.hub.serveSSE, true)
	handle("GET /api/v1/objects/{id}", g.getObject, true)
	handle("GET /api/v1/cluster", g.getCluster, true)
	g.dmRoutes(handle)
	g.fwRoutes(handle, mux)
	g.stateRoutes(handle)
	mux.Handle("GET /ui/", jsonErrors(uiHandler(), "file of the web UI"))
	mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
	return mux
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(c int) { s.code = c; s.ResponseWriter.WriteHeader(c) }
func (s *statusRecorder) Flush()            { _ = s.FlushError() }

// FlushError flushes and reports a client that stopped reading.
func (s *statusRecorder) FlushError() error {
	return http.NewResponseController(s.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (g *Gateway) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sr := &statusRecorder{ResponseWriter: w, code: 200}
		h.ServeHTTP(sr, r)
		g.metrics.apiLatency.WithLabelValues(route, strconv.Itoa(sr.code/100)+"xx").Observe(since(start))
	})
}

// auth checks "Authorization: Bearer <token>" (constant-time compare).
func (g *Gateway) auth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok && r.URL.Path == "/api/v1/events" && r.URL.Query().Get("access_token") != "" {
			// EventSource in browsers cannot set headers (RFC 6750 §2.3).
			got, ok = r.URL.Query().Get("access_token"), true
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="smsgw"`)
			writeError(w, http.StatusUnauthorized, "missing bearer token: send the header \"Authorization: Bearer <token>\" (the token is in api.token of the config, or in the api-token file of the data dir)")
			return
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(g.token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="smsgw", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "wrong bearer token")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// APIError is the body of every error answer.
type APIError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, APIError{Error: msg})
}

// Device is a registered device in API answers.
type Device struct {
	Endpoint   string    `json:"endpoint"`
	Version    string    `json:"version"`
	Binding    string    `json:"binding"`
	Queue      bool      `json:"queue"`
	SMS        string    `json:"sms,omitempty"`
	Transport  string    `json:"transport"`
	Address    string    `json:"address"`
	Lifetime   uint32    `json:"lifetime"`
	Registered time.Time `json:"registered"`
	Updated    time.Time `json:"updated"`
	Expires    time.Time `json:"expires"`
	Objects    string    `json:"objects"`
	Awake      bool      `json:"awake"`
	Queued     int       `json:"queued"`
	Wakeable   bool      `json:"wakeable"`
	// SMSUsage is the device's SMS accounting (absent without an SMS number).
	SMSUsage *SMSUsage `json:"sms_usage,omitempty"`
	// Node is the cluster node holding the device's session (cluster mode).
	Node string `json:"node,omitempty"`
	// Security is how the device authenticated its registration: psk,
	// rpk, x509 (DTLS over UDP or SMS), oscore, or nosec.
	Security string `json:"security"`
}

func (g *Gateway) device(r *registry.Registration) Device {
	d := Device{Endpoint: r.Endpoint, Version: r.Version.String(), Binding: r.Binding.String(), Queue: r.Queue,
		SMS: r.SMS, Transport: r.Transport(), Lifetime: r.Lifetime,
		Registered: time.Unix(0, r.Registered).UTC(), Updated: time.Unix(0, r.Updated).UTC(),
		Expires: r.ExpiresAt().UTC(), Objects: r.Links(), Awake: !r.Queue || g.qm.Awake(r.Endpoint),
		Queued: len(g.qm.Pending(r.Endpoint)), Wakeable: g.wakeTarget(r).Wakeable(), SMSUsage: g.smsUsageOf(r), Node: r.Node()}
	if a := r.PeerAddr(); a != nil {
		d.Address = a.String()
	}
	d.Security = registrationSecurity(r)
	return d
}

func (g *Gateway) listDevices(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	pq, ok := pageOrError(w, r)
	if !ok {
		return
	}
	pg := newPager[*registry.Registration](pq)
	var bad string
	g.srv.Store().Range(func(reg *registry.Registration) bool {
		if s := q.Get("q"); s != "" && !strings.Contains(reg.Endpoint, s) {
			return true
		}
		if s := q.Get("transport"); s != "" && reg.Transport() != s {
			return true
		}
		if s := q.Get("binding"); s != "" {
			b, _, err := registry.ParseBinding(registry.V1_1, s)
			if err != nil {
				bad = fmt.Sprintf("binding %q: %v", s, err)
				return false
			}
			if !reg.Binding.Has(b) {
				return true
			}
		}
		if s := q.Get("queue"); s != "" && strconv.FormatBool(reg.Queue) != s {
			return true
		}
		pg.add(reg.Endpoint, reg)
		return true
	})
	if bad != "" {
		writeError(w, http.StatusBadRequest, bad)
		return
	}
	writeJSON(w, 200, pg.body("devices", func(reg *registry.Registration) any { return g.device(reg) }, nil))
}

func (g *Gateway) lookup(w http.ResponseWriter, ep string) (*registry.Registration, bool) {
	reg, ok := g.srv.Lookup(ep)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("device %q is not registered; list the registered devices with GET /api/v1/devices", ep))
	}
	return reg, ok
}

func (g *Gateway) getDevice(w http.ResponseWriter, r *http.Request) {
	if reg, ok := g.lookup(w, r.PathValue("ep")); ok {
		writeJSON(w, 200, g.device(reg))
	}
}

// OpBody is the JSON body of write, execute and create operations.
type OpBody struct {
	// Value is the new value of a resource (Write on /o/i/r): a JSON
	// string, number or boolean, parsed for the resource's type.
	Value any `json:"value,omitempty"`
	// Values are resource values by resource ID (Write on /o/i, Create).
	Values map[string]any `json:"values,omitempty"`
	// Args are Execute arguments ("0='on',1").
	Args string `json:"args,omitempty"`
	// Instance is the new instance ID of a Create.
	Instance *uint16 `json:"instance,omitempty"`
	// Type is the data type of Value ("Integer", "Opaque", ...): needed
	// for a resource outside the object model (then written as that type,
	// e.g. in TLV), checked against the model otherwise. On a Read
	// (?type=) it types the answer of a resource the model does not know.
	Type string `json:"type,omitempty"`
	// Types are the types of Values by resource ID, as Type.
	Types map[string]string `json:"types,omitempty"`
}

// OpResult is the answer of a device operation.
type OpResult struct {
	Endpoint string      `json:"endpoint"`
	Op       string      `json:"op"`
	Path     string      `json:"path"`
	Code     string      `json:"code"`
	Format   string      `json:"format,omitempty"`
	Values   []ValueJSON `json:"values,omitempty"`
	Text     string      `json:"text,omitempty"`
	Location string      `json:"location,omitempty"`
	Job      *Job        `json:"job,omitempty"`
	Links    []LinkJSON  `json:"links,omitempty"`
}

func coapCode(c uint8) string { return fmt.Sprintf("%d.%02d", c>>5, c&31) }

// httpStatus maps a device's CoAP error code to the HTTP status of the answer.
func httpStatus(c codes.Code) int {
	switch c {
	case codes.BadRequest, codes.BadOption:
		return http.StatusBadRequest
	case codes.Unauthorized, codes.Forbidden:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.MethodNotAllowed:
		return http.StatusMethodNotAllowed
	case codes.NotAcceptable, codes.UnsupportedMediaType:
		return http.StatusNotAcceptable
	case codes.RequestEntityTooLarge:
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadGateway
}

func (g *Gateway) opHandler(kind queue.Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ep := r.PathValue("ep")
		reg, ok := g.lookup(w, ep)
		if !ok {
			return
		}
		p, err := path.Parse("/" + strings.Trim(r.PathValue("path"), "/"))
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("bad LwM2M path: %v (use /object/instance/resource, e.g. /3/0/0)", err))
			return
		}
		var body OpBody
		if !decodeOptionalBody(w, r, &body) {
			return
		}
		if t := r.URL.Query().Get("type"); t != "" && (kind == queue.KindRead || kind == queue.KindObserve) {
			if _, err := parseType(t); err != nil {
				writeError(w, http.StatusBadRequest, err.Error())
				return
			}
			body.Type = t
		}
		req, recs, err := g.buildRequest(reg, kind, p, body)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		wait, err := parseWait(r.URL.Query().Get("wait"), 0)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		op := &opCall{reg: reg, kind: kind, p: p, body: body, recs: recs, req: req, wait: wait, start: start}
		if reg.Queue && kind != queue.KindObserve && kind != queue.KindCancelObserve {
			// Observe is not queued (its callback cannot outlive a
			// restart): it goes directly and needs an awake device.
			g.queued(w, r, op)
			return
		}
		timeout := opTimeout(reg, wait)
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		res, err := g.direct(ctx, op)
		outcome := "ok"
		if err != nil {
			outcome = "error"
		}
		g.metrics.opLatency.WithLabelValues(kind.String(), outcome).Observe(since(start))
		if err != nil {
			writeOpError(w, opRef{ep: ep, op: kind.String(), what: p.String(), timeout: timeout}, err)
			return
		}
		res.Endpoint, res.Op, res.Path = ep, kind.String(), p.String()
		writeJSON(w, http.StatusOK, res)
	}
}

// opCall is one operation of the API's operation routes (opHandler), parsed
// and validated, on its way to a device: directly (direct) or through the
// device's queue (queued).
type opCall struct {
	reg   *registry.Registration
	kind  queue.Kind
	p     path.Path
	body  OpBody
	recs  []content.Record // the payload's values (buildRequest)
	req   queue.Request    // the request a queue-mode device gets
	wait  time.Duration    // ?wait=, 0 when not given
	start time.Time        // when the API request arrived (latency metric)
}

// opRef names a device management call in the answer to its error: op on
// what (a path, or the paths of a composite operation) of device ep, sent
// with timeout.
type opRef struct {
	ep, op, what string
	timeout      time.Duration
}

// writeOpError answers the error of the device management call o.
func writeOpError(w http.ResponseWriter, o opRef, err error) {
	ep, op, what, timeout := o.ep, o.op, o.what, o.timeout
	var se *server.Error
	var te *bearer.TimeoutError
	switch {
	case errors.As(err, &se):
		msg := fmt.Sprintf("device %s answered %s to %s %s", ep, coapCode(uint8(se.Code)), op, what)
		if se.Message != "" {
			msg += ": " + se.Message
		}
		writeError(w, httpStatus(se.Code), msg)
	case errors.Is(err, server.ErrNotRegistered):
		writeError(w, http.StatusNotFound, fmt.Sprintf("device %q is not registered", ep))
	case storeDown(w, err):
	case errors.As(err, &te) && te.Op == "separate response":
		// An empty ACK and nothing after it: what a device that does not
		// implement the method does (Wakaama's client, for composite ops).
		writeError(w, http.StatusGatewayTimeout, fmt.Sprintf("device %s acknowledged %s %s (empty ACK) but sent no response within %v: it may not implement %s", ep, op, what, timeout, op))
	case isTimeout(err):
		writeError(w, http.StatusGatewayTimeout, fmt.Sprintf("device %s did not answer %s %s within %v", ep, op, what, timeout))
	default:
		writeError(w, http.StatusBadGateway, fmt.Sprintf("%s %s on %s: %v", op, what, ep, err))
	}
}

// opTimeout bounds an operation sent to a device directly: ?wait= when
// given, else 30 s (3 min over SMS).
func opTimeout(reg *registry.Registration, wait time.Duration) time.Duration {
	switch {
	case wait > 0:
		return wait
	case reg.Transport() == "sms":
		return 3 * time.Minute
	}
	return 30 * time.Second
}

func parseWait(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		if n, err2 := strconv.Atoi(s); err2 == nil {
			d, err = time.Duration(n)*time.Second, nil
		}
	}
	if err != nil || d < 0 || d > 10*time.Minute {
		return 0, fmt.Errorf("wait %q: give a duration between 0 and 10m, e.g. wait=30s", s)
	}
	return d, nil
}

// buildRequest validates the operation and encodes its payload, so that a
// bad value is refused (400) before anything is queued or sent.
func (g *Gateway) buildRequest(reg *registry.Registration, kind queue.Kind, p path.Path, body OpBody) (queue.Request, []content.Record, error) {
	req := queue.Request{Endpoint: reg.Endpoint, Kind: kind, Paths: []string{p.String()}, ContentFormat: queue.NoContentFormat}
	var recs []content.Record
	var err error
	switch kind {
	case queue.KindWrite, queue.KindWritePartial:
		switch {
		case p.IsResource() && body.Value != nil:
			var rec content.Record
			if rec, err = g.parseValue(p, body.Value, body.Type); err != nil {
				return req, nil, err
			}
			recs = []content.Record{rec}
		case p.IsInstance() && len(body.Values) > 0:
			if recs, err = g.parseValues(p, body.Values, body.Types); err != nil {
				return req, nil, err
			}
		default:
			return req, nil, errors.New(`write needs {"value": ...} on a resource path (/o/i/r) or {"values": {"<resource id>": ...}} on an instance path (/o/i)`)
		}
	case queue.KindCreate:
		if !p.IsObject() || body.Instance == nil || len(body.Values) == 0 {
			return req, nil, errors.New(`create needs an object path (/o) and {"instance": n, "values": {"<resource id>": ...}}`)
		}
		ip := path.Instance(p.ObjectID(), *body.Instance)
		if !ip.Valid() {
			return req, nil, fmt.Errorf("instance %d is not a valid instance ID", *body.Instance)
		}
		if recs, err = g.parseValues(ip, body.Values, body.Types); err != nil {
			return req, nil, err
		}
	case queue.KindExecute:
		if !p.IsResource() {
			return req, nil, fmt.Errorf("execute needs a resource path (/o/i/r), not %s", p)
		}
		req.Payload = []byte(body.Args)
		if body.Args != "" {
			req.ContentFormat = int32(message.TextPlain)
		}
		return req, nil, nil
	case queue.KindDelete:
		if !p.IsInstance() {
			return req, nil, fmt.Errorf("delete needs an object instance path (/o/i), not %s", p)
		}
	}
	ts := g.recordTypes(recs)
	if kind == queue.KindRead {
		ts = g.readType(p, body.Type)
	}
	if len(ts) > 0 {
		req.Meta = map[string]string{metaTypes: ts.meta()}
	}
	if len(recs) > 0 {
		f := content.Format(server.PreferredFormat(reg))
		if p.IsResource() && kind != queue.KindCreate {
			f = content.TLV
			if reg.Version == registry.V1_2 && !reg.Formats.Has(uint16(content.TLV)) {
				f = content.Format(server.PreferredFormat(reg))
			}
		}
		base := p
		if kind == queue.KindCreate {
			base = p
		}
		data, err := content.Encode(f, base, recs)
		if err != nil {
			return req, nil, fmt.Errorf("encode: %w", err)
		}
		req.Payload, req.ContentFormat = data, int32(f)
	}
	return req, recs, nil
}

func (g *Gateway) parseValue(p path.Path, v any, typ string) (content.Record, error) {
	res, ok := g.model.Resource(p.ObjectID(), p.ResourceID())
	if typ != "" {
		t, err := parseType(typ)
		if err != nil {
			return content.Record{}, err
		}
		if ok && res.Type != t {
			return content.Record{}, fmt.Errorf("resource %s (%s) is %v in the object model, not %v", p, res.Name, res.Type, t)
		}
		if !ok {
			// Outside the model: written as raw data of the given type.
			res = &model.Resource{ID: p.ResourceID(), Name: "resource " + p.String(), Operations: model.RW, Type: t}
		}
	} else if !ok {
		return content.Record{}, fmt.Errorf("resource %s is not in the object model; give its type (\"type\": \"Integer\", \"Opaque\" as base64, ...) to write it raw, or add its DDF file to lwm2m.models", p)
	}
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case bool:
		s = strconv.FormatBool(x)
	case float64:
		s = strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return content.Record{}, fmt.Errorf("value of %s (%s) must be a JSON string, number or boolean", p, res.Name)
	}
	val, err := content.ParseValue(res.Type, s)
	if err != nil {
		return content.Record{}, fmt.Errorf("bad value %q for %s (%s, type %v): %v", s, p, res.Name, res.Type, err)
	}
	return content.Record{Path: p, Value: val}, nil
}

func (g *Gateway) parseValues(inst path.Path, vals map[string]any, types map[string]string) ([]content.Record, error) {
	ids := make([]string, 0, len(vals))
	for k := range vals {
		ids = append(ids, k)
	}
	sort.Strings(ids)
	var recs []content.Record
	for _, k := range ids {
		id, err := strconv.ParseUint(k, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("resource ID %q is not a number", k)
		}
		rp, err := inst.Child(uint16(id))
		if err != nil {
			return nil, fmt.Errorf("resource ID %q: %v", k, err)
		}
		rec, err := g.parseValue(rp, vals[k], types[k])
		if err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// direct runs an operation on a device that is not in queue mode.
func (g *Gateway) direct(ctx context.Context, op *opCall) (*OpResult, error) {
	ep, kind, p, body, recs := op.reg.Endpoint, op.kind, op.p, op.body, op.recs
	res := &OpResult{}
	switch kind {
	case queue.KindRead, queue.KindObserve:
		var c server.Content
		var err error
		ts := g.readType(p, body.Type)
		if kind == queue.KindRead {
			c, err = g.srv.Read(ctx, ep, p, ts.options()...)
		} else {
			_, c, err = g.srv.Observe(ctx, ep, p, nil, ts.options()...)
		}
		if err != nil {
			return nil, err
		}
		res.Code = coapCode(uint8(codes.Content))
		g.fillContent(res, p, c, g.resolver(ts))
	case queue.KindWrite:
		if err := g.srv.WriteValues(ctx, ep, p, server.Replace, recs...); err != nil {
			return nil, err
		}
		res.Code = coapCode(uint8(codes.Changed))
	case queue.KindWritePartial:
		if err := g.srv.WriteValues(ctx, ep, p, server.PartialUpdate, recs...); err != nil {
			return nil, err
		}
		res.Code = coapCode(uint8(codes.Changed))
	case queue.KindExecute:
		if err := g.srv.Execute(ctx, ep, p, body.Args); err != nil {
			return nil, err
		}
		res.Code = coapCode(uint8(codes.Changed))
	case queue.KindCreate:
		np, err := g.srv.CreateValues(ctx, ep, p, recs...)
		if err != nil {
			return nil, err
		}
		res.Code, res.Location = coapCode(uint8(codes.Created)), np.String()
	case queue.KindDelete:
		if err := g.srv.Delete(ctx, ep, p); err != nil {
			return nil, err
		}
		res.Code = coapCode(uint8(codes.Deleted))
	case queue.KindCancelObserve:
		if err := g.srv.CancelObservation(ctx, ep, p); err != nil {
			if errors.Is(err, server.ErrNoObservation) {
				return nil, &server.Error{Op: "cancel-observe", Endpoint: ep, Path: p.String(), Code: codes.NotFound, Message: "no observation of this path"}
			}
			return nil, err
		}
		res.Code = coapCode(uint8(codes.Content))
	}
	return res, nil
}

// fillContent decodes c (the answer for p) into res with m: the model,
// plus the explicit types of the request (resolver).
func (g *Gateway) fillContent(res *OpResult, p path.Path, c server.Content, m model.Resolver) {
	res.Format = content.Format(c.Format).String()
	if recs, err := content.Decode(content.Format(c.Format), p, c.Payload, m); err == nil {
		res.Values = recordsJSON(recs)
	} else {
		res.Text = string(c.Payload)
	}
}

// queued enqueues an operation for a queue-mode device and, with wait,
// answers with its result if it arrives in time.
func (g *Gateway) queued(w http.ResponseWriter, r *http.Request, op *opCall) {
	req, p, wait, start := op.req, op.p, op.wait, op.start
	id, err := g.squeue.Enqueue(r.Context(), req)
	if err != nil {
		if storeDown(w, err) {
			return
		}
		status := http.StatusServiceUnavailable
		if errors.Is(err, queue.ErrInvalidRequest) {
			status = http.StatusBadRequest
		}
		writeError(w, status, fmt.Sprintf("cannot queue %s %s for %s: %v", req.Kind, p, req.Endpoint, err))
		return
	}
	if wait > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		rec, err := g.qm.Wait(ctx, id)
		cancel()
		if rec != nil && rec.State == queue.StateDone && err == nil && rec.Result != nil {
			g.metrics.opLatency.WithLabelValues(req.Kind.String(), "ok").Observe(since(start))
			res := rec.Result
			if c := codes.Code(res.Code); c >= 0x80 {
				writeError(w, httpStatus(c), fmt.Sprintf("device %s answered %s to %s %s: %s", req.Endpoint, coapCode(res.Code), req.Kind, p, res.Payload))
				return
			}
			out := &OpResult{Endpoint: req.Endpoint, Op: req.Kind.String(), Path: p.String(), Code: coapCode(res.Code), Job: g.job(rec)}
			if res.ContentFormat != queue.NoContentFormat && len(res.Payload) > 0 {
				g.fillContent(out, p, server.Content{Format: message.MediaType(res.ContentFormat), Payload: res.Payload}, g.resolver(typesOfMeta(rec.Meta)))
			}
			writeJSON(w, http.StatusOK, out)
			return
		}
		if rec != nil && rec.State.Final() {
			writeJSON(w, http.StatusBadGateway, map[string]any{"error": fmt.Sprintf("%s %s on %s: %v", req.Kind, p, req.Endpoint, rec.Err()), "job": g.job(rec)})
			return
		}
	}
	g.metrics.opLatency.WithLabelValues(req.Kind.String(), "queued").Observe(since(start))
	rec, err := g.qm.Get(id)
	if err != nil {
		writeJSON(w, http.StatusAccepted, map[string]any{"job": Job{ID: id, Endpoint: req.Endpoint, Op: req.Kind.String(), Paths: req.Paths, State: "queued"}})
		return
	}
	w.Header().Set("Location", fmt.Sprintf("/api/v1/jobs/%d", id))
	writeJSON(w, http.StatusAccepted, map[string]any{"job": g.job(rec)})
}

// Job is a queued request in API answers.
type Job struct {
	ID       uint64     `json:"id"`
	Endpoint string     `json:"endpoint"`
	Op       string     `json:"op"`
	Paths    []string   `json:"paths"`
	State    string     `json:"state"`
	Created  time.Time  `json:"created"`
	Expires  time.Time  `json:"expires"`
	Finished *time.Time `json:"finished,omitempty"`
	Error    string     `json:"error,omitempty"`
	Result   *OpResult  `json:"result,omitempty"`
}

func (g *Gateway) job(rec *queue.Record) *Job {
	j := &Job{ID: rec.ID, Endpoint: rec.Endpoint, Op: rec.Kind.String(), Paths: rec.Paths, State: rec.State.String(),
		Created: rec.Created.UTC(), Expires: rec.Expires.UTC()}
	if !rec.Finished.IsZero() {
		t := rec.Finished.UTC()
		j.Finished = &t
	}
	if err := rec.Err(); err != nil {
		j.Error = err.Error()
	}
	if rec.Result != nil {
		res := &OpResult{Endpoint: rec.Endpoint, Op: j.Op, Code: coapCode(rec.Result.Code)}
		if len(rec.Paths) > 0 {
			res.Path = rec.Paths[0]
		}
		if p, err := path.Parse(res.Path); err == nil && rec.Result.ContentFormat != queue.NoContentFormat && len(rec.Result.Payload) > 0 {
			g.fillContent(res, p, server.Content{Format: message.MediaType(rec.Result.ContentFormat), Payload: rec.Result.Payload}, g.resolver(typesOfMeta(rec.Meta)))
		} else if len(rec.Result.Payload) > 0 {
			res.Text = string(rec.Result.Payload)
		}
		j.Result = res
	}
	return j
}

// listJobs lists pending jobs, oldest first (by id), a page at a time.
func (g *Gateway) listJobs(w http.ResponseWriter, r *http.Request) {
	pq, ok := pageOrError(w, r)
	if !ok {
		return
	}
	pg := newPager[uint64](pq)
	add := func(ep string) {
		for _, id := range g.qm.Pending(ep) {
			pg.add(fmt.Sprintf("%020d", id), id)
		}
	}
	if ep := r.URL.Query().Get("endpoint"); ep != "" {
		add(ep)
	} else {
		g.srv.Store().Range(func(reg *registry.Registration) bool {
			add(reg.Endpoint)
			return true
		})
	}
	writeJSON(w, 200, pg.body("jobs", func(id uint64) any {
		if rec, err := g.qm.Get(id); err == nil {
			return g.job(rec)
		}
		return Job{ID: id, State: "finished"}
	}, map[string]any{"note": "pending jobs; finished ones are at /api/v1/jobs/{id}"}))
}

func (g *Gateway) jobID(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("job id %q is not a number", r.PathValue("id")))
		return 0, false
	}
	return id, true
}

func (g *Gateway) getJob(w http.ResponseWriter, r *http.Request) {
	id, ok := g.jobID(w, r)
	if !ok {
		return
	}
	wait, err := parseWait(r.URL.Query().Get("wait"), 0)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var rec *queue.Record
	if wait > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		rec, err = g.qm.Wait(ctx, id)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) || rec == nil {
			rec, err = g.qm.Get(id)
		}
	} else {
		rec, err = g.qm.Get(id)
	}
	if rec == nil {
		if errors.Is(err, queue.ErrNotFound) {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no job %d (never existed, or its result expired)", id))
			return
		}
		if storeDown(w, err) {
			return
		}
		writeError(w, http.StatusInternalServerError, fmt.Sprint(err))
		return
	}
	writeJSON(w, 200, g.job(rec))
}

func (g *Gateway) cancelJob(w http.ResponseWriter, r *http.Request) {
	id, ok := g.jobID(w, r)
	if !ok {
		return
	}
	err := g.qm.Cancel(id)
	switch {
	case err == nil:
		rec, _ := g.qm.Get(id)
		if rec != nil {
			writeJSON(w, 200, g.job(rec))
			return
		}
		writeJSON(w, 200, map[string]any{"id": id, "state": "cancelled"})
	case errors.Is(err, queue.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no job %d", id))
	case storeDown(w, err):
	default:
		writeError(w, http.StatusConflict, fmt.Sprintf("job %d cannot be cancelled: %v", id, err))
	}
}

// ModemJSON is a modem's status in API answers.
type ModemJSON struct {
	MSISDN       string `json:"msisdn"`
	Name         string `json:"name"`
	Profile      string `json:"profile"`
	Manufacturer string `json:"manufacturer,omitempty"`
	Model        string `json:"model,omitempty"`
	IMEI         string `json:"imei,omitempty"`
	Connected    bool   `json:"connected"`
	Ready        bool   `json:"ready"`
	SignalRSSI   int    `json:"signal_rssi"`
	SignalDBm    *int   `json:"signal_dbm,omitempty"`
	Registered   bool   `json:"registered"`
	HealthError  string `json:"health_error,omitempty"`
	Sent         uint64 `json:"sent"`
	SendErrors   uint64 `json:"send_errors"`
	Received     uint64 `json:"received"`
	Reports      uint64 `json:"status_reports"`
	Reconnects   uint64 `json:"reconnects"`
	PTY          string `json:"pty,omitempty"`
}

func (g *Gateway) listModems(w http.ResponseWriter, r *http.Request) {
	ptys := map[string]string{}
	for _, m := range g.simModems {
		ptys[m.MSISDN()] = m.PTYPath()
	}
	out := []ModemJSON{}
	for _, m := range g.modems {
		h, st, id := m.LastHealth(), m.Stats(), m.Identity()
		mj := ModemJSON{MSISDN: m.MSISDN(), Name: m.Name(), Profile: m.Profile().Name, Manufacturer: id.Manufacturer, Model: id.Model,
			IMEI: id.IMEI, Connected: m.Connected(), Ready: m.Ready(), SignalRSSI: h.Signal.RSSI, Registered: h.Registered(),
			Sent: st.Sent, SendErrors: st.SendErrors, Received: st.Received, Reports: st.StatusReports, Reconnects: st.Reconnects,
			PTY: ptys[m.MSISDN()]}
		if d, ok := h.Signal.DBm(); ok {
			mj.SignalDBm = &d
		}
		if h.Err != nil {
			mj.HealthError = h.Err.Error()
		}
		out = append(out, mj)
	}
	writeJSON(w, 200, map[string]any{"modems": out})
}

func (g *Gateway) smsStats(w http.ResponseWriter, r *http.Request) {
	if g.smsB == nil {
		writeJSON(w, 200, map[string]any{"enabled": false})
		return
	}
	used, _ := g.smsB.BudgetUsed("")
	out := map[string]any{"enabled": true, "stats": snakeJSON(g.smsB.Stats()), "budget_used_today": used,
		"daily_budget": g.cfg.SMS.DailyBudget, "queue": snakeJSON(g.qm.Stats())}
	if g.proxy != nil {
		out["proxy"] = snakeJSON(g.proxy.stats())
	}
	writeJSON(w, 200, out)
}

// isTimeout reports a request that got no answer in time.
func isTimeout(err error) bool {
	if errors.Is(err, bearer.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
