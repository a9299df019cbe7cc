package firmware_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
)

// TestStoreFetch: a node whose directory lacks an image the shared catalog
// knows fetches its bytes, keeps them only when size and SHA-256 match the
// catalog, and refuses anything else with ErrNotLocal.
func TestStoreFetch(t *testing.T) {
	dirA := t.TempDir()
	a, err := firmware.OpenStore(dirA)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("image bytes "), 500)
	info, err := a.PutBytes(context.Background(), "sl", "3.0", data)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		fetch firmware.Fetcher
		ok    bool
	}{
		{"the bytes", func(_ context.Context, _ firmware.ImageInfo, w io.Writer) error { _, err := w.Write(data); return err }, true},
		{"other bytes of the same size", func(_ context.Context, _ firmware.ImageInfo, w io.Writer) error {
			_, err := w.Write(bytes.Repeat([]byte("x"), len(data)))
			return err
		}, false},
		{"too many bytes", func(_ context.Context, _ firmware.ImageInfo, w io.Writer) error {
			_, err := w.Write(append(append([]byte{}, data...), 'x'))
			return err
		}, false},
		{"too few bytes", func(_ context.Context, _ firmware.ImageInfo, w io.Writer) error {
			_, err := w.Write(data[:10])
			return err
		}, false},
		{"the peer fails", func(context.Context, firmware.ImageInfo, io.Writer) error { return errors.New("connection refused") }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := firmware.OpenStore(t.TempDir(), firmware.WithCatalog(firmware.DirCatalog{Dir: dirA}), firmware.WithFetch(c.fetch))
			if err != nil {
				t.Fatal(err)
			}
			im, err := b.Open(info.ID)
			if !c.ok {
				if !errors.Is(err, firmware.ErrNotLocal) {
					t.Fatalf("open: %v, want ErrNotLocal", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			got, _ := io.ReadAll(im)
			if !bytes.Equal(got, data) {
				t.Fatal("other bytes")
			}
		})
	}
	t.Run("without a fetcher", func(t *testing.T) {
		b, err := firmware.OpenStore(t.TempDir(), firmware.WithCatalog(firmware.DirCatalog{Dir: dirA}))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Open(info.ID); !errors.Is(err, firmware.ErrNotLocal) {
			t.Fatalf("open: %v", err)
		}
	})
}
