package gateway

import (
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"

	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
)

// maxPreamble bounds what a multipart upload may send before its "file"
// part (the other fields and the part headers): the multipart reader
// would otherwise buffer up to 10 MB of part headers.
const maxPreamble = 64 << 10

// uploadImage stores an image: a multipart form (field "file", and "name",
// "version", "sha256" fields, before "file", or query parameters) or the
// raw body (query parameters or X-Firmware-Name/-Version/-SHA256 headers).
// The image streams to disk while hashed (memory does not grow with it);
// the size bound (firmware.max_image_bytes) holds while it streams, and
// the partial file is removed on every failure.
func (g *Gateway) uploadImage(w http.ResponseWriter, r *http.Request) {
	if !g.fwReady(w) {
		return
	}
	q := r.URL.Query()
	param := func(name, header string) string {
		if v := q.Get(name); v != "" {
			return v
		}
		return r.Header.Get(header)
	}
	u := firmware.Upload{Name: param("name", "X-Firmware-Name"), Version: param("version", "X-Firmware-Version"),
		SHA256: strings.ToLower(param("sha256", "X-Firmware-SHA256")), Size: -1}
	limit := g.cfg.Firmware.MaxImageBytes
	var src io.Reader = http.MaxBytesReader(w, r.Body, limit+maxPreamble)
	if r.ContentLength >= 0 {
		u.Size = r.ContentLength
	}
	if ct := r.Header.Get("Content-Type"); strings.HasPrefix(ct, "multipart/form-data") {
		part, err := g.uploadPart(r, src, &u)
		if err != nil {
			g.uploadRefused(w, err, limit)
			return
		}
		defer part.Close()
		src = part
	}
	if s := param("size", "X-Firmware-Size"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("size %q is not a positive number of bytes", s))
			return
		}
		u.Size = n
	}
	if u.Size > limit {
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("image of %d bytes is over firmware.max_image_bytes (%d)", u.Size, limit))
		return
	}
	if u.Version == "" {
		writeError(w, http.StatusBadRequest, "version is required (query ?version=, header X-Firmware-Version, or multipart field \"version\" before the file)")
		return
	}
	if u.SHA256 == "" {
		writeError(w, http.StatusBadRequest, "sha256 is required: the image's SHA-256 in hex (query ?sha256=, header X-Firmware-SHA256, or multipart field \"sha256\" before the file); it is checked against the bytes received")
		return
	}
	if u.Size == 0 {
		writeError(w, http.StatusBadRequest, "the image is empty")
		return
	}
	info, err := g.fw.store.Put(r.Context(), u, &uploadReader{r: src})
	if err != nil {
		g.uploadRefused(w, err, limit)
		return
	}
	g.hub.publish("firmware-image", info)
	writeJSON(w, http.StatusCreated, info)
}

// uploadReader marks the errors of reading the upload, to tell them (the
// client's: 400, 408, 413) from the store's (500).
type uploadReader struct{ r io.Reader }

// uploadReadError is an error reading the upload.
type uploadReadError struct{ err error }

func (e *uploadReadError) Error() string { return "reading the upload: " + e.err.Error() }
func (e *uploadReadError) Unwrap() error { return e.err }

func (u *uploadReader) Read(p []byte) (int, error) {
	n, err := u.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = &uploadReadError{err}
	}
	return n, err
}

// errMultipart is a multipart upload whose framing is refused.
var errMultipart = errors.New("bad multipart upload")

// uploadPart reads a multipart upload up to its "file" part, taking the
// fields before it, and returns the part. Fields and part headers before
// the file are bounded by maxPreamble.
func (g *Gateway) uploadPart(r *http.Request, body io.Reader, u *firmware.Upload) (*multipart.Part, error) {
	pre := &preambleReader{r: body, left: maxPreamble}
	r.Body = io.NopCloser(pre)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errMultipart, err)
	}
	u.Size = -1
	for {
		part, err := mr.NextPart()
		if err != nil {
			if errors.Is(err, errPreamble) {
				return nil, err
			}
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("%w: no \"file\" part", errMultipart)
			}
			return nil, fmt.Errorf("%w: %v", errMultipart, err)
		}
		if part.FormName() == "file" {
			pre.left = -1 // the image itself is bounded by the store
			return part, nil
		}
		v, err := io.ReadAll(io.LimitReader(part, 257))
		part.Close()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errMultipart, err)
		}
		if len(v) > 256 {
			return nil, fmt.Errorf("%w: field %q over 256 bytes", errMultipart, part.FormName())
		}
		switch part.FormName() {
		case "name":
			u.Name = string(v)
		case "version":
			u.Version = string(v)
		case "sha256":
			u.SHA256 = strings.ToLower(strings.TrimSpace(string(v)))
		case "size":
			n, err := strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("%w: size %q is not a positive number of bytes", errMultipart, v)
			}
			u.Size = n
		}
	}
}

// errPreamble: a multipart upload sent too much before its file part.
var errPreamble = fmt.Errorf("%w: more than %d bytes before the \"file\" part", errMultipart, maxPreamble)

// preambleReader bounds the bytes read while left >= 0.
type preambleReader struct {
	r    io.Reader
	left int
}

func (p *preambleReader) Read(b []byte) (int, error) {
	if p.left < 0 {
		return p.r.Read(b)
	}
	if p.left == 0 {
		return 0, errPreamble
	}
	n, err := p.r.Read(b[:min(len(b), p.left)])
	p.left -= n
	return n, err
}

// uploadRefused answers a failed upload.
func (g *Gateway) uploadRefused(w http.ResponseWriter, err error, limit int64) {
	if code, msg, ok := bodyError(err); ok {
		w.Header().Set("Connection", "close")
		if code == http.StatusRequestEntityTooLarge {
			msg = fmt.Sprintf("image over firmware.max_image_bytes (%d); nothing was stored", limit)
		}
		writeError(w, code, msg)
		return
	}
	var re *uploadReadError
	switch {
	case errors.As(err, &re):
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusBadRequest, re.Error()+" (the upload ended early or broke off); nothing was stored")
	case errors.Is(err, firmware.ErrTooLarge):
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("image over firmware.max_image_bytes (%d); nothing was stored", limit))
	case errors.Is(err, errMultipart):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, firmware.ErrChecksum):
		writeError(w, http.StatusBadRequest, "checksum mismatch: the bytes received do not have the SHA-256 given; nothing was stored")
	case errors.Is(err, firmware.ErrSize):
		writeError(w, http.StatusBadRequest, "size mismatch: "+err.Error())
	case errors.Is(err, firmware.ErrStoreFull):
		writeError(w, http.StatusInsufficientStorage, err.Error()+"; delete old images first")
	case errors.Is(err, firmware.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}
