package state

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"pgregory.net/rapid"
)

// makeDB writes a bbolt file that has what the daemon's files have and
// more: nested buckets, inline buckets, branch pages (many keys), overflow
// pages (large values) and free pages (deleted keys).
func makeDB(t testing.TB, path string, keys int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("regs"))
		if err != nil {
			return err
		}
		for i := 0; i < keys; i++ {
			if err := b.Put(fmt.Appendf(nil, "light-%06d", i), bytes.Repeat([]byte{byte(i)}, 100)); err != nil {
				return err
			}
		}
		big, _ := tx.CreateBucketIfNotExists([]byte("big"))
		if err := big.Put([]byte("image"), bytes.Repeat([]byte("fw"), 20000)); err != nil {
			return err
		}
		outer, _ := tx.CreateBucketIfNotExists([]byte("outer"))
		inner, _ := outer.CreateBucketIfNotExists([]byte("inline")) // small: stays inline
		return inner.Put([]byte("k"), []byte("v"))
	})
	if err != nil {
		t.Fatal(err)
	}
	// Deletes leave free pages.
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("regs"))
		for i := 0; i < keys; i += 3 {
			if err := b.Delete(fmt.Appendf(nil, "light-%06d", i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// boltCheck runs bbolt's own check (the reference) on a file.
func boltCheck(path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		var errs []error
		for e := range tx.Check() {
			errs = append(errs, e)
		}
		return errors.Join(errs...)
	})
}

func TestCheckFileGood(t *testing.T) {
	for _, n := range []int{0, 1, 50, 5000} {
		t.Run(fmt.Sprint(n, " keys"), func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "x.db")
			makeDB(t, p, n)
			if err := boltCheck(p); err != nil {
				t.Fatalf("bbolt: %v", err)
			}
			if err := CheckFile(p); err != nil {
				t.Fatalf("CheckFile on a good file: %v", err)
			}
		})
	}
}

