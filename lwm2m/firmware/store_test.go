package firmware_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
)

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestStorePut(t *testing.T) {
	data := bytes.Repeat([]byte("firmware"), 1000)
	for _, tc := range []struct {
		name string
		u    firmware.Upload
		body []byte
		want error
	}{
		{"ok", firmware.Upload{Version: "1", Size: int64(len(data)), SHA256: sum(data)}, data, nil},
		{"short", firmware.Upload{Version: "1", Size: int64(len(data)) + 1, SHA256: sum(data)}, data, firmware.ErrSize},
		{"long", firmware.Upload{Version: "1", Size: int64(len(data)) - 1, SHA256: sum(data)}, data, firmware.ErrSize},
		{"checksum", firmware.Upload{Version: "1", Size: int64(len(data)), SHA256: sum(data[1:])}, data, firmware.ErrChecksum},
		{"bad hex", firmware.Upload{Version: "1", Size: 8, SHA256: "xyz"}, data, firmware.ErrInvalid},
		{"no version", firmware.Upload{Size: int64(len(data)), SHA256: sum(data)}, data, firmware.ErrInvalid},
		{"zero size", firmware.Upload{Version: "1", SHA256: sum(nil)}, nil, firmware.ErrInvalid},
		{"too big", firmware.Upload{Version: "1", Size: 1 << 20, SHA256: sum(data)}, data, firmware.ErrTooLarge},
		{"unknown size", firmware.Upload{Version: "1", Size: -1, SHA256: sum(data)}, data, nil},
		{"unknown size, empty", firmware.Upload{Version: "1", Size: -1, SHA256: sum(nil)}, nil, firmware.ErrSize},
		{"unknown size, checksum", firmware.Upload{Version: "1", Size: -1, SHA256: sum(data[1:])}, data, firmware.ErrChecksum},
		{"unknown size, too big", firmware.Upload{Version: "1", Size: -1, SHA256: sum(data)}, bytes.Repeat(data, 13), firmware.ErrTooLarge},
		{"size -2", firmware.Upload{Version: "1", Size: -2, SHA256: sum(data)}, data, firmware.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := firmware.OpenStore(dir, firmware.WithMaxBytes(100000))
			if err != nil {
				t.Fatal(err)
			}
			info, err := s.Put(context.Background(), tc.u, bytes.NewReader(tc.body))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			n, total := s.Usage()
			if tc.want != nil {
				if n != 0 || total != 0 {
					t.Fatalf("usage %d %d after failure", n, total)
				}
				ents, _ := os.ReadDir(dir)
				if len(ents) != 0 {
					t.Fatalf("left %v", ents)
				}
				return
			}
			if info.ID != sum(data)[:16] || info.Size != int64(len(data)) || n != 1 || total != info.Size {
				t.Fatalf("%+v %d %d", info, n, total)
			}
		})
	}
}

