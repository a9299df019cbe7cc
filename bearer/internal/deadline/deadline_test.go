package deadline

import (
	"testing"
	"time"
)

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func TestDeadline(t *testing.T) {
	d := New()
	if closed(d.Wait()) {
		t.Fatal("a new deadline is expired")
	}
	d.Set(time.Now().Add(-time.Second))
	if !closed(d.Wait()) {
		t.Fatal("a past deadline is not expired")
	}
	d.Set(time.Time{})
	if closed(d.Wait()) {
		t.Fatal("a cleared deadline is still expired")
	}
	d.Set(time.Now().Add(20 * time.Millisecond))
	w := d.Wait()
	if closed(w) {
		t.Fatal("expired too soon")
	}
	select {
	case <-w:
	case <-time.After(5 * time.Second):
		t.Fatal("deadline never expired")
	}
	d.Set(time.Now().Add(time.Hour))
	if closed(d.Wait()) {
		t.Fatal("moving an expired deadline to the future did not reset it")
	}
	d.Set(time.Now().Add(time.Hour)) // stop a pending timer and set again
	d.Set(time.Time{})
	if closed(d.Wait()) {
		t.Fatal("cleared deadline expired")
	}
}
