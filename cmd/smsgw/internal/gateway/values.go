package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/model"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// The last known values of every device's resources are the server's
// (server.LastValues: from reads, notifications and Send). The gateway
// adds the results of queued reads, which arrive after the API caller
// may have gone, and keeps the table across restarts in a snapshot file,
// <data_dir>/last-values.json, written every valuesSnapshotEvery when it
// changed and at shutdown (atomically: temporary file, fsync, rename). A
// crash loses at most the values of the last interval; they are a cache
// of what devices said, and the next read or notification refreshes them.

const (
	lastValuesFile      = "last-values.json"
	valuesSnapshotEvery = 30 * time.Second
	// maxValuesSnapshot bounds the snapshot file read at start.
	maxValuesSnapshot = 256 << 20
)

// LastValueJSON is one last known value in API answers and the snapshot.
type LastValueJSON struct {
	Path   string    `json:"path"`
	Type   string    `json:"type"`
	Value  any       `json:"value"`
	Text   string    `json:"text"` // the plain-text form (base64 for Opaque)
	Time   time.Time `json:"time"`
	Source string    `json:"source"`
	// Size is the full size of a value cut to its first bytes.
	Size int `json:"size,omitempty"`
}

func lastValueJSON(v server.LastValue) LastValueJSON {
	text, _ := content.Encode(content.Text, v.Path, []content.Record{{Path: v.Path, Value: v.Value}})
	return LastValueJSON{Path: v.Path.String(), Type: v.Value.Type().String(), Value: v.Value.Any(), Text: string(text),
		Time: v.Time.UTC(), Source: v.Source, Size: v.Size}
}

func (j LastValueJSON) lastValue() (server.LastValue, error) {
	p, err := path.Parse(j.Path)
	if err != nil {
		return server.LastValue{}, err
	}
	t, err := model.ParseType(j.Type)
	if err != nil {
		return server.LastValue{}, err
	}
	v, err := content.ParseValue(t, j.Text)
	if err != nil {
		return server.LastValue{}, err
	}
	return server.LastValue{Path: p, Value: v, Time: j.Time, Source: j.Source, Size: j.Size}, nil
}

// getValues answers GET /api/v1/devices/{ep}/values: the device's last
// known values, also while it sleeps (or after its registration ended).
func (g *Gateway) getValues(w http.ResponseWriter, r *http.Request) {
	ep := r.PathValue("ep")
	vals := g.srv.LastValues(ep)
	_, registered := g.srv.Lookup(ep)
	if len(vals) == 0 && !registered {
		writeError(w, http.StatusNotFound, fmt.Sprintf("device %q is not registered and has no last known values", ep))
		return
	}
	out := make([]LastValueJSON, 0, len(vals))
	for _, v := range vals {
		out = append(out, lastValueJSON(v))
	}
	writeJSON(w, http.StatusOK, map[string]any{"endpoint": ep, "registered": registered, "values": out, "count": len(out)})
}

// jobValues keeps the values of queued reads and writes that finish: it
// follows the queue's events on its own subscription (OnEvent runs under
// the queue's lock and must not call back into it). Owned by g.wg, ends
// with ctx.
func (g *Gateway) jobValues(ctx context.Context, sub *queue.Subscription) {
	defer g.wg.Done()
	defer sub.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-sub.C():
			if !ok {
				return
			}
			if ev.Type != queue.EventDone || ev.ID == 0 {
				continue
			}
			if rec, err := g.qm.Get(ev.ID); err == nil {
				g.rememberJob(rec, ev.Time)
			}
		}
	}
}

