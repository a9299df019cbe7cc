package queue

import "container/heap"

type timerKind uint8

const (
	timerExpire timerKind = iota + 1 // a request's expiry
	timerWake                        // a wake-up timeout or a deferred wake-up
	timerPrune                       // result retention and device table sweep
	timerRetry                       // a request leased by another node: look again
)

// timer is one entry of the Manager's single timer heap. Entries are
// checked when they fire (lazy deletion): a stale one does nothing.
type timer struct {
	at   int64 // Unix ns
	kind timerKind
	id   uint64
	dev  *device
}

type timerHeap []timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = timer{}
	*h = old[:len(old)-1]
	return t
}

func (h *timerHeap) push(t timer) { heap.Push(h, t) }
func (h *timerHeap) pop() timer   { return heap.Pop(h).(timer) }
