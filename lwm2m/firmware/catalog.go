package firmware

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ImageCatalog keeps the metadata of the stored images (the bytes are
// files in the Store's directory, named by content: <id>.bin). DirCatalog,
// a JSON file beside each image, is the default; redisstore keeps the
// catalog in Redis so the gateway nodes of a cluster share it (the bytes
// then live in a shared directory, or are fetched from the node that has
// them). Implementations are safe for concurrent use; a Put that returns
// nil survives a crash.
type ImageCatalog interface {
	// Load returns every image's metadata.
	Load(ctx context.Context) ([]ImageInfo, error)
	// Get returns image id's metadata; ok is false when there is none.
	Get(ctx context.Context, id string) (info ImageInfo, ok bool, err error)
	// Put stores info, once its bytes are durable.
	Put(ctx context.Context, info ImageInfo) error
	// Delete removes image id's metadata (unknown ids are ignored).
	Delete(ctx context.Context, id string) error
}

// DirCatalog is the default ImageCatalog: <id>.json beside <id>.bin in
// the image directory. Load drops (and removes) metadata whose image file
// is missing or has another size: an upload that did not finish. The zero
// DirCatalog has no directory: it holds nothing and Put fails with
// ErrInvalid (it never writes to the working directory).
type DirCatalog struct{ Dir string }

var _ ImageCatalog = DirCatalog{}

// Load implements ImageCatalog.
func (c DirCatalog) Load(context.Context) ([]ImageInfo, error) {
	if c.Dir == "" {
		return nil, nil
	}
	ents, err := os.ReadDir(c.Dir)
	if err != nil {
		return nil, fmt.Errorf("firmware: store dir: %w", err)
	}
	var out []ImageInfo
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".json") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(c.Dir, name))
		if err != nil {
			return nil, fmt.Errorf("firmware: read %s: %w", name, err)
		}
		info, err := parseInfo(data)
		if err != nil {
			return nil, fmt.Errorf("firmware: %s: %w", name, err)
		}
		st, err := os.Stat(filepath.Join(c.Dir, info.ID+".bin"))
		if err != nil || st.Size() != info.Size {
			// Metadata without its image: the upload did not finish.
			_ = os.Remove(filepath.Join(c.Dir, name))
			continue
		}
		out = append(out, info)
	}
	return out, nil
}

// Get implements ImageCatalog.
func (c DirCatalog) Get(_ context.Context, id string) (ImageInfo, bool, error) {
	if !validID(id) || c.Dir == "" {
		return ImageInfo{}, false, nil
	}
	data, err := os.ReadFile(filepath.Join(c.Dir, id+".json"))
	if errors.Is(err, os.ErrNotExist) {
		return ImageInfo{}, false, nil
	}
	if err != nil {
		return ImageInfo{}, false, fmt.Errorf("firmware: read %s.json: %w", id, err)
	}
	info, err := parseInfo(data)
	return info, err == nil, err
}

// Put implements ImageCatalog (fsync'd file and directory).
func (c DirCatalog) Put(_ context.Context, info ImageInfo) error {
	if c.Dir == "" {
		return fmt.Errorf("%w: DirCatalog without Dir", ErrInvalid)
	}
	if !validID(info.ID) {
		return fmt.Errorf("%w: image id %q", ErrInvalid, info.ID)
	}
	meta, _ := json.Marshal(info)
	if err := writeFileSync(filepath.Join(c.Dir, info.ID+".json"), meta); err != nil {
		return err
	}
	syncDir(c.Dir)
	return nil
}

// Delete implements ImageCatalog.
func (c DirCatalog) Delete(_ context.Context, id string) error {
	if !validID(id) || c.Dir == "" {
		return nil
	}
	if err := os.Remove(filepath.Join(c.Dir, id+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// validID reports whether id is an image ID (16 lower-case hex digits), so
// it is safe in a file name.
func validID(id string) bool {
	if len(id) != 16 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// WithCatalog keeps the image metadata in c instead of JSON files beside
// the images (DirCatalog).
func WithCatalog(c ImageCatalog) StoreOption {
	return func(s *Store) error { s.cat = c; return nil }
}

// ErrNotLocal is wrapped by Open for an image the catalog knows whose
// bytes are not in this node's directory (another node stored it: use a
// shared directory, or fetch it from that node).
var ErrNotLocal = errors.New("firmware: image bytes not on this node")
