package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
)

// fwRoutes mounts the firmware API and the HTTP Package URI server. The
// Package URI server has no bearer token: devices cannot send one, and the
// image ids are the images' SHA-256 prefixes.
func (g *Gateway) fwRoutes(handle func(string, http.HandlerFunc, bool), mux *routeMux) {
	if g.fw == nil {
		return
	}
	served := g.metrics.fwServed.WithLabelValues("http")
	fh := jsonErrors(firmware.HTTPHandler(g.fw.store, fwPrefix), "firmware image")
	mux.Handle("GET "+fwPrefix, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countWriter{ResponseWriter: w}
		fh.ServeHTTP(cw, r)
		served.Add(float64(cw.n))
	}))
	handle("POST /api/v1/firmware", g.uploadImage, true)
	handle("GET /api/v1/firmware", g.listImages, true)
	handle("GET /api/v1/firmware/{id}", g.getImage, true)
	handle("DELETE /api/v1/firmware/{id}", g.deleteImage, true)
	handle("POST /api/v1/devices/{ep}/firmware", g.updateDevice, true)
	handle("GET /api/v1/firmware-jobs/{id}", g.getFWJob, true)
	handle("POST /api/v1/campaigns", g.createCampaign, true)
	handle("GET /api/v1/campaigns", g.listCampaigns, true)
	handle("GET /api/v1/campaigns/{id}", g.getCampaign, true)
	handle("POST /api/v1/campaigns/{id}/{action}", g.campaignAction, true)
}

type countWriter struct {
	http.ResponseWriter
	n int
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n += n
	return n, err
}

func (g *Gateway) fwReady(w http.ResponseWriter) bool {
	if g.fw == nil || g.fw.mgr == nil {
		writeError(w, http.StatusServiceUnavailable, "firmware is not enabled in this gateway")
		return false
	}
	return true
}

func (g *Gateway) listImages(w http.ResponseWriter, r *http.Request) {
	if !g.fwReady(w) {
		return
	}
	pq, ok := pageOrError(w, r)
	if !ok {
		return
	}
	pg := newPager[firmware.ImageInfo](pq)
	for _, im := range g.fw.store.List() {
		pg.add(timeKey(im.Created.UnixNano(), im.ID), im)
	}
	writeJSON(w, 200, pg.body("images", func(im firmware.ImageInfo) any { return im }, nil))
}

func (g *Gateway) getImage(w http.ResponseWriter, r *http.Request) {
	if !g.fwReady(w) {
		return
	}
	info, err := g.fw.store.Get(r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown image %q; list images with GET /api/v1/firmware", r.PathValue("id")))
		return
	}
	writeJSON(w, 200, info)
}

func (g *Gateway) deleteImage(w http.ResponseWriter, r *http.Request) {
	if !g.fwReady(w) {
		return
	}
	if err := g.fw.store.Delete(r.PathValue("id")); err != nil {
		if errors.Is(err, firmware.ErrNotFound) {
			writeError(w, http.StatusNotFound, fmt.Sprintf("unknown image %q", r.PathValue("id")))
			return
		}
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, 200, map[string]string{"deleted": r.PathValue("id")})
}

// UpdateBody is the body of POST /api/v1/devices/{ep}/firmware.
type UpdateBody struct {
	Image        string `json:"image"`
	AllowSMSPush *bool  `json:"allow_sms_push"`
	DryRun       bool   `json:"dry_run"`
	MaxSMS       int    `json:"max_sms"`
	Method       string `json:"method"` // "", "push" or "pull"
}

// fwError answers a firmware error with its status.
func fwError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, firmware.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error()+"; list images with GET /api/v1/firmware")
	case errors.Is(err, firmware.ErrBudget):
		writeError(w, http.StatusUnprocessableEntity, err.Error())
	case errors.Is(err, firmware.ErrUnsupported):
		writeError(w, http.StatusUnprocessableEntity, err.Error()+" (for an SMS-only device, set allow_sms_push after checking the SMS cost with dry_run)")
	case errors.Is(err, firmware.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, err.Error())
	default:
		writeError(w, http.StatusBadGateway, err.Error())
	}
}

// updateDevice plans (dry_run) or starts a single-device update.
func (g *Gateway) updateDevice(w http.ResponseWriter, r *http.Request) {
	if !g.fwReady(w) {
		return
	}
	ep := r.PathValue("ep")
	if _, ok := g.lookup(w, ep); !ok {
		return
	}
	var b UpdateBody
	if !decodeBody(w, r, &b) {
		return
	}
	if _, err := g.fw.store.Get(b.Image); err != nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown image %q; list images with GET /api/v1/firmware", b.Image))
		return
	}
	opts := firmware.Options{AllowSMSPush: g.cfg.Firmware.AllowSMSPush, MaxSMS: b.MaxSMS}
	if b.AllowSMSPush != nil {
		opts.AllowSMSPush = *b.AllowSMSPush
	}
	switch b.Method {
	case "":
	case "push":
		opts.Prefer = firmware.Push
	case "pull":
		opts.Prefer = firmware.Pull
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown method %q; use push, pull or leave empty", b.Method))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
	defer cancel()
	plan, err := g.fw.upd.Plan(ctx, ep, b.Image, opts)
	if err != nil {
		fwError(w, err)
		return
	}
	if b.DryRun {
		writeJSON(w, 200, map[string]any{"dry_run": true, "plan": planJSON(plan)})
		return
	}
	j, err := g.startUpdate(r.Context(), ep, b.Image, opts, plan)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	w.Header().Set("Location", "/api/v1/firmware-jobs/"+j.ID)
	writeJSON(w, http.StatusAccepted, j)
}

