package quarantine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/internal/cfgcheck/cfgchecktest"
	"github.com/m2mbearer/m2mbearer/modem"
)

func entry(i int) modem.Quarantined {
	return modem.Quarantined{
		Time: time.Unix(1700000000, int64(i)).UTC(), Modem: "+491710000001", Storage: "SM", Index: i,
		Lines: []string{"+CMGR: 0,,22", "ZZ-not-hex"}, Reason: "modem: bad PDU: encoding/hex: invalid byte",
	}
}

func TestPutListDeleteReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	s, err := Open(path, Options{Max: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var ids []uint64
	for i := 0; i < 3; i++ {
		id, err := s.Put(ctx, entry(i))
		if err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
		ids = append(ids, id)
	}
	if _, err := s.Put(ctx, entry(9)); !errors.Is(err, modem.ErrQuarantineFull) || !modem.Retryable(err) {
		t.Fatalf("Put into a full store: %v", err)
	}
	if st := s.Stats(); st.Entries != 3 || st.Put != 3 || st.Rejected != 1 || st.Max != 3 {
		t.Fatalf("stats %+v", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{Max: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.List(0, 0)
	if err != nil || len(got) != 3 {
		t.Fatalf("List after reopen: %d, %v", len(got), err)
	}
	for i, q := range got {
		want := entry(i)
		want.ID = ids[i]
		if !reflect.DeepEqual(q, want) {
			t.Fatalf("entry %d = %+v, want %+v", i, q, want)
		}
	}
	if page, _ := s.List(ids[0], 1); len(page) != 1 || page[0].ID != ids[1] {
		t.Fatalf("page after %d: %+v", ids[0], page)
	}
	if ok, err := s.Delete(ids[1]); !ok || err != nil {
		t.Fatalf("Delete: %v %v", ok, err)
	}
	if ok, _ := s.Delete(ids[1]); ok {
		t.Fatal("deleted twice")
	}
	if _, err := s.Put(ctx, entry(5)); err != nil {
		t.Fatalf("Put after Delete made room: %v", err)
	}
	if st := s.Stats(); st.Entries != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestConcurrentPutsBounded(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "q.db"), Options{Max: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	okN := 0
	for i := 0; i < 25; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, err := s.Put(context.Background(), entry(i)); err == nil {
				mu.Lock()
				okN++
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	all, _ := s.List(0, 0)
	if okN != 10 || len(all) != 10 {
		t.Fatalf("%d Puts succeeded, %d stored; want 10", okN, len(all))
	}
}

func TestDecodeNeverPanics(t *testing.T) {
	good := encode(entry(1))
	for n := 0; n < len(good); n++ {
		if _, err := decode(good[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	if _, err := decode(append(good, 0)); !errors.Is(err, ErrCorrupt) {
		t.Fatal("trailing byte accepted")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encode(entry(1)))
	f.Add([]byte{version})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := decode(b)
		if err == nil {
			if again, err := decode(encode(q)); err != nil || !reflect.DeepEqual(again, q) {
				t.Fatalf("round trip: %+v, %v", again, err)
			}
		}
	})
}

// TestOpenRefuses: a negative Max fails Open with ErrInvalidOption, before
// the file is made.
func TestOpenRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	cfgchecktest.Refuses(t, ErrInvalidOption, []cfgchecktest.Case{
		{Name: "negative Max", Field: "Max -1", Make: func() error { _, err := Open(path, Options{Max: -1}); return err }},
	})
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("Open made %s before refusing: %v", path, err)
	}
}
