package gateway

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/state"
)

// openStateDB opens the bbolt file name (relative to the data dir) and
// runs load on it; the file was checked by state.Preflight, and a panic
// in bbolt or in load (a damaged page the check missed) becomes an error
// naming the file instead of ending the daemon. The gateway keeps the
// handle for snapshots and closes it at Shutdown.
func (g *Gateway) openStateDB(name string, load func(*bolt.DB) error) (db *bolt.DB, err error) {
	path := filepath.Join(g.cfg.DataDir, name)
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				db.Close()
			}
			db, err = nil, &state.FileError{Dir: g.cfg.DataDir, Name: name, Err: fmt.Errorf("%w: bbolt: %v", state.ErrDamaged, r)}
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	if load != nil {
		if err := load(db); err != nil {
			db.Close()
			return nil, fmt.Errorf("state file %s: %w", path, err)
		}
	}
	g.dbs[name] = db
	return db, nil
}

// guardOpen runs an opener that opens state files itself (the SMS bearer)
// with the same panic guard.
func guardOpen(dir, what string, open func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &state.FileError{Dir: dir, Name: what, Err: fmt.Errorf("%w: bbolt: %v", state.ErrDamaged, r)}
		}
	}()
	return open()
}

// closeStateDBs closes the files openStateDB opened.
func (g *Gateway) closeStateDBs() error {
	var errs []error
	for name, db := range g.dbs {
		if err := db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		delete(g.dbs, name)
	}
	return errors.Join(errs...)
}

// snapshotters returns, by file name, a consistent snapshot of each state
// file the daemon has open.
func (g *Gateway) snapshotters() map[string]func(io.Writer) (int64, error) {
	out := map[string]func(io.Writer) (int64, error){}
	for name, db := range g.dbs {
		out[name] = func(w io.Writer) (int64, error) { return state.Snapshot(db, w) }
	}
	if g.quar != nil {
		out["quarantine.db"] = g.quar.WriteTo
	}
	if g.dtlsSess != nil {
		out[dtlsSessionsFileName] = g.dtlsSess.WriteTo
	}
	if g.mux != nil && g.mux.KeepsState() {
		out[routeStateFile] = g.mux.WriteStateTo
	}
	for _, sl := range g.smppLinks {
		if sl.ownState != nil {
			out[sl.stateFile] = sl.ownState.WriteTo
		}
	}
	if g.smsB != nil {
		for _, f := range g.smsB.StateFiles() {
			out["sms/"+f] = func(w io.Writer) (int64, error) { return g.smsB.SnapshotState(f, w) }
		}
	}
	return out
}

// StateFileJSON is one state file in GET /api/v1/state.
type StateFileJSON struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
	// Snapshot is the path of its consistent copy, for backups.
	Snapshot string `json:"snapshot"`
}

func (g *Gateway) stateRoutes(handle func(string, http.HandlerFunc, bool)) {
	handle("GET /api/v1/state", g.listState, true)
	handle("GET /api/v1/state/{name...}", g.snapshotState, true)
}

// listState lists the state files a backup takes.
func (g *Gateway) listState(w http.ResponseWriter, r *http.Request) {
	snaps := g.snapshotters()
	names := make([]string, 0, len(snaps))
	for n := range snaps {
		names = append(names, n)
	}
	slices.Sort(names)
	files := make([]StateFileJSON, 0, len(names))
	for _, n := range names {
		f := StateFileJSON{Name: n, Snapshot: "/api/v1/state/" + n}
		if st, err := os.Stat(filepath.Join(g.cfg.DataDir, n)); err == nil {
			f.Size = st.Size()
		}
		files = append(files, f)
	}
	writeJSON(w, 200, map[string]any{"data_dir": g.cfg.DataDir, "pid": os.Getpid(), "files": files})
}

// snapshotState streams a consistent copy of one state file.
func (g *Gateway) snapshotState(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	snap, ok := g.snapshotters()[name]
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no state file %q; list them with GET /api/v1/state", name))
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="`+strings.ReplaceAll(name, "/", "-")+`"`)
	w.Header().Set("Trailer", SnapshotTrailer)
	if _, err := snap(w); err != nil {
		// The status is out: the trailer says the copy is incomplete.
		g.log.Error("state snapshot", "file", name, "err", err)
		w.Header().Set(SnapshotTrailer, "error: "+err.Error())
		return
	}
	w.Header().Set(SnapshotTrailer, "ok")
}

// SnapshotTrailer is the HTTP trailer of a state snapshot: "ok" when the
// whole copy was sent, else the error.
const SnapshotTrailer = "X-Snapshot-Status"
