package state

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockName is the lock file of a data dir.
const LockName = "smsgw.lock"

// ErrLocked is wrapped by the error of Acquire when another process holds
// the data dir.
var ErrLocked = errors.New("in use by another smsgw")

// Owner is what the process holding a data dir wrote into its lock file.
type Owner struct {
	PID int
	API string // the API's base URL ("http://127.0.0.1:8080"), once listening
}

// Lock is an exclusive flock(2) on <dir>/smsgw.lock, held for the life of
// a daemon (or of an offline state command). The kernel drops it when the
// process ends, however it ends, so a crash never leaves a stale lock.
type Lock struct {
	f   *os.File
	dir string
}

// Acquire takes the lock of dir at once or fails: with an error wrapping
// ErrLocked (it names the holder's pid and API when known) if another
// process has it. It creates the lock file if needed and changes nothing
// else; the lock file's content is written only once the lock is held.
func Acquire(dir string) (*Lock, error) {
	path := filepath.Join(dir, LockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			o, _ := ReadOwner(dir)
			return nil, &LockedError{Dir: dir, Owner: o}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	l := &Lock{f: f, dir: dir}
	if err := l.SetAPI(""); err != nil {
		l.Release()
		return nil, err
	}
	return l, nil
}

// LockedError says who holds a data dir.
type LockedError struct {
	Dir   string
	Owner Owner
}

func (e *LockedError) Error() string {
	var who []string
	if e.Owner.PID > 0 {
		who = append(who, "pid "+strconv.Itoa(e.Owner.PID))
	}
	if e.Owner.API != "" {
		who = append(who, "API "+e.Owner.API)
	}
	s := e.Dir + " is " + ErrLocked.Error()
	if len(who) > 0 {
		s += " (" + strings.Join(who, ", ") + ")"
	}
	return s
}

// Unwrap makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Unwrap() error { return ErrLocked }

// SetAPI records the holder's pid and API URL in the lock file, for the
// offline commands and for a second instance's error message.
func (l *Lock) SetAPI(api string) error {
	s := "pid " + strconv.Itoa(os.Getpid()) + "\n"
	if api != "" {
		s += "api " + api + "\n"
	}
	if err := l.f.Truncate(0); err != nil {
		return fmt.Errorf("lock file: %w", err)
	}
	if _, err := l.f.WriteAt([]byte(s), 0); err != nil {
		return fmt.Errorf("lock file: %w", err)
	}
	return nil
}

// Release drops the lock. The file stays (removing it would let a third
// process lock a new file while a second still waits on the old one).
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the last descriptor drops the flock
	l.f = nil
	return err
}

// ReadOwner reads the pid and API URL from dir's lock file. It does not
// say whether the lock is held; Acquire does.
func ReadOwner(dir string) (Owner, error) {
	f, err := os.Open(filepath.Join(dir, LockName))
	if err != nil {
		return Owner{}, err
	}
	defer f.Close()
	var o Owner
	sc := bufio.NewScanner(f)
	for n := 0; sc.Scan() && n < 8; n++ {
		k, v, _ := strings.Cut(sc.Text(), " ")
		switch k {
		case "pid":
			o.PID, _ = strconv.Atoi(v)
		case "api":
			o.API = v
		}
	}
	return o, sc.Err()
}
