package clocktest

import (
	"testing"
	"time"
)

func TestManual(t *testing.T) {
	start := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	c := New(start)
	now, _ := c.After(0)
	if got := <-now; !got.Equal(start) {
		t.Fatalf("After(0) fired at %v", got)
	}
	a, _ := c.After(2 * time.Second)
	b, stopB := c.After(5 * time.Second)
	if !c.ArmedBy(start.Add(2*time.Second)) || c.ArmedBy(start.Add(time.Second)) {
		t.Fatal("ArmedBy")
	}
	c.Advance(time.Second)
	select {
	case <-a:
		t.Fatal("fired early")
	default:
	}
	c.Advance(time.Second)
	if got := <-a; !got.Equal(start.Add(2 * time.Second)) {
		t.Fatalf("fired at %v", got)
	}
	if !stopB() || stopB() {
		t.Fatal("stop of a pending wait")
	}
	c.Advance(time.Hour)
	select {
	case <-b:
		t.Fatal("stopped wait fired")
	default:
	}
	if !c.Now().Equal(start.Add(time.Hour + 2*time.Second)) {
		t.Fatalf("now %v", c.Now())
	}
}
