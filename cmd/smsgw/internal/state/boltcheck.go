package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/big"
)

// The on-disk layout of a bbolt file (go.etcd.io/bbolt, format version 2),
// as far as the check needs it. bbolt itself reads its pages through a
// memory map and trusts them: a page id or an offset past the end of a
// damaged or truncated file makes it fault or panic. checkBolt reads the
// same structures through ReadAt with every offset checked first, so a
// damaged file gives an error, never a fault.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	pageHeaderSize = 16
	elementSize    = 16 // branch and leaf elements alike
	bucketHdrSize  = 16 // root pgid, sequence
	metaSize       = 64 // up to and including the checksum

	flagBranch   = 0x01
	flagLeaf     = 0x02
	flagMeta     = 0x04
	flagFreelist = 0x10
	flagBucket   = 0x01 // leaf element: the value is a bucket

	noFreelist = ^uint64(0)
	maxDepth   = 64
)

var ne = binary.NativeEndian // bbolt writes its structures in the host's byte order

// Problems the check finds; a *FileError wraps one of them.
var (
	// ErrMissing: a state file the data dir had is gone.
	ErrMissing = errors.New("missing")
	// ErrEmpty: a state file of an initialised data dir has 0 bytes.
	ErrEmpty = errors.New("empty")
	// ErrTruncated: the file ends before the pages its header counts.
	ErrTruncated = errors.New("truncated")
	// ErrDamaged: a page or the header is not what bbolt wrote.
	ErrDamaged = errors.New("damaged")
)

// meta is a bbolt meta page.
type meta struct {
	pageSize uint32
	root     uint64 // root bucket's root page
	freelist uint64
	pgid     uint64 // high water mark: pages 0..pgid-1 are in use or free
	txid     uint64
}

// parseMeta decodes the meta of a page (header included).
func parseMeta(b []byte) (meta, error) {
	if len(b) < pageHeaderSize+metaSize {
		return meta{}, errors.New("short meta page")
	}
	m := b[pageHeaderSize : pageHeaderSize+metaSize]
	if ne.Uint32(m[0:]) != boltMagic {
		return meta{}, errors.New("no bbolt magic number")
	}
	if v := ne.Uint32(m[4:]); v != boltVersion {
		return meta{}, fmt.Errorf("format version %d, not %d", v, boltVersion)
	}
	h := fnv.New64a()
	h.Write(m[:56])
	if h.Sum64() != ne.Uint64(m[56:]) {
		return meta{}, errors.New("meta checksum mismatch")
	}
	mt := meta{pageSize: ne.Uint32(m[8:]), root: ne.Uint64(m[16:]), freelist: ne.Uint64(m[32:]),
		pgid: ne.Uint64(m[40:]), txid: ne.Uint64(m[48:])}
	if mt.pageSize < 512 || mt.pageSize > 1<<16 || mt.pageSize&(mt.pageSize-1) != 0 {
		return meta{}, fmt.Errorf("page size %d", mt.pageSize)
	}
	if mt.pgid < 3 || mt.root < 2 || mt.root >= mt.pgid || mt.freelist != noFreelist && (mt.freelist < 2 || mt.freelist >= mt.pgid) {
		return meta{}, fmt.Errorf("meta points outside its pages (root %d, freelist %d, high water mark %d)", mt.root, mt.freelist, mt.pgid)
	}
	return mt, nil
}

// checker walks one bbolt file.
type checker struct {
	r         io.ReaderAt
	size      int64
	m         meta
	ps        int64
	reachable bitset
	freed     bitset
	pages     int
}

type bitset []uint64

func newBitset(n uint64) bitset    { return make(bitset, (n+63)/64) }
func (b bitset) has(i uint64) bool { return b[i/64]&(1<<(i%64)) != 0 }
func (b bitset) set(i uint64)      { b[i/64] |= 1 << (i % 64) }
func damaged(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrDamaged}, a...)...)
}

