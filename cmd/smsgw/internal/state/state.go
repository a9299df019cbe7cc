// Package state guards the smsgw data dir: an exclusive lock (one daemon
// per data dir), a check of every bbolt state file before the daemon opens
// it, the marker that tells a fresh data dir from one whose files were
// lost, and consistent snapshots for backups.
//
// # Usage
//
//	lock, err := state.Acquire(dataDir) // a second daemon gets ErrLocked
//	if err != nil {
//		return err
//	}
//	defer lock.Release()
//	if err := state.Preflight(dataDir); err != nil { // every state file checked
//		return err // one line: path, problem, what to do
//	}
//
// # Design
//
// bbolt trusts its file: a damaged page makes it panic or fault, and an
// empty file is silently initialised as a new, empty database. So every
// state file is checked here first, with offsets checked against the file
// (checkBolt), and a file that is missing, empty, truncated or damaged is
// reported with its path and what to do, instead of being opened.
//
// What is a library's and what is ours: the lock is flock(2); snapshots
// are bbolt's Tx.WriteTo (a consistent copy while writers go on); the
// file check, the marker and the operator commands' logic are ours.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Files are the bbolt state files smsgw keeps, relative to the data dir.
// Any other *.db file at the top of the data dir or in sms/ is checked as
// well: the SMPP links' and accounts' sms/smpp-NAME.db, whose names come
// from the configuration.
var Files = []string{"registrations.db", "queue.db", "campaigns.db", "oscore.db", "quarantine.db", "dtls-sessions.db",
	"sms/outbox.db", "sms/sms-state.db", "sms/route.db"}

// MarkerName is the file, written at the end of the first successful start,
// that lists the state files of an initialised data dir. Without it a data
// dir is fresh (empty files are fine) unless some state file has content.
const MarkerName = "state-files.json"