func (g *Gateway) getFWJob(w http.ResponseWriter, r *http.Request) {
	if !g.fwReady(w) {
		return
	}
	j, ok := g.fw.job(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown firmware job %q", r.PathValue("id")))
		return
	}
	writeJSON(w, 200, j)
}

// CampaignBody is the body of POST /api/v1/campaigns.
type CampaignBody struct {
	Name      string   `json:"name"`
	Image     string   `json:"image"`
	Endpoints []string `json:"endpoints"`
	Prefix    string   `json:"prefix"`
	// Filter selects registered devices by attribute: binding ("U",
	// "US", "S"...), transport ("udp", "dtls", "sms"), queue ("true",
	// "false"), version ("1.1").
	Filter       map[string]string `json:"filter"`
	Concurrency  int               `json:"concurrency"`
	Retries      *int              `json:"retries"`
	Backoff      string            `json:"backoff"`
	SMSBudget    *int              `json:"sms_budget"`
	AllowSMSPush *bool             `json:"allow_sms_push"`
	Method       string            `json:"method"`
}

// filterMatch builds a registration filter from attributes.
func filterMatch(f map[string]string) (func(*registry.Registration) bool, error) {
	for k, v := range f {
		switch k {
		case "binding", "transport", "version":
		case "queue":
			if v != "true" && v != "false" {
				return nil, fmt.Errorf("filter queue must be \"true\" or \"false\", not %q", v)
			}
		default:
			return nil, fmt.Errorf("unknown filter attribute %q; use binding, transport, queue or version", k)
		}
	}
	return func(r *registry.Registration) bool {
		for k, v := range f {
			var got string
			switch k {
			case "binding":
				got = r.Binding.String()
			case "transport":
				got = r.Transport()
			case "queue":
				got = strconv.FormatBool(r.Queue)
			case "version":
				got = r.Version.String()
			}
			if got != v {
				return false
			}
		}
		return true
	}, nil
}

func (g *Gateway) createCampaign(w http.ResponseWriter, r *http.Request) {
	if !g.fwReady(w) {
		return
	}
	var b CampaignBody
	if !decodeBody(w, r, &b) {
		return
	}
	if b.Image != "" {
		if _, err := g.fw.store.Get(b.Image); err != nil {
			writeError(w, http.StatusNotFound, fmt.Sprintf("unknown image %q; list images with GET /api/v1/firmware", b.Image))
			return
		}
	}
	spec, err := campaignSpec(g.cfg.Firmware, b)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	id, err := g.fw.mgr.Create(r.Context(), spec)
	if err != nil {
		switch {
		case errors.Is(err, firmware.ErrNotFound):
			writeError(w, http.StatusNotFound, err.Error())
		case errors.Is(err, firmware.ErrInvalid):
			writeError(w, http.StatusBadRequest, err.Error())
		case errors.Is(err, firmware.ErrBudget):
			writeError(w, http.StatusUnprocessableEntity, err.Error())
		default:
			writeError(w, http.StatusConflict, err.Error())
		}
		return
	}
	rep, _ := g.fw.mgr.Status(id, false)
	g.hub.publish("campaign", rep)
	w.Header().Set("Location", "/api/v1/campaigns/"+id)
	writeJSON(w, http.StatusCreated, rep)
}

func (g *Gateway) listCampaigns(w http.ResponseWriter, r *http.Request) {
	if !g.fwReady(w) {
		return
	}
	pq, ok := pageOrError(w, r)
	if !ok {
		return
	}
	pg := newPager[firmware.Report](pq)
	for _, c := range g.fw.campaigns() {
		pg.add(timeKey(c.Created.UnixNano(), c.ID), c)
	}
	writeJSON(w, 200, pg.body("campaigns", func(c firmware.Report) any { return c }, nil))
}

