package bearer

import (
	"testing"
	"time"
	"unsafe"

	"pgregory.net/rapid"
)

func TestDedupCache(t *testing.T) {
	var c dedupCache
	c.init(3)
	var m Counters
	now := time.Unix(0, 0)
	k := func(i int) midKey { return midKey{"p", uint16(i)} }
	tok := []byte{1}
	tests := []struct {
		step    string
		key     int
		token   []byte
		after   time.Duration
		wantDup bool
	}{
		{"new", 1, tok, 0, false},
		{"dup", 1, tok, time.Second, true},
		{"other token same MID", 1, []byte{2}, time.Second, false},
		{"dup of replacement", 1, []byte{2}, time.Second, true},
		{"second", 2, tok, 0, false},
		{"third", 3, tok, 0, false},
		{"fourth evicts oldest", 4, tok, 0, false},
		{"evicted one is new again", 1, []byte{2}, 0, false},
		{"expired is new", 3, tok, 20 * time.Second, false},
	}
	for _, tc := range tests {
		t.Run(tc.step, func(t *testing.T) {
			now = now.Add(tc.after)
			dup, _ := c.check(k(tc.key), tc.token, 10*time.Second, now, &m)
			if dup != tc.wantDup {
				t.Fatalf("%s: dup %v", tc.step, dup)
			}
			if c.len() > 3 {
				t.Fatalf("%s: %d entries", tc.step, c.len())
			}
			if err := c.verify(); err != nil {
				t.Fatalf("%s: %v", tc.step, err)
			}
		})
	}
	if m.Get(EventDedupEvicted) == 0 {
		t.Fatal("eviction not counted")
	}
	c.setReply(k(3), []byte{9})
	if dup, hit := c.check(k(3), tok, time.Second, now, &m); !dup || len(hit.reply) != 1 {
		t.Fatalf("stored reply not returned: %v %v", dup, hit.reply)
	}
}

// TestDedupCacheBounded: any sequence of checks keeps the map within its
// bound and the map and FIFO consistent.
func TestDedupCacheBounded(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		max := rapid.IntRange(1, 20).Draw(rt, "max")
		var c dedupCache
		c.init(max)
		var m Counters
		now := time.Unix(0, 0)
		ops := rapid.SliceOfN(rapid.IntRange(0, 40), 1, 3000).Draw(rt, "ops")
		for _, op := range ops {
			now = now.Add(time.Duration(op%7) * 100 * time.Millisecond)
			key := midKey{[]string{"p", "q", "r"}[op%3], uint16(op % 30)}
			if op == 40 {
				c.forget(key)
				continue
			}
			c.check(key, []byte{byte(op % 2)}, time.Second, now, &m)
			if c.len() > max {
				rt.Fatalf("%d entries > %d", c.len(), max)
			}
			if err := c.verify(); err != nil {
				rt.Fatal(err)
			}
		}
	})
}

// TestDedupSlotSize: the ring's slot stays at 48 bytes (a campaign keeps
// hundreds of thousands of them).
func TestDedupSlotSize(t *testing.T) {
	if n := unsafe.Sizeof(dedupSlot{}); n != 48 {
		t.Fatalf("dedupSlot is %d bytes", n)
	}
}
