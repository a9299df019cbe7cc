package pipe_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/pipe"
	"pgregory.net/rapid"
)

func read(t *testing.T, c *pipe.Conn, wait time.Duration) ([]byte, net.Addr, error) {
	t.Helper()
	buf := make([]byte, 70000)
	_ = c.SetReadDeadline(time.Now().Add(wait))
	n, from, err := c.ReadFrom(buf)
	return buf[:n], from, err
}

func TestPairDelivers(t *testing.T) {
	a, b, err := pipe.New(pipe.WithNames("srv", "dev"))
	if err != nil {
		t.Fatal(err)
	}
	if a.LocalAddr().Network() != "pipe" || a.LocalAddr().String() != "srv" {
		t.Fatalf("addr %v", a.LocalAddr())
	}
	if _, err := a.WriteTo([]byte("hi"), b.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	got, from, err := read(t, b, time.Second)
	if err != nil || string(got) != "hi" || from.String() != "srv" {
		t.Fatalf("got %q from %v: %v", got, from, err)
	}
}

func TestTooLarge(t *testing.T) {
	p := bearer.UDPParams("sms")
	p.MaxDatagram, p.PreferredDatagram = 140, 140
	a, b, err := pipe.New(pipe.WithParams(p))
	if err != nil {
		t.Fatal(err)
	}
	if a.Params().MaxDatagram != 140 {
		t.Fatal("params not reported")
	}
	_, err = a.WriteTo(make([]byte, 141), b.LocalAddr())
	if !errors.Is(err, bearer.ErrTooLarge) {
		t.Fatalf("err %v, want ErrTooLarge", err)
	}
	if _, err := a.WriteTo(make([]byte, 140), b.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if st := a.Stats(); st.TooLarge != 1 || st.Sent != 1 || st.Largest != 140 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDeadlineAndClose(t *testing.T) {
	a, b, err := pipe.New()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, _, err = read(t, a, 20*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("err %v, want a timeout", err)
	}
	if el := time.Since(start); el < 20*time.Millisecond || el > 5*time.Second {
		t.Fatalf("deadline after %v", el)
	}
	// A past deadline fails at once; clearing it lets a read block again.
	_ = a.SetReadDeadline(time.Now().Add(-time.Second))
	if _, _, err := a.ReadFrom(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("past deadline: %v", err)
	}
	_ = a.SetReadDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() {
		_, _, err := a.ReadFrom(make([]byte, 10))
		errc <- err
	}()
	select {
	case err := <-errc:
		t.Fatalf("read returned %v with no deadline", err)
	case <-time.After(20 * time.Millisecond):
	}
	_ = a.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	if _, err := a.WriteTo([]byte{1}, b.LocalAddr()); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	// Writes to a closed peer vanish like UDP datagrams to a closed port.
	if _, err := b.WriteTo([]byte{1}, a.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if b.Stats().Unroutable != 1 {
		t.Fatalf("stats %+v", b.Stats())
	}
}

func TestQueueOverflowCounted(t *testing.T) {
	a, b, err := pipe.New(pipe.WithQueue(4))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		_, _ = a.WriteTo([]byte{byte(i)}, b.LocalAddr())
	}
	if st := a.Stats(); st.Delivered != 4 || st.Overflow != 6 {
		t.Fatalf("stats %+v", st)
	}
}

func TestHub(t *testing.T) {
	h, err := pipe.NewHub()
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := h.Conn("server")
	d1, _ := h.Conn("d1")
	d2, _ := h.Conn("d2")
	if _, err := h.Conn("d1"); !errors.Is(err, pipe.ErrNameInUse) {
		t.Fatalf("duplicate name: %v", err)
	}
	_, _ = d1.WriteTo([]byte("1"), srv.LocalAddr())
	_, _ = d2.WriteTo([]byte("2"), srv.LocalAddr())
	seen := map[string]string{}
	for range 2 {
		p, from, err := read(t, srv, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		seen[from.String()] = string(p)
	}
	if seen["d1"] != "1" || seen["d2"] != "2" {
		t.Fatalf("seen %v", seen)
	}
}

// faultRun sends n datagrams with the given faults and seed and returns
// the sender's stats once everything has arrived.
func faultRun(t *rapid.T, f pipe.Faults, seed int64, n int) pipe.Stats {
	a, b, err := pipe.New(pipe.WithFaults(f), pipe.WithSeed(seed), pipe.WithQueue(4*n))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	for i := range n {
		_, _ = a.WriteTo([]byte{byte(i)}, b.LocalAddr())
	}
	st := a.Stats()
	deadline := time.Now().Add(10 * time.Second)
	for st.Delivered < st.Sent-st.Lost+st.Duplicated && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
		st = a.Stats()
	}
	return st
}

func TestFaultsAreSeededAndConserved(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		f := pipe.Faults{
			Loss:         rapid.Float64Range(0, 1).Draw(t, "loss"),
			Duplicate:    rapid.Float64Range(0, 1).Draw(t, "dup"),
			Reorder:      rapid.Float64Range(0, 1).Draw(t, "reorder"),
			ReorderDelay: time.Millisecond,
		}
		seed := rapid.Int64().Draw(t, "seed")
		n := rapid.IntRange(1, 200).Draw(t, "n")
		s1 := faultRun(t, f, seed, n)
		s2 := faultRun(t, f, seed, n)
		// Same seed, same decisions.
		if s1.Lost != s2.Lost || s1.Duplicated != s2.Duplicated || s1.Reordered != s2.Reordered {
			t.Fatalf("not deterministic: %+v vs %+v", s1, s2)
		}
		// Every datagram is lost or delivered (twice if duplicated).
		if s1.Sent != int64(n) || s1.Delivered != s1.Sent-s1.Lost+s1.Duplicated {
			t.Fatalf("not conserved: %+v", s1)
		}
		if f.Loss == 0 && s1.Lost != 0 || f.Loss == 1 && s1.Lost != int64(n) {
			t.Fatalf("loss %v gave %+v", f.Loss, s1)
		}
	})
}

func TestDelayAndReorder(t *testing.T) {
	a, b, err := pipe.New(pipe.WithFaults(pipe.Faults{Delay: 30 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, _ = a.WriteTo([]byte("x"), b.LocalAddr())
	if _, _, err := read(t, b, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 30*time.Millisecond {
		t.Fatalf("delivered after %v, want ≥ 30ms", el)
	}
	// Reorder 1.0 on the first datagram only: the second overtakes it.
	a.SetFaults(pipe.Faults{Reorder: 1, ReorderDelay: 50 * time.Millisecond})
	_, _ = a.WriteTo([]byte("first"), b.LocalAddr())
	a.SetFaults(pipe.Faults{})
	_, _ = a.WriteTo([]byte("second"), b.LocalAddr())
	var order []string
	for range 2 {
		p, _, err := read(t, b, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		order = append(order, string(p))
	}
	if fmt.Sprint(order) != "[second first]" {
		t.Fatalf("order %v", order)
	}
}
