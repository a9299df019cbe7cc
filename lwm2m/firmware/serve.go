package firmware

import (
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
)

// CoAPHandler serves stored images for pull over CoAP: GET <prefix><id>
// answers with the image in RFC 7959 Block2 blocks. Each request reads one
// block from the image file, so a thousand devices pulling at once hold
// one block each, never the image. The zero CoAPHandler has no store: it
// answers 4.04 (use NewCoAPHandler).
type CoAPHandler struct {
	store  *Store
	prefix string
	szx    uint32
	// Served counts blocks served; may be nil.
	served func(n int)
}

// NewCoAPHandler returns a handler for images under prefix ("/fw/"),
// answering in blocks of at most blockSize bytes (16..1024, a power of
// two): pass the Endpoint's BlockSize() so that every block fits the
// bearer's datagram. served, if not nil, is called with 1 per block.
func NewCoAPHandler(s *Store, prefix string, blockSize int, served func(n int)) *CoAPHandler {
	szx := uint32(0)
	for szx < 6 && 16<<(szx+1) <= blockSize {
		szx++
	}
	return &CoAPHandler{store: s, prefix: prefix, szx: szx, served: served}
}

// BlockSize returns the largest block the handler sends.
func (h *CoAPHandler) BlockSize() int { return 16 << h.szx }

func optUint(opts message.Options, id message.OptionID) (uint32, bool) {
	for _, o := range opts {
		if o.ID == id {
			var v uint32
			for _, b := range o.Value {
				v = v<<8 | uint32(b)
			}
			return v, len(o.Value) <= 3
		}
	}
	return 0, false
}

// ServeCoAP implements bearer.Handler.
func (h *CoAPHandler) ServeCoAP(w bearer.ResponseWriter, r *bearer.Request) {
	if r.Code != codes.GET {
		_ = w.WriteResponse(codes.MethodNotAllowed, nil)
		return
	}
	id, ok := strings.CutPrefix(r.Path(), strings.TrimSuffix(h.prefix, "/")+"/")
	if !ok || id == "" || strings.Contains(id, "/") || h.store == nil {
		_ = w.WriteResponse(codes.NotFound, nil)
		return
	}
	img, err := h.store.Open(id)
	if err != nil {
		_ = w.WriteResponse(codes.NotFound, []byte("no such image"))
		return
	}
	defer img.Close()
	szx := h.szx
	var offset int64
	v, asked := optUint(r.Options, message.Block2)
	if asked {
		num, rszx := v>>4, v&7
		if rszx == 7 {
			_ = w.WriteResponse(codes.BadOption, nil)
			return
		}
		offset = int64(num) * int64(16<<rszx)
		if rszx < szx {
			szx = rszx
		}
		// The block is sliced here, from the file: the Endpoint must not
		// slice it again as if it were the whole body.
		r.Options = r.Options.Remove(message.Block2)
	}
	size := int64(16 << szx)
	total := img.Info.Size
	if offset >= total && offset > 0 {
		_ = w.WriteResponse(codes.BadOption, []byte("block out of range"))
		return
	}
	etag, _ := hex.DecodeString(img.Info.SHA256[:16])
	w.SetOption(bearer.ContentFormatOption(message.AppOctets))
	w.SetOption(message.Option{ID: message.ETag, Value: etag})
	n := size
	if total-offset < n {
		n = total - offset
	}
	if !asked && total <= size {
		n = total
	} else {
		more := offset+n < total
		bv := uint32(offset/size)<<4 | szx
		if more {
			bv |= 8
		}
		w.SetOption(bearer.UintOption(message.Block2, bv))
		if offset == 0 {
			w.SetOption(bearer.UintOption(message.Size2, uint32(total)))
		}
	}
	buf := make([]byte, n)
	if _, err := img.ReadAt(buf, offset); err != nil && !errors.Is(err, io.EOF) {
		_ = w.WriteResponse(codes.InternalServerError, nil)
		return
	}
	if h.served != nil {
		h.served(1)
	}
	// The block is a function of the request and the image, which is
	// stored under its content's hash and never changes: a duplicate of
	// the request is answered by reading the block again, so the
	// Endpoint's duplicate cache keeps a digest instead of the block.
	bearer.SetRegenerable(w)
	_ = w.WriteResponse(codes.Content, buf)
}

// HTTPHandler serves stored images for pull over HTTP(S): GET or HEAD
// <prefix><id>, with Range requests (RFC 9110 §14) and a strong ETag (the
// image's SHA-256), through net/http's ServeContent over the image file.
func HTTPHandler(s *Store, prefix string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		id, ok := strings.CutPrefix(r.URL.Path, prefix)
		if !ok || id == "" || strings.Contains(id, "/") {
			http.NotFound(w, r)
			return
		}
		img, err := s.Open(id)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer img.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("ETag", `"`+img.Info.SHA256+`"`)
		http.ServeContent(w, r, "", img.Info.Created, img.SectionReader)
	})
}
