package outbox

import (
	"fmt"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// checkIndex recomputes the heads from o.sched and compares with the index.
func checkIndex(t *rapid.T, o *Outbox) {
	o.mu.Lock()
	defer o.mu.Unlock()
	heads := map[string]uint64{}
	for id, s := range o.sched {
		if h, ok := heads[s.to]; s.pending && (!ok || id < h) {
			heads[s.to] = id
		}
	}
	var want []headRef
	for _, id := range heads {
		s := o.sched[id]
		want = append(want, headRef{id: id, expires: s.expires, nextTry: s.nextTry, to: s.to})
	}
	sort.Slice(want, func(i, j int) bool { return before(want[i].expires, want[i].id, want[j]) })
	if fmt.Sprint(want) != fmt.Sprint(o.heads) {
		t.Fatalf("heads\n got %v\nwant %v", o.heads, want)
	}
	n := 0
	for to, l := range o.pendTo {
		for i, id := range l {
			s := o.sched[id]
			if s == nil || !s.pending || s.to != to || (i > 0 && l[i-1] >= id) {
				t.Fatalf("pendTo[%s] = %v inconsistent at %d", to, l, id)
			}
			n++
		}
	}
	for _, s := range o.sched {
		if s.pending {
			n--
		}
	}
	if n != 0 {
		t.Fatalf("pendTo and sched disagree by %d", n)
	}
}

// TestIndexProperty: any sequence of enqueues, acceptances, retries and
// removals keeps the heads index equal to what the schedule implies.
func TestIndexProperty(t *testing.T) {
	dir := t.TempDir()
	run := 0
	rapid.Check(t, func(t *rapid.T) {
		run++
		o, err := Open(filepath.Join(dir, fmt.Sprintf("o%d.db", run)))
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		now := time.Now()
		var ids []uint64
		for step := rapid.IntRange(1, 40).Draw(t, "steps"); step > 0; step-- {
			switch op := rapid.IntRange(0, 3).Draw(t, "op"); {
			case op == 0 || len(ids) == 0:
				e := testEntry(fmt.Sprintf("+1555000%d", rapid.IntRange(0, 4).Draw(t, "to")), rapid.IntRange(1, 2).Draw(t, "segs"))
				e.Expires = now.Add(time.Duration(rapid.IntRange(1, 100).Draw(t, "exp")) * time.Minute)
				id, err := o.Enqueue(e)
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, id)
			case op == 1:
				id := ids[rapid.IntRange(0, len(ids)-1).Draw(t, "acc")]
				o.Accepted(id, 0, "+1", 1)
			case op == 2:
				id := ids[rapid.IntRange(0, len(ids)-1).Draw(t, "retry")]
				o.Retry(id, now.Add(time.Duration(rapid.IntRange(0, 60).Draw(t, "in"))*time.Second), nil)
			default:
				id := ids[rapid.IntRange(0, len(ids)-1).Draw(t, "rm")]
				o.Remove(id)
			}
			checkIndex(t, o)
		}
	})
}
