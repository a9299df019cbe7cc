package server

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

// LastValue is the last value the server saw for one resource (or
// resource instance) of a device, and when and how it saw it.
type LastValue struct {
	Path  path.Path
	Value content.Value
	Time  time.Time
	// Source is how the value arrived: "read", "read-composite",
	// "observe" (first answer), "notify", "send", or how it left: "write",
	// "write-composite" (the value the device accepted with 2.04); or what
	// the caller of Remember names (the gateway uses "job" for queued
	// reads).
	Source string
	// Size is the size in bytes of an Opaque or String value that was cut
	// to MaxLastValueBytes (0 when kept whole).
	Size int
}

// Bounds of the last-value table (WithLastValues).
const (
	// DefaultLastValueDevices is the most devices whose values are kept.
	DefaultLastValueDevices = 100_000
	// DefaultLastValuesPerDevice is the most paths kept per device.
	DefaultLastValuesPerDevice = 512
	// MaxLastValueBytes is the most bytes of one Opaque or String value
	// kept; longer values keep their first bytes and their Size.
	MaxLastValueBytes = 256
)

// lastValues is the server's bounded table of last known values: at most
// maxDev devices (the least recently updated one goes first) and maxPer
// paths a device (its oldest value goes first).
type lastValues struct {
	mu      sync.Mutex
	devs    map[string]*devValues
	maxDev  int
	maxPer  int
	evicted atomic.Uint64 // values or devices pushed out by the bounds
	version atomic.Uint64 // bumped on every change (for snapshots)
}

type devValues struct {
	vals    map[path.Path]LastValue
	touched time.Time
}

func (t *lastValues) init(maxDev, maxPer int) {
	t.devs = map[string]*devValues{}
	t.maxDev, t.maxPer = maxDev, maxPer
}

// WithLastValues bounds the last-value table (default
// DefaultLastValueDevices devices, DefaultLastValuesPerDevice paths a
// device); 0 devices turns it off.
func WithLastValues(devices, perDevice int) Option {
	return func(c *config) error {
		if devices < 0 || perDevice < 0 {
			return fmt.Errorf("%w: WithLastValues(%d, %d): negative", ErrInvalidOption, devices, perDevice)
		}
		c.lastDevices, c.lastPerDevice = devices, perDevice
		return nil
	}
}

func clip(v content.Value) (content.Value, int) {
	switch v.Type() {
	case model.Opaque:
		if b := v.Bytes(); len(b) > MaxLastValueBytes {
			return content.NewOpaque(slices.Clone(b[:MaxLastValueBytes])), len(b)
		}
		return content.NewOpaque(slices.Clone(v.Bytes())), 0
	case model.String:
		if s := v.Str(); len(s) > MaxLastValueBytes {
			return content.NewString(s[:MaxLastValueBytes]), len(s)
		}
	}
	return v, 0
}

func (t *lastValues) put(ep string, vals []LastValue) {
	if t.maxDev <= 0 || t.maxPer <= 0 || len(vals) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.devs[ep]
	if d == nil {
		if len(t.devs) >= t.maxDev {
			t.evictDevice()
		}
		d = &devValues{vals: map[path.Path]LastValue{}}
		t.devs[ep] = d
	}
	for _, v := range vals {
		if v.Path.Len() < path.LevelResource || v.Value.IsNone() {
			continue
		}
		if old, ok := d.vals[v.Path]; ok && old.Time.After(v.Time) {
			continue // an older value arriving late (a restored snapshot, a slow job)
		}
		if _, ok := d.vals[v.Path]; !ok && len(d.vals) >= t.maxPer {
			t.evictOldest(d)
		}
		if v.Size == 0 {
			v.Value, v.Size = clip(v.Value)
		}
		d.vals[v.Path] = v
		if v.Time.After(d.touched) {
			d.touched = v.Time
		}
	}
	t.version.Add(1)
}

func (t *lastValues) evictDevice() {
	var oldest string
	var ot time.Time
	for ep, d := range t.devs {
		if oldest == "" || d.touched.Before(ot) {
			oldest, ot = ep, d.touched
		}
	}
	delete(t.devs, oldest)
	t.evicted.Add(1)
}

func (t *lastValues) evictOldest(d *devValues) {
	var oldest path.Path
	var ot time.Time
	first := true
	for p, v := range d.vals {
		if first || v.Time.Before(ot) {
			oldest, ot, first = p, v.Time, false
		}
	}
	delete(d.vals, oldest)
	t.evicted.Add(1)
}

func (t *lastValues) get(ep string) []LastValue {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.devs[ep]
	if d == nil {
		return nil
	}
	out := make([]LastValue, 0, len(d.vals))
	for _, v := range d.vals {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b LastValue) int { return path.Compare(a.Path, b.Path) })
	return out
}

func (t *lastValues) drop(ep string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.devs[ep]; ok {
		delete(t.devs, ep)
		t.version.Add(1)
	}
}

func (t *lastValues) endpoints() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.devs))
	for ep := range t.devs {
		out = append(out, ep)
	}
	slices.Sort(out)
	return out
}

// LastValues returns the last known values of device ep, by path: what
// the server saw in reads, notifications and Send (and what Remember
// added), each with its time. It works for a sleeping device and for one
// whose registration ended (until the table's bounds push it out).
func (s *Server) LastValues(ep string) []LastValue { return s.last.get(ep) }

// LastValueEndpoints returns the endpoints with last known values
// (snapshots).
func (s *Server) LastValueEndpoints() []string { return s.last.endpoints() }

// LastValuesVersion changes whenever the table changes, so that a
// snapshot is written only when there is something new.
func (s *Server) LastValuesVersion() uint64 { return s.last.version.Load() }

// LastValuesEvicted counts values and devices pushed out by the bounds.
func (s *Server) LastValuesEvicted() uint64 { return s.last.evicted.Load() }

// Remember records values for device ep (a restored snapshot, the result
// of a request the caller ran through the queue). A value older than the
// one kept for its path is ignored.
func (s *Server) Remember(ep string, vals ...LastValue) { s.last.put(ep, vals) }

// ForgetValues drops the last known values of ep.
func (s *Server) ForgetValues(ep string) { s.last.drop(ep) }

// remember decodes c (received or written for p) with m and keeps its
// values; content m cannot decode is skipped (the caller gets the raw
// payload anyway).
func (s *Server) remember(ep, source string, p path.Path, c Content, m model.Resolver) {
	if s.last.maxDev <= 0 || len(c.Payload) == 0 || c.Format == FormatLink {
		return
	}
	recs, err := content.Decode(content.Format(c.Format), p, c.Payload, m)
	if err != nil {
		return
	}
	s.rememberRecords(ep, source, s.cfg.now(), recs)
}

func (s *Server) rememberRecords(ep, source string, at time.Time, recs []content.Record) {
	if len(recs) == 0 {
		return
	}
	vals := make([]LastValue, 0, len(recs))
	for _, r := range recs {
		vals = append(vals, LastValue{Path: r.Path, Value: r.Value, Time: at, Source: source})
	}
	s.last.put(ep, vals)
}
