package gateway

import (
	"bytes"
	"container/heap"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"unicode/utf8"
)

// Lists that can grow (devices, jobs, images, campaigns, a campaign's
// devices) answer one page at a time: ?limit= items (default
// defaultPageLimit, at most maxPageLimit) after ?cursor=, in a stable
// order, and at most maxPageBytes of items whatever the limit. The answer
// carries "count" (items in this page), "total" (items in the whole list)
// and "next_cursor" while there are more. A cursor is opaque: the
// base64url of the last item's sort key.
const (
	defaultPageLimit = 100
	maxPageLimit     = 1000
	maxPageBytes     = 256 << 10
	maxCursorBytes   = 1024
)

// pageQuery is a list request's page.
type pageQuery struct {
	limit int
	after string // sort key after which the page starts; "" from the start
}

// parsePage reads limit and cursor.
func parsePage(q url.Values) (pageQuery, error) {
	p := pageQuery{limit: defaultPageLimit}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPageLimit {
			return p, fmt.Errorf("limit %q: give a number of items in 1..%d", s, maxPageLimit)
		}
		p.limit = n
	}
	if s := q.Get("cursor"); s != "" {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || len(b) == 0 || len(b) > maxCursorBytes || !utf8.Valid(b) {
			return p, fmt.Errorf("cursor %.40q is not one this API gave (use next_cursor of the previous page)", s)
		}
		p.after = string(b)
	}
	return p, nil
}

func cursorOf(key string) string { return base64.RawURLEncoding.EncodeToString([]byte(key)) }

// pager selects a page from items offered in any order: it keeps the
// limit+1 smallest keys after the cursor (memory bounded by the limit,
// whatever the list's size) and counts every item offered.
type pager[T any] struct {
	q     pageQuery
	h     keyHeap[T]
	total int
}

type keyed[T any] struct {
	key  string
	item T
}

func newPager[T any](q pageQuery) *pager[T] { return &pager[T]{q: q} }

// add offers an item of the list with its sort key (unique in the list).
func (p *pager[T]) add(key string, item T) {
	p.total++
	if p.q.after != "" && key <= p.q.after {
		return
	}
	if len(p.h) <= p.q.limit {
		heap.Push(&p.h, keyed[T]{key, item})
		return
	}
	if key < p.h[0].key {
		p.h[0] = keyed[T]{key, item}
		heap.Fix(&p.h, 0)
	}
}

// page returns the selected items in key order and whether more follow.
func (p *pager[T]) page() ([]keyed[T], bool) {
	out := []keyed[T](p.h)
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	if len(out) > p.q.limit {
		return out[:p.q.limit], true
	}
	return out, false
}

// keyHeap is a max-heap by key: its top is the largest key kept.
type keyHeap[T any] []keyed[T]

func (h keyHeap[T]) Len() int           { return len(h) }
func (h keyHeap[T]) Less(i, j int) bool { return h[i].key > h[j].key }
func (h keyHeap[T]) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *keyHeap[T]) Push(x any)        { *h = append(*h, x.(keyed[T])) }
func (h *keyHeap[T]) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// body encodes the page's items (render turns one into its JSON value)
// into the answer body under name, with the count and the total, stopping
// at maxPageBytes: then the next cursor is that of the last item included.
// extra fields are added.
func (p *pager[T]) body(name string, render func(T) any, extra map[string]any) map[string]any {
	items, more := p.page()
	out := make([]json.RawMessage, 0, len(items))
	size, last := 0, ""
	var ind bytes.Buffer
	for i, it := range items {
		b, err := json.Marshal(render(it.item))
		if err != nil {
			continue
		}
		// Counted as writeJSON writes it: indented, two levels deep.
		ind.Reset()
		_ = json.Indent(&ind, b, "    ", "  ")
		if i > 0 && size+ind.Len()+6 > maxPageBytes {
			more = true
			break
		}
		size += ind.Len() + 6
		out = append(out, b)
		last = it.key
	}
	body := map[string]any{name: out, "count": len(out), "total": p.total}
	if more && last != "" {
		body["next_cursor"] = cursorOf(last)
	}
	for k, v := range extra {
		body[k] = v
	}
	return body
}

// pageOrError parses the page of a list request, or answers 400.
func pageOrError(w http.ResponseWriter, r *http.Request) (pageQuery, bool) {
	p, err := parsePage(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return p, false
	}
	return p, true
}

// timeKey is a sort key in time order, then id.
func timeKey(unixNano int64, id string) string { return fmt.Sprintf("%020d %s", unixNano, id) }