func (g *Gateway) getCampaign(w http.ResponseWriter, r *http.Request) {
	if !g.fwReady(w) {
		return
	}
	devices := r.URL.Query().Get("devices") == "1" || r.URL.Query().Get("devices") == "true"
	pq, ok := pageOrError(w, r)
	if !ok {
		return
	}
	rep, err := g.fw.mgr.Status(r.PathValue("id"), devices)
	if err != nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown campaign %q; list campaigns with GET /api/v1/campaigns", r.PathValue("id")))
		return
	}
	if !devices {
		writeJSON(w, 200, map[string]any{"campaign": rep, "failed": rep.Failed()})
		return
	}
	// The campaign's devices, a page at a time (by endpoint).
	pg := newPager[firmware.DeviceState](pq)
	for _, d := range rep.Devices {
		pg.add(d.Endpoint, d)
	}
	rep.Devices = nil
	body := pg.body("devices", func(d firmware.DeviceState) any { return d },
		map[string]any{"failed": rep.Failed()})
	body["campaign"] = campaignPage{Report: rep, Devices: body["devices"].([]json.RawMessage)}
	delete(body, "devices")
	writeJSON(w, 200, body)
}

// campaignPage is a campaign with a page of its devices (count, total and
// next_cursor beside it).
type campaignPage struct {
	firmware.Report
	Devices []json.RawMessage `json:"devices"`
}

func (g *Gateway) campaignAction(w http.ResponseWriter, r *http.Request) {
	if !g.fwReady(w) {
		return
	}
	id, action := r.PathValue("id"), r.PathValue("action")
	var err error
	switch action {
	case "pause":
		err = g.fw.mgr.Pause(id)
	case "resume":
		err = g.fw.mgr.Resume(id)
	case "cancel":
		err = g.fw.mgr.Cancel(id)
	default:
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown action %q; use pause, resume or cancel", action))
		return
	}
	if err != nil {
		if _, serr := g.fw.mgr.Status(id, false); serr != nil {
			writeError(w, http.StatusNotFound, fmt.Sprintf("unknown campaign %q", id))
			return
		}
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	rep, _ := g.fw.mgr.Status(id, false)
	g.hub.publish("campaign", rep)
	writeJSON(w, 200, rep)
}

// errSpec marks a bad campaign request.
var errSpec = errors.New("bad campaign")

// campaignSpec checks a campaign request and builds the Manager's Spec,
// with the config's defaults for what the request leaves out.
func campaignSpec(fc config.Firmware, b CampaignBody) (firmware.Spec, error) {
	bad := func(format string, a ...any) (firmware.Spec, error) {
		return firmware.Spec{}, fmt.Errorf("%w: "+format, append([]any{errSpec}, a...)...)
	}
	if b.Image == "" {
		return bad("image is required (an id from GET /api/v1/firmware)")
	}
	if strings.HasPrefix(b.Name, devJobPrefix) {
		return bad("name %q: the prefix %q is kept for single-device updates", b.Name, devJobPrefix)
	}
	if len(b.Endpoints) == 0 && b.Prefix == "" && len(b.Filter) == 0 {
		return bad("no target: give endpoints, prefix or filter")
	}
	if len(b.Endpoints) > 100000 {
		return bad("%d endpoints; at most 100000", len(b.Endpoints))
	}
	for _, ep := range b.Endpoints {
		if ep == "" {
			return bad("empty endpoint name in endpoints")
		}
	}
	spec := firmware.Spec{Name: b.Name, Image: b.Image, Endpoints: b.Endpoints, Prefix: b.Prefix,
		Concurrency: fc.Concurrency, Retries: new(fc.Retries), SMSBudget: fc.SMSBudget,
		Options: firmware.Options{AllowSMSPush: fc.AllowSMSPush}}
	if len(b.Filter) > 0 {
		m, err := filterMatch(b.Filter)
		if err != nil {
			return bad("%v", err)
		}
		spec.Match = m
	}
	if b.Concurrency != 0 {
		if b.Concurrency < 1 || b.Concurrency > 10000 {
			return bad("concurrency must be in 1..10000")
		}
		spec.Concurrency = b.Concurrency
	}
	if b.Retries != nil {
		if *b.Retries < 0 || *b.Retries > 100 {
			return bad("retries must be in 0..100")
		}
		spec.Retries = new(*b.Retries)
	}
	if b.SMSBudget != nil {
		if *b.SMSBudget < -1 {
			return bad("sms_budget must be -1 (no limit), 0 (no SMS) or positive")
		}
		spec.SMSBudget = *b.SMSBudget
	}
	if b.AllowSMSPush != nil {
		spec.Options.AllowSMSPush = *b.AllowSMSPush
	}
	if b.Backoff != "" {
		d, err := time.ParseDuration(b.Backoff)
		if err != nil || d <= 0 || d > 24*time.Hour {
			return bad("backoff %q is not a duration in (0, 24h] (e.g. \"10s\")", b.Backoff)
		}
		spec.Backoff = d
	}
	switch b.Method {
	case "":
	case "push":
		spec.Options.Prefer = firmware.Push
	case "pull":
		spec.Options.Prefer = firmware.Pull
	default:
		return bad("unknown method %q; use push, pull or leave empty", b.Method)
	}
	return spec, nil
}