// TestStorePutStreams: an upload of unknown size is bounded while it
// streams (per image and by the store's free space), its partial file is
// removed on every failure, and memory does not grow with the image.
func TestStorePutStreams(t *testing.T) {
	ctx := context.Background()
	t.Run("store full while streaming", func(t *testing.T) {
		dir := t.TempDir()
		s, _ := firmware.OpenStore(dir, firmware.WithMaxBytes(100000), firmware.WithMaxImageBytes(80000))
		if _, err := s.PutBytes(ctx, "a", "1", bytes.Repeat([]byte("a"), 60000)); err != nil {
			t.Fatal(err)
		}
		b := bytes.Repeat([]byte("b"), 50000) // fits the image bound, not the space left
		_, err := s.Put(ctx, firmware.Upload{Version: "2", Size: -1, SHA256: sum(b)}, bytes.NewReader(b))
		if !errors.Is(err, firmware.ErrStoreFull) {
			t.Fatalf("err %v", err)
		}
		if n, total := s.Usage(); n != 1 || total != 60000 {
			t.Fatalf("usage %d %d", n, total)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 2 {
			t.Fatalf("left %v", ents)
		}
	})
	t.Run("reader fails mid-way", func(t *testing.T) {
		dir := t.TempDir()
		s, _ := firmware.OpenStore(dir)
		r := io.MultiReader(bytes.NewReader(make([]byte, 100000)), errReader{})
		if _, err := s.Put(ctx, firmware.Upload{Version: "1", Size: -1, SHA256: sum(nil)}, r); err == nil || !strings.Contains(err.Error(), "peer went away") {
			t.Fatalf("err %v", err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatalf("left %v", ents)
		}
	})
	t.Run("memory independent of size", func(t *testing.T) {
		const size = 64 << 20
		s, _ := firmware.OpenStore(t.TempDir())
		h := sha256.New()
		io.Copy(h, io.LimitReader(zeros{}, size))
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		info, err := s.Put(ctx, firmware.Upload{Version: "1", Size: -1, SHA256: hex.EncodeToString(h.Sum(nil))}, io.LimitReader(zeros{}, size))
		runtime.ReadMemStats(&after)
		if err != nil || info.Size != size {
			t.Fatalf("%+v %v", info, err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
			t.Fatalf("storing %d bytes allocated %d bytes", size, alloc)
		}
	})
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("peer went away") }

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestStoreReopenDeleteBounds(t *testing.T) {
	dir := t.TempDir()
	var lastImages int
	s, err := firmware.OpenStore(dir, firmware.WithMaxImages(2), firmware.WithStoreMetrics(func(n int, _ int64) { lastImages = n }))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, err := s.PutBytes(ctx, "a", "1.0", []byte("aaaa"))
	if err != nil {
		t.Fatal(err)
	}
	if again, err := s.PutBytes(ctx, "a", "1.0", []byte("aaaa")); err != nil || again.ID != a.ID {
		t.Fatal("same bytes not deduplicated", err)
	}
	if _, err := s.PutBytes(ctx, "a", "1.1", []byte("aaaa")); !errors.Is(err, firmware.ErrInvalid) {
		t.Fatal("same bytes as another version:", err)
	}
	b, err := s.PutBytes(ctx, "b", "2.0", []byte("bbbbbb"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutBytes(ctx, "c", "3.0", []byte("c")); !errors.Is(err, firmware.ErrStoreFull) {
		t.Fatal(err)
	}
	// A crash leftover is cleaned on open.
	os.WriteFile(filepath.Join(dir, "x-1.tmp"), []byte("junk"), 0o600)
	s2, err := firmware.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if l := s2.List(); len(l) != 2 || l[0].ID != a.ID || l[1].ID != b.ID {
		t.Fatalf("%+v", l)
	}
	if _, err := os.Stat(filepath.Join(dir, "x-1.tmp")); !os.IsNotExist(err) {
		t.Fatal("tmp left")
	}
	img, err := s2.Open(b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Delete(b.ID); err != nil {
		t.Fatal(err)
	}
	// An open image stays readable after Delete.
	got, _ := io.ReadAll(img.SectionReader)
	img.Close()
	if string(got) != "bbbbbb" {
		t.Fatal(string(got))
	}
	if _, err := s2.Get(b.ID); !errors.Is(err, firmware.ErrNotFound) {
		t.Fatal(err)
	}
	if err := s2.Delete(b.ID); !errors.Is(err, firmware.ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := s2.Open("nope"); !errors.Is(err, firmware.ErrNotFound) {
		t.Fatal(err)
	}
	_ = lastImages
	if lastImages != 2 {
		t.Fatal("metrics hook", lastImages)
	}
}

// Property: whatever bytes are put, Open reads them back and the checksum
// of the read bytes is the image's.
func TestStoreRoundTripProperty(t *testing.T) {
	s, err := firmware.OpenStore(t.TempDir(), firmware.WithMaxImages(100000))
	if err != nil {
		t.Fatal(err)
	}
	rapid.Check(t, func(rt *rapid.T) {
		data := rapid.SliceOfN(rapid.Byte(), 1, 5000).Draw(rt, "data")
		info, err := s.PutBytes(context.Background(), "p", "v", data)
		if err != nil {
			rt.Fatal(err)
		}
		img, err := s.Open(info.ID)
		if err != nil {
			rt.Fatal(err)
		}
		defer img.Close()
		off := rapid.Int64Range(0, int64(len(data))-1).Draw(rt, "off")
		buf := make([]byte, len(data)-int(off))
		if _, err := img.ReadAt(buf, off); err != nil && err != io.EOF {
			rt.Fatal(err)
		}
		if !bytes.Equal(buf, data[off:]) || info.SHA256 != sum(data) {
			rt.Fatal("mismatch")
		}
	})
}

func TestHTTPHandlerRange(t *testing.T) {
	s, err := firmware.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := []byte(strings.Repeat("0123456789", 100))
	info, err := s.PutBytes(context.Background(), "x", "1", data)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(firmware.HTTPHandler(s, "/fw/"))
	defer ts.Close()
	for _, tc := range []struct {
		method, path, rng string
		code              int
		body              string
	}{
		{"GET", "/fw/" + info.ID, "", 200, string(data)},
		{"GET", "/fw/" + info.ID, "bytes=10-19", 206, "0123456789"},
		{"GET", "/fw/" + info.ID, "bytes=995-", 206, "56789"},
		{"GET", "/fw/" + info.ID, "bytes=2000-", 416, ""},
		{"GET", "/fw/nope", "", 404, ""},
		{"GET", "/fw/", "", 404, ""},
		{"POST", "/fw/" + info.ID, "", 405, ""},
	} {
		t.Run(tc.method+" "+tc.path+" "+tc.rng, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, ts.URL+tc.path, nil)
			if tc.rng != "" {
				req.Header.Set("Range", tc.rng)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code || (tc.body != "" && string(body) != tc.body) {
				t.Fatalf("%s %s %s: %d %q", tc.method, tc.path, tc.rng, resp.StatusCode, body)
			}
			if tc.code == 200 && resp.Header.Get("ETag") != `"`+info.SHA256+`"` {
				t.Fatal("etag", resp.Header.Get("ETag"))
			}
		})
	}
}
