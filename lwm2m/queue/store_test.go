package queue

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestStores(t *testing.T) {
	stores := map[string]func(t *testing.T) (Store, func() Store){
		"mem": func(t *testing.T) (Store, func() Store) {
			s := NewMemStore()
			return s, func() Store { return s }
		},
		"bolt": func(t *testing.T) (Store, func() Store) {
			p := filepath.Join(t.TempDir(), "q.db")
			s, err := OpenBoltStore(p, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			return s, func() Store {
				s.Close()
				s2, err := OpenBoltStore(p, time.Second)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s2.Close() })
				return s2
			}
		},
	}
	for name, mk := range stores {
		t.Run(name, func(t *testing.T) {
			s, reopen := mk(t)
			var ids []uint64
			for i := range 5 {
				rec := &Record{Request: Request{Endpoint: "lamp", Kind: KindRead, Paths: []string{"/3/0"}, ContentFormat: int32(i)}, State: StateQueued}
				id, err := s.Add(rec)
				if err != nil {
					t.Fatal(err)
				}
				if rec.ID != id || rec.Attempt.ID != id || (len(ids) > 0 && id <= ids[len(ids)-1]) {
					t.Fatalf("id %d after %v", id, ids)
				}
				ids = append(ids, id)
			}
			rec, err := s.Get(ids[2])
			if err != nil || rec.ContentFormat != 2 {
				t.Fatalf("get: %v %+v", err, rec)
			}
			rec.State = StateDone
			rec.Result = &Result{Code: 0x45, Payload: []byte("ok")}
			if err := s.Put(rec); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(ids[0], 999); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Get(ids[0]); !errors.Is(err, ErrNotFound) {
				t.Fatalf("deleted: %v", err)
			}
			s = reopen()
			var walked []uint64
			if err := s.ForEach(func(r *Record) error { walked = append(walked, r.ID); return nil }); err != nil {
				t.Fatal(err)
			}
			if !equalIDs(walked, ids[1:]) {
				t.Fatalf("walk %v", walked)
			}
			rec, _ = s.Get(ids[2])
			if rec.State != StateDone || string(rec.Result.Payload) != "ok" {
				t.Fatalf("after reopen %+v", rec)
			}
			// Ids never repeat, also after deleting the newest and reopening.
			s.Delete(ids[4])
			id, err := s.Add(&Record{Request: Request{Endpoint: "lamp", Kind: KindRead}, State: StateQueued})
			if err != nil || id <= ids[4] {
				t.Fatalf("id %d after %d: %v", id, ids[4], err)
			}
			stop := errors.New("stop")
			if err := s.ForEach(func(*Record) error { return stop }); !errors.Is(err, stop) {
				t.Fatalf("ForEach error: %v", err)
			}
		})
	}
}

func TestBoltStoreClosed(t *testing.T) {
	s, err := OpenBoltStore(filepath.Join(t.TempDir(), "q.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.Add(&Record{Request: Request{Endpoint: "x", Kind: KindRead}, State: StateQueued}); !errors.Is(err, ErrClosed) {
		t.Fatalf("add after close: %v", err)
	}
}