// TestCheckFileBad: truncations, garbage and flipped bytes give errors
// (ErrTruncated or ErrDamaged), never a panic.
func TestCheckFileBad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	makeDB(t, good, 5000)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	ps := 4096
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"half", data[:len(data)/2], ErrTruncated},
		{"one page", data[:ps], ErrTruncated},
		{"100 bytes", data[:100], ErrTruncated},
		{"last page gone", data[:len(data)-ps], nil}, // bbolt pre-allocates: may or may not be in use
		{"not bbolt", bytes.Repeat([]byte("not a database "), 2000), ErrDamaged},
		{"zeroed metas", append(make([]byte, 2*ps), data[2*ps:]...), ErrDamaged},
		{"zeroed third page on", append(clone(data[:3*ps]), make([]byte, len(data)-3*ps)...), ErrDamaged},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".db")
			os.WriteFile(p, c.data, 0o600)
			err := CheckFile(p)
			if c.want == nil {
				if err == nil {
					if berr := boltCheck(p); berr != nil {
						t.Fatalf("CheckFile passed a file bbolt finds damaged: %v", berr)
					}
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
		})
	}
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// TestCheckAgreesWithBbolt damages random bytes of a good file: whatever
// CheckFile passes, bbolt opens and checks without a problem (so a file
// that passed is safe to hand to bbolt). bbolt runs in one child process
// for all of them, since on a damaged file it may fault.
func TestCheckAgreesWithBbolt(t *testing.T) {
	if list := os.Getenv("STATE_BBOLT_CHILD"); list != "" {
		for _, p := range strings.Split(list, "\n") {
			fmt.Println("checking", p) // names the file if bbolt faults
			if err := boltCheck(p); err != nil {
				fmt.Printf("BBOLT %s: %v\n", p, err)
				os.Exit(3)
			}
		}
		os.Exit(0)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	makeDB(t, good, 3000)
	data, _ := os.ReadFile(good)
	var passed []string
	refused := 0
	rapid.Check(t, func(rt *rapid.T) {
		b := clone(data)
		n := rapid.IntRange(1, 8).Draw(rt, "flips")
		for i := 0; i < n; i++ {
			at := rapid.IntRange(0, len(b)-1).Draw(rt, "at")
			b[at] ^= byte(rapid.IntRange(1, 255).Draw(rt, "xor"))
		}
		p := filepath.Join(dir, fmt.Sprintf("mut-%d.db", len(passed)+refused))
		os.WriteFile(p, b, 0o600)
		if err := CheckFile(p); err != nil {
			if !errors.Is(err, ErrDamaged) && !errors.Is(err, ErrTruncated) {
				rt.Fatalf("error %v is neither damaged nor truncated", err)
			}
			refused++
			return
		}
		passed = append(passed, p)
	})
	if len(passed) > 0 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCheckAgreesWithBbolt$")
		cmd.Env = append(os.Environ(), "STATE_BBOLT_CHILD="+strings.Join(passed, "\n"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("CheckFile passed a file bbolt crashes on or refuses: %v\n%s", err, out)
		}
	}
	t.Logf("mutated files: %d refused by CheckFile, %d passed (bbolt agreed on each)", refused, len(passed))
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.SetAPI("http://127.0.0.1:1234"); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, LockName))
	_, err = Acquire(dir)
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) || le.Owner.API != "http://127.0.0.1:1234" || le.Owner.PID != os.Getpid() {
		t.Fatalf("second Acquire: %v", err)
	}
	if !strings.Contains(err.Error(), "in use by another smsgw (pid ") {
		t.Fatalf("message: %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, LockName))
	if !bytes.Equal(before, after) {
		t.Fatalf("the refused Acquire changed the lock file: %q → %q", before, after)
	}
	l.Release()
	l2, err := Acquire(dir)
	if err != nil {
		t.Fatalf("after Release: %v", err)
	}
	l2.Release()
}

// TestReport covers the fresh/initialised distinction.
func TestReport(t *testing.T) {
	type setup func(t *testing.T, dir string)
	write := func(name string, data []byte) setup {
		return func(t *testing.T, dir string) {
			os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o700)
			os.WriteFile(filepath.Join(dir, name), data, 0o600)
		}
	}
	good := func(name string) setup {
		return func(t *testing.T, dir string) {
			os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o700)
			makeDB(t, filepath.Join(dir, name), 10)
		}
	}
	mark := func(t *testing.T, dir string) {
		if err := MarkInitialised(dir); err != nil {
			t.Fatal(err)
		}
	}
	rm := func(name string) setup {
		return func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, name)) }
	}
	cases := []struct {
		name  string
		steps []setup
		fresh bool
		bad   string // file expected to fail, "" none
		want  error
	}{
		{"empty dir", nil, true, "", nil},
		{"fresh with empty files", []setup{write("queue.db", nil), write("registrations.db", nil)}, true, "", nil},
		{"good files, no marker", []setup{good("queue.db"), good("registrations.db")}, false, "", nil},
		{"zero-length beside good, no marker", []setup{good("registrations.db"), write("queue.db", nil)}, false, "queue.db", ErrEmpty},
		{"zero-length after marker", []setup{good("queue.db"), good("registrations.db"), mark, write("queue.db", nil)}, false, "queue.db", ErrEmpty},
		{"missing after marker", []setup{good("queue.db"), good("sms/outbox.db"), mark, rm("sms/outbox.db")}, false, "sms/outbox.db", ErrMissing},
		{"absent and never had it", []setup{good("queue.db"), mark}, false, "", nil},
		{"truncated", []setup{good("campaigns.db"), func(t *testing.T, dir string) {
			os.Truncate(filepath.Join(dir, "campaigns.db"), 4096)
		}}, false, "campaigns.db", ErrTruncated},
		{"DTLS session cache truncated", []setup{good("queue.db"), good("dtls-sessions.db"), func(t *testing.T, dir string) {
			os.Truncate(filepath.Join(dir, "dtls-sessions.db"), 4096)
		}}, false, "dtls-sessions.db", ErrTruncated},
		{"route map missing after marker", []setup{good("queue.db"), good("sms/route.db"), mark, rm("sms/route.db")}, false, "sms/route.db", ErrMissing},
		{"SMPP account state empty after marker", []setup{good("sms/smpp-account-op1.db"), mark, write("sms/smpp-account-op1.db", nil)}, false, "sms/smpp-account-op1.db", ErrEmpty},
		{"unknown db file damaged", []setup{good("queue.db"), write("sms/quarantine.db", bytes.Repeat([]byte{7}, 9000))}, false, "sms/quarantine.db", ErrDamaged},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, s := range c.steps {
				s(t, dir)
			}
			files, fresh, err := Report(dir)
			if err != nil {
				t.Fatal(err)
			}
			if fresh != c.fresh {
				t.Errorf("fresh %v, want %v", fresh, c.fresh)
			}
			perr := Preflight(dir)
			for _, f := range files {
				if f.Name == c.bad {
					var fe *FileError
					if !errors.As(f.Err, &fe) || !errors.Is(f.Err, c.want) || fe.Path() != filepath.Join(dir, c.bad) {
						t.Fatalf("%s: %v, want %v", f.Name, f.Err, c.want)
					}
					msg := f.Err.Error()
					if !strings.Contains(msg, filepath.Join(dir, c.bad)) || !strings.Contains(msg, "smsgw state reset -data "+dir+" "+c.bad) || strings.Contains(msg, "\n") {
						t.Fatalf("message does not name the file and the fix on one line: %s", msg)
					}
					if perr == nil {
						t.Fatal("Preflight passed")
					}
				} else if f.Err != nil {
					t.Fatalf("%s: unexpected %v", f.Name, f.Err)
				}
			}
			if c.bad == "" && perr != nil {
				t.Fatalf("Preflight: %v", perr)
			}
		})
	}
}