// checkBolt checks a bbolt file of size bytes: both meta pages, that the
// file holds every page the newest valid meta counts, and every page
// reachable from the root bucket and the freelist (bounds, page types,
// element offsets, key order, no page used twice, no page both used and
// free, no page lost). It returns nil, or an error wrapping ErrTruncated or
// ErrDamaged.
func checkBolt(r io.ReaderAt, size int64) error {
	m, err := pickMeta(r, size)
	if err != nil {
		return err
	}
	c := &checker{r: r, size: size, m: m, ps: int64(m.pageSize)}
	if m.pgid > uint64(size)/uint64(c.ps) {
		return fmt.Errorf("%w: %d bytes, but its pages reach byte %d", ErrTruncated, size, new(big.Int).Mul(new(big.Int).SetUint64(m.pgid), big.NewInt(c.ps)))
	}
	c.reachable, c.freed = newBitset(m.pgid), newBitset(m.pgid)
	c.reachable.set(0)
	c.reachable.set(1)
	if m.freelist != noFreelist {
		if err := c.freelist(); err != nil {
			return err
		}
	}
	if err := c.page(m.root, 0); err != nil {
		return err
	}
	if m.freelist == noFreelist {
		return nil // bbolt rebuilds the freelist by scanning
	}
	for i := uint64(2); i < m.pgid; i++ {
		if !c.reachable.has(i) && !c.freed.has(i) {
			return damaged("page %d is neither in use nor free", i)
		}
	}
	return nil
}

// pickMeta reads both meta pages and returns the valid one with the
// higher transaction id, as bbolt does (a torn write of the newer meta
// leaves the older one). Both header pages must say who they are: bbolt
// asserts it.
func pickMeta(r io.ReaderAt, size int64) (meta, error) {
	readPage := func(off int64) []byte {
		b := make([]byte, pageHeaderSize+metaSize)
		if n, _ := r.ReadAt(b, off); n < len(b) {
			return nil
		}
		return b
	}
	p0 := readPage(0)
	m0, err0 := parseMeta(p0)
	ps := int64(0)
	if err0 == nil {
		ps = int64(m0.pageSize)
	} else {
		// Without page 0 the page size is that of a valid meta found one
		// page in, for the sizes bbolt may have used.
		for try := int64(512); try <= 1<<16; try *= 2 {
			if m, err := parseMeta(readPage(try)); err == nil && int64(m.pageSize) == try {
				ps = try
				break
			}
		}
	}
	switch {
	case ps == 0 && size < 2*4096:
		return meta{}, fmt.Errorf("%w: %d bytes, shorter than the two header pages", ErrTruncated, size)
	case ps == 0:
		return meta{}, damaged("no valid header page (page 0: %v)", err0)
	case 2*ps > size:
		return meta{}, fmt.Errorf("%w: %d bytes, shorter than the two header pages of %d bytes", ErrTruncated, size, ps)
	}
	p1 := readPage(ps)
	m1, err1 := parseMeta(p1)
	for i, p := range [][]byte{p0, p1} {
		if p == nil {
			return meta{}, fmt.Errorf("%w: header page %d unreadable", ErrTruncated, i)
		}
		if id, flags := ne.Uint64(p), ne.Uint16(p[8:]); id != uint64(i) || flags != flagMeta {
			return meta{}, damaged("header page %d says it is page %d of type %#x", i, id, flags)
		}
	}
	switch {
	case err0 != nil && err1 != nil:
		return meta{}, damaged("no valid header page (page 0: %v; page 1: %v)", err0, err1)
	case err0 != nil:
		return m1, nil
	case err1 != nil:
		return m0, nil
	case m0.pageSize != m1.pageSize:
		return meta{}, damaged("the header pages disagree on the page size (%d, %d)", m0.pageSize, m1.pageSize)
	case m1.txid > m0.txid:
		return m1, nil
	}
	return m0, nil
}

// read returns the page pgid with its overflow pages, after checking the
// header against the file.
func (c *checker) read(pgid uint64) (flags uint16, count int, body []byte, err error) {
	if pgid < 2 || pgid >= c.m.pgid {
		return 0, 0, nil, damaged("page %d is out of bounds (high water mark %d)", pgid, c.m.pgid)
	}
	var hdr [pageHeaderSize]byte
	if _, err := c.r.ReadAt(hdr[:], int64(pgid)*c.ps); err != nil {
		return 0, 0, nil, fmt.Errorf("%w: reading page %d: %v", ErrTruncated, pgid, err)
	}
	if id := ne.Uint64(hdr[0:]); id != pgid {
		return 0, 0, nil, damaged("page %d says it is page %d", pgid, id)
	}
	flags, count = ne.Uint16(hdr[8:]), int(ne.Uint16(hdr[10:]))
	overflow := uint64(ne.Uint32(hdr[12:]))
	if pgid+overflow >= c.m.pgid {
		return 0, 0, nil, damaged("page %d with %d overflow pages passes the high water mark %d", pgid, overflow, c.m.pgid)
	}
	for i := pgid; i <= pgid+overflow; i++ {
		if c.reachable.has(i) {
			return 0, 0, nil, damaged("page %d is used twice", i)
		}
		if c.freed.has(i) {
			return 0, 0, nil, damaged("page %d is in use and free", i)
		}
		c.reachable.set(i)
	}
	c.pages++
	body = make([]byte, int64(overflow+1)*c.ps)
	if _, err := c.r.ReadAt(body, int64(pgid)*c.ps); err != nil {
		return 0, 0, nil, fmt.Errorf("%w: reading page %d: %v", ErrTruncated, pgid, err)
	}
	return flags, count, body, nil
}

