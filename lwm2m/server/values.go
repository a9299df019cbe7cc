package server

import (
	"context"
	"fmt"

	"github.com/plgd-dev/go-coap/v3/message"

	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
)

// WithModel sets the object model that types decoded values (TLV and
// plain text carry no types). Default: model.DefaultRegistry() (core
// objects 0–7 and the embedded ones).
func WithModel(m model.Resolver) Option { return func(c *config) error { c.model = m; return nil } }

func (s *Server) resolver() model.Resolver { return s.cfg.model }

// announced returns the formats of a registration as content.Formats.
func announced(r *registry.Registration) []content.Format {
	var out []content.Format
	for _, n := range r.Formats.Numbers() {
		out = append(out, content.Format(n))
	}
	return out
}

// formatFor returns the multi-value format used with a client, by its
// LwM2M version and announcement (content.Preferred).
func formatFor(r *registry.Registration) message.MediaType {
	return message.MediaType(content.Preferred(r.Version.String(), announced(r)))
}

// Decode decodes c, received for path p, into records typed by the
// server's model.
func (s *Server) Decode(p path.Path, c Content) ([]content.Record, error) {
	return content.Decode(content.Format(c.Format), p, c.Payload, s.resolver())
}

// ReadValues reads p and decodes the answer into records.
func (s *Server) ReadValues(ctx context.Context, ep string, p path.Path, opts ...RequestOption) ([]content.Record, error) {
	c, err := s.Read(ctx, ep, p, opts...)
	if err != nil {
		return nil, err
	}
	recs, err := content.Decode(content.Format(c.Format), p, c.Payload, s.resolverFor(applyOpts(opts)))
	if err != nil {
		s.stats.BadPayloadResp.Add(1)
		return nil, fmt.Errorf("lwm2m read %s %s: %w", ep, p, err)
	}
	return recs, nil
}

// WriteValues encodes recs (absolute paths under p) in the client's
// format and writes them to p. Once the device accepted them, recs are
// its last known values (source "write", with their own types: a
// resource outside the model keeps the type it was written as).
func (s *Server) WriteValues(ctx context.Context, ep string, p path.Path, mode WriteMode, recs ...content.Record) error {
	reg, ok := s.Lookup(ep)
	if !ok {
		return notRegistered(ep)
	}
	f := formatFor(reg)
	body, err := content.Encode(content.Format(f), p, recs)
	if err != nil {
		return fmt.Errorf("lwm2m write %s %s: %w", ep, p, err)
	}
	if reg.Transport() == "sms" && len(recs) == 1 && recs[0].Path == p && p.Len() == path.LevelResource && f != message.TextPlain {
		// On SMS every byte costs: a single resource goes as plain text
		// (Core: text/plain carries one resource value) when that is
		// smaller than the structured format (a 500-byte string: 4 SMS
		// instead of 5).
		if tb, err := content.Encode(content.Text, p, recs); err == nil && len(tb) < len(body) {
			f, body = message.TextPlain, tb
		}
	}
	if err := s.write(ctx, ep, p, mode, Content{Format: f, Payload: body}); err != nil {
		return err
	}
	s.rememberRecords(ep, "write", s.cfg.now(), recs)
	return nil
}

// CreateValues creates an instance of object p from recs (paths
// /p/<instance>/<resource>) and returns the instance path.
func (s *Server) CreateValues(ctx context.Context, ep string, p path.Path, recs ...content.Record) (path.Path, error) {
	reg, ok := s.Lookup(ep)
	if !ok {
		return path.Path{}, notRegistered(ep)
	}
	f := formatFor(reg)
	body, err := content.Encode(content.Format(f), p, recs)
	if err != nil {
		return path.Path{}, fmt.Errorf("lwm2m create %s %s: %w", ep, p, err)
	}
	np, err := s.Create(ctx, ep, p, Content{Format: f, Payload: body})
	if err == nil && np.IsRoot() && len(recs) > 0 && recs[0].Path.Len() >= 2 {
		np = recs[0].Path.Truncate(2)
	}
	return np, err
}

// ReadCompositeValues reads several paths at once (Read-Composite) and
// decodes the records.
func (s *Server) ReadCompositeValues(ctx context.Context, ep string, paths ...path.Path) ([]content.Record, error) {
	reg, ok := s.Lookup(ep)
	if !ok {
		return nil, notRegistered(ep)
	}
	f := compositeFormat(reg)
	req := make([]content.Record, len(paths))
	for i, p := range paths {
		req[i] = content.Record{Path: p}
	}
	body, err := content.Encode(content.Format(f), path.Root, req)
	if err != nil {
		return nil, fmt.Errorf("lwm2m read-composite %s: %w", ep, err)
	}
	c, err := s.ReadComposite(ctx, ep, Content{Format: f, Payload: body})
	if err != nil {
		return nil, err
	}
	recs, err := s.Decode(path.Root, c)
	if err != nil {
		s.stats.BadPayloadResp.Add(1)
		return nil, fmt.Errorf("lwm2m read-composite %s: %w", ep, err)
	}
	return recs, nil
}

// WriteCompositeValues writes records at several paths at once; once the
// device accepted them they are its last known values (source
// "write-composite").
func (s *Server) WriteCompositeValues(ctx context.Context, ep string, recs ...content.Record) error {
	reg, ok := s.Lookup(ep)
	if !ok {
		return notRegistered(ep)
	}
	f := compositeFormat(reg)
	body, err := content.Encode(content.Format(f), path.Root, recs)
	if err != nil {
		return fmt.Errorf("lwm2m write-composite %s: %w", ep, err)
	}
	if err := s.writeComposite(ctx, ep, Content{Format: f, Payload: body}); err != nil {
		return err
	}
	s.rememberRecords(ep, "write-composite", s.cfg.now(), recs)
	return nil
}

// Records decodes a notification's content.
func (n Notification) Records(m model.Resolver) ([]content.Record, error) {
	base := path.Root
	if len(n.Paths) == 1 {
		base = n.Paths[0]
	}
	return content.Decode(content.Format(n.Content.Format), base, n.Content.Payload, m)
}

// Values decodes a notification with the model of its observation: the
// server's, plus the types given to Observe with WithType (a resource
// outside the model then decodes as that type, not raw). A Notification
// built by hand decodes only self-described content (SenML).
func (n Notification) Values() ([]content.Record, error) {
	m := n.m
	if m == nil {
		m = model.Typed{}
	}
	return n.Records(m)
}

// Records decodes the data of a Send.
func (e SendEvent) Records(m model.Resolver) ([]content.Record, error) {
	return content.Decode(content.Format(e.Content.Format), path.Root, e.Content.Payload, m)
}
