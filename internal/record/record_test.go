package record

import (
	"errors"
	"testing"
	"time"

	"pgregory.net/rapid"
)

var errTest = errors.New("test: corrupt")

func TestRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := rapid.String().Draw(t, "s")
		b := rapid.SliceOf(rapid.Byte()).Draw(t, "b")
		tm := time.Unix(0, rapid.Int64Range(1, 1<<62).Draw(t, "t"))
		buf := AppendString(nil, s)
		buf = AppendBytes(buf, b)
		buf = append(buf, 7)
		buf = AppendTime(buf, tm)
		buf = AppendTime(buf, time.Time{})
		d := NewDecoder(buf, errTest)
		gs, gb, gy, gt, gz := d.String(NoLimit), d.Bytes(NoLimit), d.Byte(), d.Time(), d.Time()
		if err := d.Finish(); err != nil {
			t.Fatal(err)
		}
		if gs != s || string(gb) != string(b) || gy != 7 || !gt.Equal(tm) || !gz.IsZero() {
			t.Fatalf("round trip: %q %x %d %v %v", gs, gb, gy, gt, gz)
		}
	})
}

func TestErrors(t *testing.T) {
	cases := map[string][]byte{
		"empty":          {},
		"truncated str":  {5, 'a'},
		"bad varint":     {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"over max":       AppendString(nil, "toolong"),
		"trailing bytes": append(AppendString(nil, "ok"), 1),
	}
	for name, data := range cases {
		d := NewDecoder(data, errTest)
		_ = d.String(4)
		if err := d.Finish(); !errors.Is(err, errTest) {
			t.Errorf("%s: %v, want an error wrapping the sentinel", name, err)
		}
		// After a failure every read is a zero value.
		if d.Byte() != 0 || d.Uvarint() != 0 || d.Raw(NoLimit) != nil {
			t.Errorf("%s: reads after failure return data", name)
		}
	}
	d := NewDecoder([]byte{3, 1, 2}, errTest)
	if n := d.Count(2); n != 0 || d.Err() == nil {
		t.Fatal("count over limit accepted")
	}
}

func FuzzDecoder(f *testing.F) {
	f.Add(AppendTime(AppendString(nil, "x"), time.Unix(5, 0)))
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewDecoder(data, errTest)
		for d.Err() == nil && d.Remaining() > 0 {
			switch d.Byte() % 6 {
			case 0:
				d.String(64)
			case 1:
				d.Time()
			case 2:
				d.Count(8)
			case 3:
				d.Int32()
			case 4:
				d.Bytes(NoLimit)
			default:
				d.Take(2)
			}
		}
		if err := d.Err(); err != nil && !errors.Is(err, errTest) {
			t.Fatalf("error %v does not wrap the sentinel", err)
		}
	})
}
