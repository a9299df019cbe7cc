package firmware

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/m2mbearer/m2mbearer/internal/cfgcheck"
)

// ImageInfo describes a stored firmware image.
type ImageInfo struct {
	// ID names the image in the store and in Package URIs: the first 16
	// hex digits of its SHA-256.
	ID string `json:"id"`
	// Name is a free label ("streetlight-main").
	Name string `json:"name,omitempty"`
	// Version is the firmware version the device reports in /3/0/3 after
	// the update.
	Version string `json:"version"`
	// Size is the image length in bytes.
	Size int64 `json:"size"`
	// SHA256 is the image's SHA-256, lower-case hex.
	SHA256 string `json:"sha256"`
	// Created is the upload time.
	Created time.Time `json:"created"`
}

// StoreOption configures a Store. An option given a value out of its
// range makes OpenStore fail with an error wrapping ErrInvalidOption.
type StoreOption func(*Store) error

// atLeast1 is the check of a bound option: n below 1 is refused.
func atLeast1[T ~int | ~int64](option string, n T) error {
	return cfgcheck.AtLeast1(ErrInvalidOption, option, n)
}

// WithMaxBytes bounds the total bytes of stored images, at least 1
// (default 1 GiB).
func WithMaxBytes(n int64) StoreOption {
	return func(s *Store) error { s.maxBytes = n; return atLeast1("WithMaxBytes", n) }
}

// WithMaxImageBytes bounds one image, from 1 to the store's byte bound
// (default: that bound). Put reads at most this many bytes of an image of unknown
// size.
func WithMaxImageBytes(n int64) StoreOption {
	return func(s *Store) error { s.maxImage = n; return atLeast1("WithMaxImageBytes", n) }
}

// WithMaxImages bounds the number of stored images, at least 1 (default
// 1000).
func WithMaxImages(n int) StoreOption {
	return func(s *Store) error { s.maxImages = n; return atLeast1("WithMaxImages", n) }
}

// WithStoreMetrics sets a hook called with the image count and total
// bytes after every change.
func WithStoreMetrics(f func(images int, bytes int64)) StoreOption {
	return func(s *Store) error { s.hook = f; return nil }
}

// Store keeps firmware images as files in a directory: <id>.bin holds the
// bytes, <id>.json the ImageInfo. It is safe for concurrent use. The zero
// Store is empty and takes nothing: Put fails with ErrNotCreated (use
// OpenStore).
type Store struct {
	dir       string
	maxBytes  int64
	maxImage  int64
	maxImages int
	hook      func(int, int64)
	cat       ImageCatalog

	fetch    Fetcher    // WithFetch; nil: no fetching
	fetchMu  sync.Mutex // one fetch at a time
	mu       sync.Mutex
	images   map[string]ImageInfo
	total    int64
	reserved int64
}

// OpenStore opens (creating it if needed) the image store in dir and loads
// the metadata of the images already there. Partial uploads left by a
// crash (*.tmp) are removed.
func OpenStore(dir string, opts ...StoreOption) (*Store, error) {
	s := &Store{dir: dir, maxBytes: 1 << 30, maxImages: 1000, images: map[string]ImageInfo{}}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, fmt.Errorf("firmware: OpenStore: %w", err)
		}
	}
	if s.maxImage > s.maxBytes {
		return nil, fmt.Errorf("%w: OpenStore: WithMaxImageBytes(%d) above the store's %d bytes", ErrInvalidOption, s.maxImage, s.maxBytes)
	}
	if s.maxImage == 0 {
		s.maxImage = s.maxBytes
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("firmware: store dir: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("firmware: store dir: %w", err)
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tmp") {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	if s.cat == nil {
		s.cat = DirCatalog{Dir: dir}
	}
	infos, err := s.cat.Load(context.Background())
	if err != nil {
		return nil, err
	}
	for _, info := range infos {
		s.images[info.ID] = info
		s.total += info.Size
	}
	s.report()
	return s, nil
}

