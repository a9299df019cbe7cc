package firmwaretest

import (
	"bytes"
	"errors"
	"testing"

	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
)

// ImageFactory makes the image catalogs under test. Dir is the image
// directory the Store under test uses; Peer, when not nil, is a catalog
// over the same metadata with its own directory (another node).
type ImageFactory struct {
	New  func(t *testing.T, dir string) firmware.ImageCatalog
	Peer func(t *testing.T, c firmware.ImageCatalog, dir string) firmware.ImageCatalog
}

// RunImages runs every ImageCatalog case against f, through a
// firmware.Store (which writes the bytes and asks the catalog for the
// metadata).
func RunImages(t *testing.T, f ImageFactory) {
	img := bytes.Repeat([]byte("firmware image "), 100)
	open := func(t *testing.T, c firmware.ImageCatalog, dir string) *firmware.Store {
		s, err := firmware.OpenStore(dir, firmware.WithCatalog(c))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Run("put, get, list, delete", func(t *testing.T) {
		dir := t.TempDir()
		c := f.New(t, dir)
		s := open(t, c, dir)
		info, err := s.PutBytes(ctx, "main", "2.0.0", img)
		must(t, err)
		got, ok, err := c.Get(ctx, info.ID)
		if err != nil || !ok || got.Version != "2.0.0" || got.Size != int64(len(img)) || got.SHA256 != info.SHA256 || !got.Created.Equal(info.Created) {
			t.Fatalf("catalog Get %+v %v %v", got, ok, err)
		}
		if _, ok, err := c.Get(ctx, "0000000000000000"); ok || err != nil {
			t.Fatalf("unknown id: %v %v", ok, err)
		}
		if l := s.List(); len(l) != 1 || l[0].ID != info.ID {
			t.Fatalf("List %v", l)
		}
		must(t, s.Delete(info.ID))
		if all, _ := c.Load(ctx); len(all) != 0 {
			t.Fatalf("after delete %v", all)
		}
	})
	t.Run("reopened store loads the catalog", func(t *testing.T) {
		dir := t.TempDir()
		c := f.New(t, dir)
		s := open(t, c, dir)
		info, err := s.PutBytes(ctx, "main", "2.0.0", img)
		must(t, err)
		s2 := open(t, c, dir)
		if got, err := s2.Get(info.ID); err != nil || got.Version != "2.0.0" {
			t.Fatalf("after reopen %+v %v", got, err)
		}
		im, err := s2.Open(info.ID)
		must(t, err)
		im.Close()
	})
	t.Run("another node sees the metadata, not the bytes", func(t *testing.T) {
		if f.Peer == nil {
			t.Skip("catalog not shared")
		}
		dir := t.TempDir()
		c := f.New(t, dir)
		s := open(t, c, dir)
		info, err := s.PutBytes(ctx, "main", "2.0.0", img)
		must(t, err)
		pdir := t.TempDir()
		p := open(t, f.Peer(t, c, pdir), pdir)
		if got, err := p.Get(info.ID); err != nil || got.SHA256 != info.SHA256 {
			t.Fatalf("peer Get %+v %v", got, err)
		}
		if l := p.List(); len(l) != 1 {
			t.Fatalf("peer List %v", l)
		}
		if _, err := p.Open(info.ID); !errors.Is(err, firmware.ErrNotLocal) || !errors.Is(err, firmware.ErrNotFound) {
			t.Fatalf("peer Open: %v", err)
		}
		// The same bytes stored at the peer (a shared directory, or
		// fetched) keep one identity.
		pinfo, err := p.PutBytes(ctx, "main", "2.0.0", img)
		if err != nil || pinfo.ID != info.ID {
			t.Fatalf("peer Put %+v %v", pinfo, err)
		}
		im, err := p.Open(info.ID)
		must(t, err)
		im.Close()
	})
}
