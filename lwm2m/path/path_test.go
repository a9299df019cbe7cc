package path

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantLen int
		err     error
	}{
		{"/", "/", 0, nil},
		{"/3", "/3", 1, nil},
		{"/3/", "/3", 1, nil},
		{"/3/0", "/3/0", 2, nil},
		{"/3/0/1", "/3/0/1", 3, nil},
		{"/3/0/7/1", "/3/0/7/1", 4, nil},
		{"/65534/65534/65534/65534", "/65534/65534/65534/65534", 4, nil},
		{"/0003/0", "/3/0", 2, nil},
		{"/00000000003", "/3", 1, nil},
		{"", "", 0, ErrSyntax},
		{"3/0", "", 0, ErrSyntax},
		{"//", "", 0, ErrSyntax},
		{"/3//1", "", 0, ErrSyntax},
		{"/3/0//", "", 0, ErrSyntax},
		{"/a", "", 0, ErrSyntax},
		{"/+3", "", 0, ErrSyntax},
		{"/-1", "", 0, ErrSyntax},
		{"/3 ", "", 0, ErrSyntax},
		{"/65535", "", 0, ErrRange},
		{"/3/65535", "", 0, ErrRange},
		{"/99999999999999999999", "", 0, ErrRange},
		{"/9999999999999999999a", "", 0, ErrSyntax},
		{"/1/2/3/4/5", "", 0, ErrDepth},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := Parse(tt.in)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Parse(%q) err = %v, want %v", tt.in, err, tt.err)
				}
				var pe *Error
				if !errors.As(err, &pe) {
					t.Fatalf("error %T is not *Error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if p.String() != tt.want || p.Len() != tt.wantLen {
				t.Fatalf("Parse(%q) = %v (len %d), want %v (len %d)", tt.in, p, p.Len(), tt.want, tt.wantLen)
			}
		})
	}
}

func TestAccessors(t *testing.T) {
	p := MustParse("/3/0/7/1")
	if p.ObjectID() != 3 || p.InstanceID() != 0 || p.ResourceID() != 7 || p.ResourceInstanceID() != 1 {
		t.Fatalf("ids of %v wrong: %v", p, p.IDs())
	}
	if !p.IsResourceInstance() || p.IsResource() {
		t.Fatal("level predicates wrong")
	}
	chain := []string{"/3/0/7/1", "/3/0/7", "/3/0", "/3", "/", "/"}
	q := p
	for _, want := range chain {
		if q.String() != want {
			t.Fatalf("parent chain got %v want %v", q, want)
		}
		q = q.Parent()
	}
	if got := p.Truncate(2); got != Instance(3, 0) {
		t.Fatalf("Truncate(2) = %v", got)
	}
	if _, err := p.Child(1); !errors.Is(err, ErrDepth) {
		t.Fatalf("Child on resource instance: %v", err)
	}
	if _, err := Root.Child(65535); !errors.Is(err, ErrRange) {
		t.Fatalf("Child 65535: %v", err)
	}
	c, err := Instance(3, 0).Child(9)
	if err != nil || c != Resource(3, 0, 9) {
		t.Fatalf("Child = %v, %v", c, err)
	}
	if id, ok := p.ID(2); !ok || id != 7 {
		t.Fatal("ID(2)")
	}
	if _, ok := p.ID(4); ok {
		t.Fatal("ID(4) ok")
	}
	if !p.HasPrefix(Root) || !p.HasPrefix(Object(3)) || p.HasPrefix(Object(4)) || Object(3).HasPrefix(p) {
		t.Fatal("HasPrefix")
	}
	if !Overlaps(Object(3), p) || Overlaps(Instance(3, 1), p) {
		t.Fatal("Overlaps")
	}
	if _, err := New(1, 2, 3, 4, 5); !errors.Is(err, ErrDepth) {
		t.Fatal("New depth")
	}
	if _, err := New(65535); !errors.Is(err, ErrRange) {
		t.Fatal("New range")
	}
	if Object(65535).Valid() || !Object(65534).Valid() {
		t.Fatal("Valid")
	}
}

