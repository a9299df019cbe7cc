package oscore

import (
	"container/list"
	"time"
)

// lru is a bounded map with per-entry expiry, oldest first out. It is not
// safe for concurrent use; Conn guards it with its mutex.
type lru[K comparable, V any] struct {
	max     int
	maxCost int
	cost    int
	ll      *list.List
	m       map[K]*list.Element
	costOf  func(V) int
	evicted int64 // entries dropped before their expiry
}

type lruEntry[K comparable, V any] struct {
	k   K
	v   V
	exp time.Time
}

func newLRU[K comparable, V any](max, maxCost int, costOf func(V) int) *lru[K, V] {
	return &lru[K, V]{max: max, maxCost: maxCost, ll: list.New(), m: map[K]*list.Element{}, costOf: costOf}
}

func (c *lru[K, V]) get(k K, now time.Time) (V, bool) {
	var zero V
	el, ok := c.m[k]
	if !ok {
		return zero, false
	}
	e := el.Value.(*lruEntry[K, V])
	if now.After(e.exp) {
		c.remove(el)
		return zero, false
	}
	return e.v, true
}

// put stores v under k until exp, moving it to the young end.
func (c *lru[K, V]) put(k K, v V, exp time.Time, now time.Time) {
	if el, ok := c.m[k]; ok {
		c.remove(el)
	}
	e := &lruEntry[K, V]{k: k, v: v, exp: exp}
	c.m[k] = c.ll.PushBack(e)
	if c.costOf != nil {
		c.cost += c.costOf(v)
	}
	c.prune(now)
}

// touch extends k's expiry and marks it young.
func (c *lru[K, V]) touch(k K, exp time.Time) {
	if el, ok := c.m[k]; ok {
		el.Value.(*lruEntry[K, V]).exp = exp
		c.ll.MoveToBack(el)
	}
}

func (c *lru[K, V]) remove(el *list.Element) {
	e := el.Value.(*lruEntry[K, V])
	delete(c.m, e.k)
	c.ll.Remove(el)
	if c.costOf != nil {
		c.cost -= c.costOf(e.v)
	}
}

// prune drops expired entries at the old end and, while over a bound, the
// oldest entries (counted in evicted).
func (c *lru[K, V]) prune(now time.Time) {
	for el := c.ll.Front(); el != nil; {
		next := el.Next()
		e := el.Value.(*lruEntry[K, V])
		over := len(c.m) > c.max || (c.maxCost > 0 && c.cost > c.maxCost)
		if now.After(e.exp) {
			c.remove(el)
		} else if over {
			c.remove(el)
			c.evicted++
		} else {
			break
		}
		el = next
	}
}