// parseInfo decodes and validates an ImageInfo record.
func parseInfo(data []byte) (ImageInfo, error) {
	var info ImageInfo
	if err := json.Unmarshal(data, &info); err != nil {
		return ImageInfo{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	sum, err := hex.DecodeString(info.SHA256)
	if err != nil || len(sum) != sha256.Size {
		return ImageInfo{}, fmt.Errorf("%w: bad sha256 %q", ErrInvalid, info.SHA256)
	}
	if info.ID != info.SHA256[:16] || info.Size < 0 || info.Version == "" {
		return ImageInfo{}, fmt.Errorf("%w: inconsistent image record", ErrInvalid)
	}
	return info, nil
}

func (s *Store) report() {
	if s.hook != nil {
		s.hook(len(s.images), s.total)
	}
}

// Upload describes an image to store.
type Upload struct {
	Name    string
	Version string
	// Size is the declared length; the bytes read must match it. -1: not
	// known in advance (a chunked or multipart upload); Put then takes
	// what the reader gives, up to the store's bounds.
	Size int64
	// SHA256 is the declared checksum (hex); the bytes must match it.
	SHA256 string
}

// checkUpload checks u against the store's bounds and returns its
// SHA-256 in lower-case hex.
func (s *Store) checkUpload(u Upload) (string, error) {
	want, err := hex.DecodeString(strings.ToLower(u.SHA256))
	if err != nil || len(want) != sha256.Size {
		return "", fmt.Errorf("%w: sha256 must be 64 hex digits", ErrInvalid)
	}
	if u.Version == "" || len(u.Version) > 255 || len(u.Name) > 255 {
		return "", fmt.Errorf("%w: version must be 1..255 bytes, name at most 255", ErrInvalid)
	}
	if u.Size == 0 || u.Size < -1 {
		return "", fmt.Errorf("%w: size must be positive, or -1 when not known", ErrInvalid)
	}
	if u.Size > s.maxImage {
		return "", fmt.Errorf("%w: %d bytes, at most %d an image", ErrTooLarge, u.Size, s.maxImage)
	}
	return hex.EncodeToString(want), nil
}

// storedAlready answers an upload of image id before any byte is read
// (done true): the image is here already (with its size and version
// checked against u's), or the store holds its most images.
func (s *Store) storedAlready(id string, u Upload) (info ImageInfo, done bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if info, ok := s.images[id]; ok && u.Size >= 0 && s.local(id) {
		if info.Size != u.Size {
			return ImageInfo{}, true, fmt.Errorf("%w: image %s has %d bytes", ErrSize, id, info.Size)
		}
		if info.Version != u.Version {
			return ImageInfo{}, true, fmt.Errorf("%w: the same bytes are stored as version %q (image %s)", ErrInvalid, info.Version, id)
		}
		return info, true, nil
	}
	if len(s.images) >= s.maxImages {
		return ImageInfo{}, true, fmt.Errorf("%w: %d images", ErrStoreFull, s.maxImages)
	}
	return ImageInfo{}, false, nil
}

// fill streams the image from r into tmp, hashing it and reserving space
// as it goes, checks its size and checksum against u, and makes it
// durable; it closes tmp and returns the image's size.
func (s *Store) fill(ctx context.Context, tmp *os.File, r io.Reader, u Upload, res *reservation) (int64, error) {
	h := sha256.New()
	limit := u.Size
	if limit < 0 {
		limit = s.maxImage
	}
	// A declared size may be passed by one byte (ErrSize below); an
	// unknown one stops at the image bound.
	max := s.maxImage
	if u.Size > 0 {
		max = u.Size + 1
	}
	dst := io.MultiWriter(&reservingWriter{w: tmp, res: res, fixed: u.Size > 0, max: max}, h)
	n, err := io.Copy(dst, &ctxReader{ctx: ctx, r: io.LimitReader(r, limit+1)})
	if err != nil {
		_ = tmp.Close()
		if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrStoreFull) {
			return 0, err
		}
		return 0, fmt.Errorf("firmware: put: %w", err)
	}
	if u.Size < 0 {
		if n == 0 {
			_ = tmp.Close()
			return 0, fmt.Errorf("%w: empty image", ErrSize)
		}
		u.Size = n
	}
	if n != u.Size {
		_ = tmp.Close()
		return 0, fmt.Errorf("%w: read %d bytes, declared %d", ErrSize, n, u.Size)
	}
	if got, sumHex := hex.EncodeToString(h.Sum(nil)), strings.ToLower(u.SHA256); got != sumHex {
		_ = tmp.Close()
		return 0, fmt.Errorf("%w: got %s, declared %s", ErrChecksum, got, sumHex)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return 0, fmt.Errorf("firmware: put: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return 0, fmt.Errorf("firmware: put: %w", err)
	}
	return n, nil
}

// Put stores the image read from r. The bytes are streamed to a temporary
// file while hashed, so memory does not grow with the image; the image is
// accepted only when exactly u.Size bytes (or, for Size -1, the whole
// stream) with checksum u.SHA256 arrived, and is durable (fsync'd) when Put
// returns. The bounds hold while streaming: an image over the per-image
// bound fails with ErrTooLarge, one over the store's free space with
// ErrStoreFull, as soon as the first byte too many arrives; the partial
// file is removed on every failure. Images are named by content: storing
// the same bytes again with the same version returns the existing image,
// with another version fails with ErrInvalid.
func (s *Store) Put(ctx context.Context, u Upload, r io.Reader) (ImageInfo, error) {
	if s.images == nil {
		return ImageInfo{}, ErrNotCreated
	}
	sumHex, err := s.checkUpload(u)
	if err != nil {
		return ImageInfo{}, err
	}
	id := sumHex[:16]
	if info, done, err := s.storedAlready(id, u); done {
		return info, err
	}
	// Space is reserved as bytes arrive (all at once for a declared size),
	// so concurrent uploads never pass the store's bound together.
	res := &reservation{s: s}
	defer res.release()
	if u.Size > 0 {
		if err := res.grow(u.Size); err != nil {
			return ImageInfo{}, err
		}
	}

	tmp, err := os.CreateTemp(s.dir, id+"-*.tmp")
	if err != nil {
		return ImageInfo{}, fmt.Errorf("firmware: put: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if u.Size, err = s.fill(ctx, tmp, r, u, res); err != nil {
		return ImageInfo{}, err
	}
	s.mu.Lock()
	if info, ok := s.images[id]; ok && s.local(id) {
		// Stored here meanwhile, or before (an upload of unknown size).
		s.mu.Unlock()
		if info.Version != u.Version {
			return ImageInfo{}, fmt.Errorf("%w: the same bytes are stored as version %q (image %s)", ErrInvalid, info.Version, id)
		}
		return info, nil
	}
	s.mu.Unlock()
	info := ImageInfo{ID: id, Name: u.Name, Version: u.Version, Size: u.Size, SHA256: sumHex, Created: time.Now().UTC()}
	if err := os.Rename(tmp.Name(), filepath.Join(s.dir, id+".bin")); err != nil {
		return ImageInfo{}, fmt.Errorf("firmware: put: %w", err)
	}
	syncDir(s.dir)
	if err := s.cat.Put(ctx, info); err != nil {
		return ImageInfo{}, fmt.Errorf("firmware: put: %w", err)
	}
	s.mu.Lock()
	if _, ok := s.images[id]; !ok {
		s.images[id] = info
		s.total += info.Size
	}
	s.report()
	s.mu.Unlock()
	return info, nil
}

// PutBytes stores an in-memory image, computing its size and checksum.
func (s *Store) PutBytes(ctx context.Context, name, version string, data []byte) (ImageInfo, error) {
	sum := sha256.Sum256(data)
	return s.Put(ctx, Upload{Name: name, Version: version, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}, strings.NewReader(string(data)))
}

func writeFileSync(name string, data []byte) error {
	tmp := name + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// reservation is the store space an upload in progress holds.
type reservation struct {
	s *Store
	n int64
}

// grow reserves n more bytes, or fails with ErrStoreFull.
func (r *reservation) grow(n int64) error {
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.total+s.reserved+n > s.maxBytes {
		return fmt.Errorf("%w: %d bytes stored or arriving, %d more do not fit in %d", ErrStoreFull, s.total+s.reserved, n, s.maxBytes)
	}
	s.reserved += n
	r.n += n
	return nil
}

func (r *reservation) release() {
	r.s.mu.Lock()
	r.s.reserved -= r.n
	r.s.mu.Unlock()
	r.n = 0
}

// reservingWriter reserves store space for each write before it (unless
// the whole size was reserved up front) and refuses bytes past the
// per-image bound.
type reservingWriter struct {
	w      io.Writer
	res    *reservation
	fixed  bool
	max, n int64
}

func (w *reservingWriter) Write(p []byte) (int, error) {
	if w.n+int64(len(p)) > w.max {
		return 0, fmt.Errorf("%w: more than %d bytes, at most %d an image", ErrTooLarge, w.max, w.max)
	}
	if !w.fixed {
		if err := w.res.grow(int64(len(p))); err != nil {
			return 0, err
		}
	}
	n, err := w.w.Write(p)
	w.n += int64(n)
	return n, err
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Get returns the metadata of image id.
func (s *Store) Get(id string) (ImageInfo, error) {
	s.mu.Lock()
	info, ok := s.images[id]
	s.mu.Unlock()
	if ok {
		return info, nil
	}
	// Stored by another node sharing the catalog?
	info, ok, err := s.catalog().Get(context.Background(), id)
	if err != nil {
		return ImageInfo{}, err
	}
	if !ok {
		return ImageInfo{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	s.mu.Lock()
	if _, dup := s.images[id]; !dup {
		s.images[id] = info
		s.total += info.Size
		s.report()
	}
	s.mu.Unlock()
	return info, nil
}

// List returns the stored images, oldest first.
func (s *Store) List() []ImageInfo {
	s.refresh()
	s.mu.Lock()
	out := make([]ImageInfo, 0, len(s.images))
	for _, i := range s.images {
		out = append(out, i)
	}
	s.mu.Unlock()
	sort.Slice(out, func(a, b int) bool {
		if !out[a].Created.Equal(out[b].Created) {
			return out[a].Created.Before(out[b].Created)
		}
		return out[a].ID < out[b].ID
	})
	return out
}

// catalog returns the metadata catalog (DirCatalog for a zero Store).
func (s *Store) catalog() ImageCatalog {
	if s.cat == nil {
		return DirCatalog{Dir: s.dir}
	}
	return s.cat
}

// local reports whether image id's bytes are in this store's directory
// (with a shared catalog, another node may have stored them).
func (s *Store) local(id string) bool {
	_, err := os.Stat(filepath.Join(s.dir, id+".bin"))
	return err == nil
}

// refresh reloads the metadata from a catalog shared with other nodes
// (what they stored or deleted); the directory catalog is this store's
// alone. On an error the metadata held stays.
func (s *Store) refresh() {
	if _, local := s.catalog().(DirCatalog); local {
		return
	}
	infos, err := s.cat.Load(context.Background())
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.images, s.total = make(map[string]ImageInfo, len(infos)), 0
	for _, info := range infos {
		s.images[info.ID] = info
		s.total += info.Size
	}
	s.report()
}

// Usage returns the number of images and their total bytes.
func (s *Store) Usage() (images int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.images), s.total
}

// Delete removes image id. Readers that have it open keep reading the
// (unlinked) file until they close it.
func (s *Store) Delete(id string) error {
	s.mu.Lock()
	info, ok := s.images[id]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	delete(s.images, id)
	s.total -= info.Size
	s.report()
	s.mu.Unlock()
	errMeta := s.catalog().Delete(context.Background(), id)
	errBin := os.Remove(filepath.Join(s.dir, id+".bin"))
	if errors.Is(errBin, os.ErrNotExist) {
		errBin = nil // stored on another node
	}
	if err := errors.Join(errMeta, errBin); err != nil {
		return fmt.Errorf("firmware: delete %s: %w", id, err)
	}
	return nil
}

// Image is an open stored image: an io.ReaderAt over the file (no copy in
// memory). Close it when done. The zero Image is empty: it reads io.EOF,
// its Size is 0 and Close does nothing.
type Image struct {
	Info ImageInfo
	f    *os.File
	*io.SectionReader
}

// Open opens image id for reading.
func (s *Store) Open(id string) (*Image, error) {
	info, err := s.Get(id)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(s.dir, id+".bin"))
	if errors.Is(err, os.ErrNotExist) && s.fetch != nil {
		if ferr := s.fetchLocal(info); ferr != nil {
			return nil, ferr
		}
		f, err = os.Open(filepath.Join(s.dir, id+".bin"))
	}
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("firmware: open %s: %w: %w", id, ErrNotFound, ErrNotLocal)
	}
	if err != nil {
		return nil, fmt.Errorf("firmware: open %s: %w", id, err)
	}
	return &Image{Info: info, f: f, SectionReader: io.NewSectionReader(f, 0, info.Size)}, nil
}

// Close closes the image file.
func (im *Image) Close() error {
	if im.f == nil {
		return nil
	}
	return im.f.Close()
}

// The io methods of a zero Image read an empty section; the others are
// those of the embedded SectionReader.

// Read implements io.Reader.
func (im *Image) Read(p []byte) (int, error) { return im.section().Read(p) }

// ReadAt implements io.ReaderAt.
func (im *Image) ReadAt(p []byte, off int64) (int, error) { return im.section().ReadAt(p, off) }

// Seek implements io.Seeker.
func (im *Image) Seek(offset int64, whence int) (int64, error) {
	return im.section().Seek(offset, whence)
}

// Size returns the image's size in bytes.
func (im *Image) Size() int64 { return im.section().Size() }

// Outer returns the file, offset and size of the image.
func (im *Image) Outer() (io.ReaderAt, int64, int64) { return im.section().Outer() }

func (im *Image) section() *io.SectionReader {
	if im.SectionReader == nil {
		return io.NewSectionReader(nil, 0, 0)
	}
	return im.SectionReader
}
