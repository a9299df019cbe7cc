package alpha

import "testing"

var vectors = []struct {
	in   int
	want int
}{{1, 21}, {2, 22}}

func TestPlainTable(t *testing.T) {
	tests := []struct {
		name string
		in   int
	}{{"one", 1}, {"two", 2}}
	for _, tc := range tests {
		if Long(tc.in, 0, 0, 0, 0, 0) != tc.in {
			t.Errorf("%s", tc.name)
		}
	}
}

func TestFileTable(t *testing.T) {
	for _, v := range vectors {
		if Long(v.in, 20, 0, 0, 0, 0) != v.want {
			t.Fatalf("%d", v.in)
		}
	}
}

func TestNamedTable(t *testing.T) {
	for _, tc := range []struct{ in, want int }{{1, 1}, {2, 2}} {
		t.Run("case", func(t *testing.T) {
			if Long(tc.in, 0, 0, 0, 0, 0) != tc.want {
				t.Error("differs")
			}
		})
	}
}

func TestValues(t *testing.T) {
	for _, in := range []int{1, 2, 3} {
		if Long(in, 0, 0, 0, 0, 0) != in {
			t.Error(in)
		}
	}
}