// rememberJob keeps the values of a finished queued request: what a read
// answered (source "job"), what a write the device accepted carried
// ("write", "write-composite"), typed with the explicit types the API
// caller gave (Meta).
func (g *Gateway) rememberJob(rec *queue.Record, at time.Time) {
	if rec.Result == nil || len(rec.Paths) == 0 {
		return
	}
	source, want := "job", codes.Content
	switch rec.Kind {
	case queue.KindRead, queue.KindReadComposite:
	case queue.KindWrite, queue.KindWritePartial:
		source, want = "write", codes.Changed
	case queue.KindWriteComposite:
		source, want = "write-composite", codes.Changed
	default:
		return
	}
	// A read's values are in its answer, a write's in its request.
	cf, payload := rec.Result.ContentFormat, rec.Result.Payload
	if want == codes.Changed {
		cf, payload = rec.ContentFormat, rec.Payload
	}
	if codes.Code(rec.Result.Code) != want || cf == queue.NoContentFormat {
		return
	}
	base := path.Root
	if rec.Kind != queue.KindReadComposite && rec.Kind != queue.KindWriteComposite {
		var err error
		if base, err = path.Parse(rec.Paths[0]); err != nil {
			return
		}
	}
	recs, err := content.Decode(content.Format(cf), base, payload, g.resolver(typesOfMeta(rec.Meta)))
	if err != nil {
		return
	}
	if !rec.Finished.IsZero() {
		at = rec.Finished
	}
	vals := make([]server.LastValue, 0, len(recs))
	for _, r := range recs {
		vals = append(vals, server.LastValue{Path: r.Path, Value: r.Value, Time: at, Source: source})
	}
	g.srv.Remember(rec.Endpoint, vals...)
	// The web UI reloads the device's last known values on this event (a
	// read queued for the next wake-up has answered).
	g.hub.publish("values", map[string]any{"endpoint": rec.Endpoint, "job": rec.ID, "source": source, "count": len(vals)})
}

// loadValues restores the snapshot of the last known values.
func (g *Gateway) loadValues() error {
	file := filepath.Join(g.cfg.DataDir, lastValuesFile)
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("last values: %w", err)
	}
	defer f.Close()
	var snap map[string][]LastValueJSON
	if err := json.NewDecoder(io.LimitReader(f, maxValuesSnapshot)).Decode(&snap); err != nil {
		// A cache: a bad file is reported and replaced at the next snapshot.
		g.log.Warn("last values: snapshot unreadable, starting empty", "file", file, "err", err)
		return nil
	}
	bad := 0
	for ep, vals := range snap {
		lv := make([]server.LastValue, 0, len(vals))
		for _, j := range vals {
			v, err := j.lastValue()
			if err != nil {
				bad++
				continue
			}
			lv = append(lv, v)
		}
		g.srv.Remember(ep, lv...)
	}
	if bad > 0 {
		g.log.Warn("last values: entries of the snapshot skipped", "file", file, "skipped", bad)
	}
	return nil
}

// saveValues writes the snapshot when the table changed since the last one.
func (g *Gateway) saveValues(last *uint64) error {
	v := g.srv.LastValuesVersion()
	if v == *last {
		return nil
	}
	snap := map[string][]LastValueJSON{}
	for _, ep := range g.srv.LastValueEndpoints() {
		vals := g.srv.LastValues(ep)
		js := make([]LastValueJSON, 0, len(vals))
		for _, lv := range vals {
			js = append(js, lastValueJSON(lv))
		}
		snap[ep] = js
	}
	b, err := json.Marshal(snap)
	if err != nil {
		return fmt.Errorf("last values: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(g.cfg.DataDir, lastValuesFile), b); err != nil {
		return fmt.Errorf("last values: %w", err)
	}
	*last = v
	return nil
}

// snapshotValues saves the table every valuesSnapshotEvery and once more
// when ctx ends. Owned by g.wg.
func (g *Gateway) snapshotValues(ctx context.Context) {
	defer g.wg.Done()
	last := g.srv.LastValuesVersion()
	t := time.NewTicker(valuesSnapshotEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := g.saveValues(&last); err != nil {
				g.log.Error("last values: snapshot at shutdown", "err", err)
			}
			return
		case <-t.C:
			if err := g.saveValues(&last); err != nil {
				g.log.Warn("last values: snapshot", "err", err)
			}
		}
	}
}

// writeFileAtomic replaces file name with b durably: a temporary file
// beside it, fsync, rename, fsync of the directory. A crash leaves the old
// file or the new one, never a part.
func writeFileAtomic(name string, b []byte) error {
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(name))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