func TestSegments(t *testing.T) {
	for _, s := range []string{"/", "/1", "/1/2", "/1/2/3", "/1/2/3/4"} {
		t.Run(s, func(t *testing.T) {
			p := MustParse(s)
			q, err := FromSegments(p.Segments())
			if err != nil || q != p {
				t.Fatalf("FromSegments(%v) = %v, %v", p.Segments(), q, err)
			}
		})
	}
	if p, err := FromSegments([]string{""}); err != nil || !p.IsRoot() {
		t.Fatal("single empty segment is root")
	}
	if _, err := FromSegments([]string{"3", ""}); !errors.Is(err, ErrSyntax) {
		t.Fatal("empty segment")
	}
	if _, err := FromSegments([]string{"1", "2", "3", "4", "5"}); !errors.Is(err, ErrDepth) {
		t.Fatal("depth")
	}
}

func TestCompareOrder(t *testing.T) {
	in := []Path{
		MustParse("/3/1"), MustParse("/3/0/1"), MustParse("/3"), Root,
		MustParse("/3/0/7/1"), MustParse("/3/0/7/0"), MustParse("/1/0"), MustParse("/3/0/7"), MustParse("/3/0"),
	}
	slices.SortFunc(in, Compare)
	var got []string
	for _, p := range in {
		got = append(got, p.String())
	}
	want := "/ /1/0 /3 /3/0 /3/0/1 /3/0/7 /3/0/7/0 /3/0/7/1 /3/1"
	if strings.Join(got, " ") != want {
		t.Fatalf("order %v\nwant  %v", got, want)
	}
}

func genPath() *rapid.Generator[Path] {
	return rapid.Custom(func(t *rapid.T) Path {
		ids := rapid.SliceOfN(rapid.Uint16Range(0, MaxID), 0, 4).Draw(t, "ids")
		p, err := New(ids...)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		return p
	})
}

func TestRapidRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := genPath().Draw(t, "p")
		q, err := Parse(p.String())
		if err != nil || q != p {
			t.Fatalf("Parse(String(%v)) = %v, %v", p, q, err)
		}
		b, _ := p.MarshalText()
		var r Path
		if err := r.UnmarshalText(b); err != nil || r != p {
			t.Fatalf("text round trip %v: %v %v", p, r, err)
		}
	})
}

func TestRapidCompare(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b := genPath().Draw(t, "a"), genPath().Draw(t, "b")
		if Compare(a, b) != -Compare(b, a) {
			t.Fatal("antisymmetry")
		}
		if (Compare(a, b) == 0) != (a == b) {
			t.Fatal("equality")
		}
		if a.HasPrefix(b) && a != b && Compare(b, a) != -1 {
			t.Fatal("ancestor must sort first")
		}
		// Textual order of segments agrees with numeric order after parse.
		if Compare(a, a.Parent()) < 0 {
			t.Fatal("parent after child")
		}
	})
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"/", "/3", "/3/0", "/3/0/1", "/3/0/7/1", "/3/0/", "//", "/65535", "/1/2/3/4/5", "/0003", "3", "/-1", "/99999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("untyped error %T", err)
			}
			return
		}
		if !p.Valid() || p.Len() > 4 {
			t.Fatalf("invalid path accepted: %q -> %v", s, p)
		}
		q, err := Parse(p.String())
		if err != nil || q != p {
			t.Fatalf("reparse %q -> %v -> %v, %v", s, p, q, err)
		}
	})
}

func ExampleParse() {
	p, err := Parse("/3/0/7/1")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p, p.Len(), p.ObjectID(), p.ResourceID(), p.Parent())
	_, err = Parse("/3/65535")
	fmt.Println(errors.Is(err, ErrRange))
	// Output:
	// /3/0/7/1 4 3 7 /3/0/7
	// true
}