type marker struct {
	Format  int       `json:"format"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	Files   []string  `json:"files"`
}

// FileError is a state file that cannot be used as it is.
type FileError struct {
	Dir, Name string
	Err       error // ErrMissing, ErrEmpty, or wraps ErrTruncated or ErrDamaged
}

// Path is the file's path.
func (e *FileError) Path() string { return filepath.Join(e.Dir, e.Name) }

func (e *FileError) Error() string {
	what := e.Err.Error()
	switch {
	case errors.Is(e.Err, ErrMissing):
		what = "is missing (the data dir had it: " + MarkerName + ")"
	case errors.Is(e.Err, ErrEmpty):
		what = "is empty (0 bytes) in a data dir that had state (" + MarkerName + ")"
	case errors.Is(e.Err, ErrTruncated), errors.Is(e.Err, ErrDamaged):
		what = "is " + what
	default:
		return fmt.Sprintf("state file %s cannot be read: %v; check its owner and mode", e.Path(), e.Err)
	}
	return fmt.Sprintf("state file %s %s; smsgw will not replace it by an empty one: restore it from a backup (smsgw state backup), "+
		"or set it aside and start without what it held: smsgw state reset -data %s %s", e.Path(), what, e.Dir, e.Name)
}

// Unwrap returns the problem.
func (e *FileError) Unwrap() error { return e.Err }

// FileStatus is one state file in a check report.
type FileStatus struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
	// Status is ok, absent (never had, created when needed), new (empty in
	// a fresh data dir: initialised at start), missing (had, now gone),
	// empty, truncated, damaged or unreadable.
	Status string `json:"status"`
	Err    error  `json:"-"`
}

// Report checks every state file of dir. The caller holds dir's Lock (or
// knows no daemon writes the files). fresh says whether dir has no state
// yet. The error is for the marker or the directory itself; file problems
// are in the statuses (Err is a *FileError).
func Report(dir string) (files []FileStatus, fresh bool, err error) {
	mk, hasMarker, err := readMarker(dir)
	if err != nil {
		return nil, false, err
	}
	names, err := stateFiles(dir, mk.Files)
	if err != nil {
		return nil, false, err
	}
	sizes := map[string]int64{}
	fresh = !hasMarker
	for _, n := range names {
		st, err := os.Stat(filepath.Join(dir, n))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			sizes[n] = -1
		case err != nil:
			return nil, false, err
		case !st.Mode().IsRegular():
			return nil, false, fmt.Errorf("state file %s is not a regular file", filepath.Join(dir, n))
		default:
			sizes[n] = st.Size()
			if st.Size() > 0 {
				fresh = false
			}
		}
	}
	for _, n := range names {
		fsz := FileStatus{Name: n, Size: sizes[n], Status: "ok"}
		fail := func(e error) {
			fsz.Err = &FileError{Dir: dir, Name: n, Err: e}
			switch {
			case errors.Is(e, ErrMissing):
				fsz.Status = "missing"
			case errors.Is(e, ErrEmpty):
				fsz.Status = "empty"
			case errors.Is(e, ErrTruncated):
				fsz.Status = "truncated"
			case errors.Is(e, ErrDamaged):
				fsz.Status = "damaged"
			default:
				fsz.Status = "unreadable"
			}
		}
		switch {
		case sizes[n] < 0 && hasMarker && slices.Contains(mk.Files, n):
			fail(ErrMissing)
		case sizes[n] < 0:
			fsz.Status, fsz.Size = "absent", 0
		case sizes[n] == 0 && fresh:
			fsz.Status = "new"
		case sizes[n] == 0:
			fail(ErrEmpty)
		default:
			if err := CheckFile(filepath.Join(dir, n)); err != nil {
				fail(err)
			}
		}
		files = append(files, fsz)
	}
	return files, fresh, nil
}

// Preflight runs Report and returns the first problem: a *FileError (one
// line naming the file and what to do), or nil when every state file may
// be opened.
func Preflight(dir string) error {
	files, _, err := Report(dir)
	if err != nil {
		return err
	}
	for _, f := range files {
		if f.Err != nil {
			return f.Err
		}
	}
	return nil
}

// CheckFile checks one bbolt file (see checkBolt); a panic while reading
// it (there should be none: every offset is checked) is an ErrDamaged.
func CheckFile(path string) (err error) {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() == 0 {
		return ErrEmpty
	}
	defer func() {
		if r := recover(); r != nil {
			err = damaged("%v", r)
		}
	}()
	return checkBolt(f, st.Size())
}

// MarkInitialised records the state files present in dir as the data dir's
// files, so that a later start reports any of them missing or empty.
func MarkInitialised(dir string) error {
	mk, _, err := readMarker(dir)
	if err != nil {
		return err
	}
	names, err := stateFiles(dir, nil)
	if err != nil {
		return err
	}
	var present []string
	for _, n := range names {
		if st, err := os.Stat(filepath.Join(dir, n)); err == nil && st.Size() > 0 {
			present = append(present, n)
		}
	}
	now := time.Now().UTC()
	if mk.Created.IsZero() {
		mk.Created = now
	}
	mk.Format, mk.Updated, mk.Files = 1, now, present
	data, _ := json.MarshalIndent(mk, "", "  ")
	return writeFileSync(filepath.Join(dir, MarkerName), append(data, '\n'), 0o600)
}

// Reset sets a state file aside (renamed to NAME.damaged-TIME beside it) and
// drops it from the marker, so that the next start creates it empty. The
// caller holds dir's Lock. It returns the new path of the old file.
func Reset(dir, name string) (string, error) {
	mk, hasMarker, err := readMarker(dir)
	if err != nil {
		return "", err
	}
	names, err := stateFiles(dir, mk.Files)
	if err != nil {
		return "", err
	}
	name = filepath.ToSlash(filepath.Clean(name))
	if !slices.Contains(names, name) {
		return "", fmt.Errorf("%q is not a state file of %s (they are: %s)", name, dir, strings.Join(names, ", "))
	}
	path := filepath.Join(dir, name)
	aside := ""
	if _, err := os.Stat(path); err == nil {
		aside = path + ".damaged-" + time.Now().UTC().Format("20060102T150405Z")
		if err := os.Rename(path, aside); err != nil {
			return "", err
		}
		syncDir(filepath.Dir(path))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if hasMarker {
		mk.Files = slices.DeleteFunc(mk.Files, func(s string) bool { return s == name })
		mk.Updated = time.Now().UTC()
		data, _ := json.MarshalIndent(mk, "", "  ")
		if err := writeFileSync(filepath.Join(dir, MarkerName), append(data, '\n'), 0o600); err != nil {
			return aside, err
		}
	}
	return aside, nil
}

func readMarker(dir string) (marker, bool, error) {
	path := filepath.Join(dir, MarkerName)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return marker{}, false, nil
	}
	if err != nil {
		return marker{}, false, err
	}
	var mk marker
	if err := json.Unmarshal(data, &mk); err != nil || mk.Format != 1 {
		return marker{}, false, fmt.Errorf("%s is damaged (%v); it lists the state files of the data dir: restore it from a backup, or delete it if every state file is known to be good", path, err)
	}
	for _, f := range mk.Files {
		if !localName(f) {
			return marker{}, false, fmt.Errorf("%s lists %q, not a file of the data dir", path, f)
		}
	}
	return mk, true, nil
}

// localName accepts "x.db" and "sub/x.db" and nothing that leaves the dir.
func localName(n string) bool {
	return n != "" && filepath.IsLocal(n) && strings.HasSuffix(n, ".db") && strings.Count(n, "/") <= 1
}

// stateFiles lists the state files of dir: Files, the listed ones, and
// *.db at the top and in sms/.
func stateFiles(dir string, listed []string) ([]string, error) {
	set := map[string]bool{}
	for _, n := range append(slices.Clone(Files), listed...) {
		set[n] = true
	}
	for _, sub := range []string{".", "sms"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if !e.IsDir() && strings.HasSuffix(e.Name(), ".db") {
				set[filepath.ToSlash(filepath.Join(sub, e.Name()))] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

// Snapshot writes a consistent copy of db to w (one read transaction:
// writers go on meanwhile). It is what the daemon serves for backups.
func Snapshot(db *bolt.DB, w io.Writer) (n int64, err error) {
	err = db.View(func(tx *bolt.Tx) error {
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// SnapshotFile writes a consistent copy of the bbolt file at path, which no
// process has open for writing (the caller holds the data dir's Lock). The
// file is checked first; a damaged one is not copied.
func SnapshotFile(path string, w io.Writer) (int64, error) {
	if err := CheckFile(path); err != nil {
		return 0, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	return Snapshot(db, w)
}

// WriteCopy writes what src produces to dst atomically (a temporary file,
// fsync, rename) and checks the copy. It returns the copy's size.
func WriteCopy(dst string, src func(io.Writer) (int64, error)) (int64, error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return 0, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), filepath.Base(dst)+".*.tmp")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	n, err := src(tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, err
	}
	if err := CheckFile(tmp.Name()); err != nil {
		return n, fmt.Errorf("the copy does not check: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return n, err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return n, err
	}
	syncDir(filepath.Dir(dst))
	return n, nil
}

func writeFileSync(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	syncDir(filepath.Dir(path))
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