func (c *checker) freelist() error {
	id := c.m.freelist
	flags, count, body, err := c.read(id)
	if err != nil {
		return err
	}
	if flags != flagFreelist {
		return damaged("freelist page %d has type %#x", id, flags)
	}
	ids := body[pageHeaderSize:]
	if count == 0xFFFF {
		if len(ids) < 8 {
			return damaged("freelist page %d is short", id)
		}
		n := ne.Uint64(ids)
		if n > uint64(len(ids)-8)/8 {
			return damaged("freelist page %d counts %d pages, more than it holds", id, n)
		}
		count, ids = int(n), ids[8:]
	}
	if count*8 > len(ids) {
		return damaged("freelist page %d counts %d pages, more than it holds", id, count)
	}
	for i := 0; i < count; i++ {
		p := ne.Uint64(ids[i*8:])
		if p < 2 || p >= c.m.pgid {
			return damaged("freelist page %d lists page %d, out of bounds", id, p)
		}
		if c.freed.has(p) {
			return damaged("page %d is free twice", p)
		}
		if c.reachable.has(p) {
			return damaged("the freelist lists page %d, which holds the freelist", p)
		}
		c.freed.set(p)
	}
	return nil
}

// page checks a branch or leaf page and, through its children and the
// buckets it holds, the tree below it.
func (c *checker) page(id uint64, depth int) error {
	if depth > maxDepth {
		return damaged("page %d: tree deeper than %d", id, maxDepth)
	}
	flags, count, body, err := c.read(id)
	if err != nil {
		return err
	}
	return c.elements(id, flags, count, body, depth)
}

// elements checks the elements of a page (body starts with its header).
// Inline buckets pass id 0.
func (c *checker) elements(id uint64, flags uint16, count int, body []byte, depth int) error {
	if flags != flagBranch && flags != flagLeaf {
		return damaged("page %d has type %#x where a branch or leaf page belongs", id, flags)
	}
	if pageHeaderSize+count*elementSize > len(body) {
		return damaged("page %d has %d elements, more than it holds", id, count)
	}
	if flags&flagBranch != 0 && count == 0 {
		return damaged("branch page %d is empty", id)
	}
	var prev []byte
	for i := 0; i < count; i++ {
		at := pageHeaderSize + i*elementSize
		e := body[at : at+elementSize]
		var pos, ksize, vsize, eflags uint64
		if flags&flagBranch != 0 {
			pos, ksize = uint64(ne.Uint32(e[0:])), uint64(ne.Uint32(e[4:]))
		} else {
			eflags, pos, ksize, vsize = uint64(ne.Uint32(e[0:])), uint64(ne.Uint32(e[4:])), uint64(ne.Uint32(e[8:])), uint64(ne.Uint32(e[12:]))
		}
		end := uint64(at) + pos + ksize + vsize
		if end > uint64(len(body)) {
			return damaged("page %d element %d reaches past its page", id, i)
		}
		key := body[uint64(at)+pos : uint64(at)+pos+ksize]
		if prev != nil && bytes.Compare(prev, key) >= 0 {
			return damaged("page %d: keys out of order at element %d", id, i)
		}
		prev = key
		if flags&flagBranch != 0 {
			if err := c.page(ne.Uint64(e[8:]), depth+1); err != nil {
				return err
			}
			continue
		}
		if eflags&flagBucket == 0 {
			continue
		}
		val := body[uint64(at)+pos+ksize : end]
		if len(val) < bucketHdrSize {
			return damaged("page %d element %d: bucket header of %d bytes", id, i, len(val))
		}
		if root := ne.Uint64(val); root != 0 {
			if err := c.page(root, depth+1); err != nil {
				return err
			}
			continue
		}
		// An inline bucket: its single leaf page follows the header.
		inline := val[bucketHdrSize:]
		if len(inline) < pageHeaderSize {
			return damaged("page %d element %d: inline bucket of %d bytes", id, i, len(inline))
		}
		iflags, icount := ne.Uint16(inline[8:]), int(ne.Uint16(inline[10:]))
		if iflags != flagLeaf {
			return damaged("page %d element %d: inline bucket page of type %#x", id, i, iflags)
		}
		if err := c.elements(0, iflags, icount, inline, depth+1); err != nil {
			return err
		}
	}
	return nil
}