func TestResetAndBackup(t *testing.T) {
	dir := t.TempDir()
	makeDB(t, filepath.Join(dir, "queue.db"), 100)
	makeDB(t, filepath.Join(dir, "registrations.db"), 100)
	if err := MarkInitialised(dir); err != nil {
		t.Fatal(err)
	}
	// Backup: a checked copy.
	bk := t.TempDir()
	n, err := WriteCopy(filepath.Join(bk, "queue.db"), func(w io.Writer) (int64, error) {
		return SnapshotFile(filepath.Join(dir, "queue.db"), w)
	})
	if err != nil || n == 0 {
		t.Fatalf("backup: %d %v", n, err)
	}
	if err := CheckFile(filepath.Join(bk, "queue.db")); err != nil {
		t.Fatal(err)
	}
	// A damaged file is not copied.
	os.Truncate(filepath.Join(dir, "registrations.db"), 5000)
	if _, err := WriteCopy(filepath.Join(bk, "registrations.db"), func(w io.Writer) (int64, error) {
		return SnapshotFile(filepath.Join(dir, "registrations.db"), w)
	}); !errors.Is(err, ErrTruncated) {
		t.Fatalf("backup of a truncated file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(bk, "registrations.db")); err == nil {
		t.Fatal("a damaged file was copied")
	}
	// Reset sets it aside; the next Preflight accepts its absence.
	if err := Preflight(dir); !errors.Is(err, ErrTruncated) {
		t.Fatalf("preflight: %v", err)
	}
	if _, err := Reset(dir, "../etc/passwd"); err == nil {
		t.Fatal("reset outside the data dir")
	}
	aside, err := Reset(dir, "registrations.db")
	if err != nil || !strings.Contains(aside, "registrations.db.damaged-") {
		t.Fatalf("reset: %q %v", aside, err)
	}
	if _, err := os.Stat(aside); err != nil {
		t.Fatal(err)
	}
	if err := Preflight(dir); err != nil {
		t.Fatalf("after reset: %v", err)
	}
}
