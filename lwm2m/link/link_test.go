package link

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"pgregory.net/rapid"
)

func TestParseEncodeSpecExamples(t *testing.T) {
	// Payloads as printed in OMA LwM2M 1.1 Core §6.2.1 (Register), §5.4.2
	// (Discover) and §5.2.7.3 (Bootstrap-Discover); each must re-encode byte
	// for byte.
	tests := []struct {
		name  string
		in    string
		links int
	}{
		{"register 1.0", "</1/0>,</1/1>,</2/0>,</2/1>,</2/2>,</2/3>,</2/4>,</3/0>,</4/0>,</5>", 10},
		{"register alt path", `</lwm2m>;rt="oma.lwm2m",</lwm2m/1/0>,</lwm2m/2/0>,</lwm2m/3/0>,</lwm2m/4/0>,</lwm2m/5>`, 6},
		{"register ct", `</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>;ver=1.1,</3311/0>,</3311/1>`, 5},
		{"discover object", "</3/0>;pmin=10;pmax=60,</3/0/1>,</3/0/2>,</3/0/3>,</3/0/4>,</3/0/6>;dim=8,</3/0/7>;dim=8;gt=50;lt=42.2,</3/0/8>;dim=8,</3/0/11>,</3/0/16>", 10},
		{"discover resource", "</3/0/7>;dim=8;pmin=10;pmax=60;gt=50;lt=42.2", 1},
		{"bootstrap discover", `</>;lwm2m=1.1,</0/0>;ssid=101;uri="coaps://server_1.example.com",</0/1>;ssid=102;uri="coap://server_2.example.com",</0/2>,</1/0>;ssid=101,</1/1>;ssid=102,</3/0>,</4/0>`, 8},
		{"bare param", "</3/0/13>;obs", 1},
		{"escaped", `</x>;title="a \"b\" \\ c"`, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			links, err := Parse([]byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(links) != tt.links {
				t.Fatalf("got %d links, want %d", len(links), tt.links)
			}
			if got := string(Encode(links)); got != tt.in {
				t.Fatalf("Encode:\n got %s\nwant %s", got, tt.in)
			}
		})
	}
}

func TestParseDetails(t *testing.T) {
	links, err := Parse([]byte(" </3/0/7>;dim=8 ;\n pmin=10,\r\n\t</x>;title=\"a,b;c\";obs "))
	if err != nil {
		t.Fatal(err)
	}
	want := []Link{
		{Target: "/3/0/7", Params: []Param{{"dim", "8", true, false}, {"pmin", "10", true, false}}},
		{Target: "/x", Params: []Param{{"title", "a,b;c", true, true}, {"obs", "", false, false}}},
	}
	if !reflect.DeepEqual(links, want) {
		t.Fatalf("got %#v\nwant %#v", links, want)
	}
	if v, ok := links[0].Get("dim"); !ok || v != "8" {
		t.Fatal("Get")
	}
	if links[0].Has("pmax") || !links[1].Has("obs") {
		t.Fatal("Has")
	}
	if l, err := Parse(nil); err != nil || l != nil {
		t.Fatal("empty payload")
	}
	if l, err := Parse([]byte("  \n")); err != nil || l != nil {
		t.Fatal("blank payload")
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in  string
		err error
	}{
		{"/3/0", ErrSyntax},
		{"<3/0", ErrSyntax},
		{"</3/0>,", ErrSyntax},
		{"</3/0>;", ErrSyntax},
		{"</3/0>;=1", ErrSyntax},
		{"</3/0>;a=", ErrSyntax},
		{`</3/0>;a="x`, ErrSyntax},
		{`</3/0>;a="x\`, ErrSyntax},
		{"</3/0>;a=\"x\x01\"", ErrSyntax},
		{"</3/0>;a=b c", ErrSyntax},
		{"</3 0>", ErrSyntax},
		{"</3/0></4>", ErrSyntax},
		{"</3/0>;a=1,,</4>", ErrSyntax},
		{"</a>" + strings.Repeat(";p", MaxParams+1), ErrLimit},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			if !errors.Is(err, tt.err) {
				t.Errorf("Parse(%q) = %v, want %v", tt.in, err, tt.err)
			}
			var se *SyntaxError
			if err != nil && !errors.As(err, &se) {
				t.Errorf("Parse(%q): error %T not *SyntaxError", tt.in, err)
			}
		})
	}
	if _, err := ParseN([]byte("</1>,</2>,</3>"), 2); !errors.Is(err, ErrLimit) {
		t.Errorf("ParseN limit: %v", err)
	}
	if _, err := Parse(make([]byte, MaxInput+1)); !errors.Is(err, ErrLimit) {
		t.Errorf("MaxInput: %v", err)
	}
}

func TestRegistration(t *testing.T) {
	links, err := Parse([]byte(`</lwm2m>;rt="oma.lwm2m";ct="60 110 112 11542 11543",</lwm2m/1/0>,</lwm2m/3/0>;ver=1.1,</lwm2m/5>,</lwm2m/3311/0>;ver=1.0`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseRegistration(links)
	if err != nil {
		t.Fatal(err)
	}
	want := Registration{
		RootPath:       "/lwm2m",
		ContentFormats: []uint16{60, 110, 112, 11542, 11543},
		Objects: []ObjectLink{
			{Path: path.Instance(1, 0)}, {Path: path.Instance(3, 0), Version: "1.1"},
			{Path: path.Object(5)}, {Path: path.Instance(3311, 0), Version: "1.0"},
		},
	}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("got %+v\nwant %+v", r, want)
	}
	back, err := ParseRegistration(r.Links())
	if err != nil || !reflect.DeepEqual(back, want) {
		t.Fatalf("round trip %+v, %v", back, err)
	}
	if got := string(Encode(r.Links())); got != `</lwm2m>;rt="oma.lwm2m";ct="60 110 112 11542 11543",</lwm2m/1/0>,</lwm2m/3/0>;ver=1.1,</lwm2m/5>,</lwm2m/3311/0>;ver=1.0` {
		t.Fatalf("encode %s", got)
	}

	bad := []string{
		"</1/0/1>",
		"</1/0>,</1/0>",
		"</a/0>",
		"</3/0>;ver=x",
		`</lwm2m>;rt="oma.lwm2m",</1/0>`,
		`</>;rt="oma.lwm2m";ct=abc`,
		"</65535>",
	}
	for _, s := range bad {
		links, err := Parse([]byte(s))
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if _, err := ParseRegistration(links); !errors.Is(err, ErrAttribute) {
			t.Errorf("ParseRegistration(%s) = %v, want ErrAttribute", s, err)
		}
	}
}

func TestAttributes(t *testing.T) {
	links, _ := Parse([]byte(`</3/0/7>;dim=8;pmin=10;pmax=60;gt=50;lt=42.2;st=1;epmin=1;epmax=5;edge=1;con=0;hqmax=3;ver=1.2;rt="x"`))
	a, err := links[0].Attributes()
	if err != nil {
		t.Fatal(err)
	}
	if *a.Dim != 8 || *a.Pmin != 10 || *a.Pmax != 60 || *a.Gt != 50 || *a.Lt != 42.2 || *a.St != 1 ||
		*a.Epmin != 1 || *a.Epmax != 5 || *a.Edge != 1 || *a.Con != 0 || *a.Hqmax != 3 || a.Ver != "1.2" {
		t.Fatalf("attributes %+v", a)
	}
	got := string(AppendLink(nil, PathLink(path.MustParse("/3/0/7"), a)))
	if got != "</3/0/7>;dim=8;ver=1.2;pmin=10;pmax=60;gt=50;lt=42.2;st=1;epmin=1;epmax=5;edge=1;con=0;hqmax=3" {
		t.Fatalf("PathLink %s", got)
	}
	b := Attributes{SSID: Ptr[uint16](101), URI: "coaps://server_1.example.com"}
	if got := string(AppendLink(nil, PathLink(path.Instance(0, 0), b))); got != `</0/0>;ssid=101;uri="coaps://server_1.example.com"` {
		t.Fatalf("bootstrap link %s", got)
	}

	for _, s := range []string{"</a>;pmin=-1", "</a>;gt=x", "</a>;gt=NaN", "</a>;edge=2", "</a>;dim=70000", "</a>;ssid=0", "</a>;st=-1"} {
		t.Run(s, func(t *testing.T) {
			l, err := Parse([]byte(s))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l[0].Attributes(); !errors.Is(err, ErrAttribute) {
				t.Errorf("%s: %v", s, err)
			}
		})
	}
}

func TestParseQuery(t *testing.T) {
	a, unset, err := ParseQuery([]string{"pmin=10", "pmax=60", "gt=5", "lt=1", "st=1", "epmax"})
	if err != nil {
		t.Fatal(err)
	}
	if *a.Pmin != 10 || *a.Pmax != 60 || *a.Gt != 5 || !reflect.DeepEqual(unset, []string{"epmax"}) {
		t.Fatalf("%+v %v", a, unset)
	}
	for _, q := range [][]string{
		{"pmin=60", "pmax=10"},
		{"lt=4", "gt=5", "st=1"},
		{"epmin=5", "epmax=5"},
		{"foo=1"},
		{"pmin=1", "pmin=2"},
		{"pmin=x"},
	} {
		t.Run(strings.Join(q, "&"), func(t *testing.T) {
			if _, _, err := ParseQuery(q); !errors.Is(err, ErrAttribute) {
				t.Errorf("ParseQuery(%v) = %v", q, err)
			}
		})
	}
}

func genLink() *rapid.Generator[Link] {
	target := rapid.StringMatching(`/[a-z0-9/._~;,=%-]{0,12}`)
	name := rapid.StringMatching(`[a-z][a-z0-9.!#$&+^_|~-]{0,6}`)
	value := rapid.StringMatching(`[ -~\t]{0,10}`)
	return rapid.Custom(func(t *rapid.T) Link {
		l := Link{Target: target.Draw(t, "target")}
		n := rapid.IntRange(0, 5).Draw(t, "n")
		for k := 0; k < n; k++ {
			p := Param{Name: name.Draw(t, "name")}
			if rapid.Bool().Draw(t, "hasValue") {
				p.HasValue = true
				p.Value = value.Draw(t, "value")
				p.Quoted = !isPtoken(p.Value) || rapid.Bool().Draw(t, "quoted")
			}
			l.Params = append(l.Params, p)
		}
		return l
	})
}

func TestRapidRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		links := rapid.SliceOfN(genLink(), 1, 5).Draw(t, "links")
		for _, l := range links {
			if err := l.Validate(); err != nil {
				t.Fatalf("generated invalid link %+v: %v", l, err)
			}
		}
		enc := Encode(links)
		got, err := Parse(enc)
		if err != nil {
			t.Fatalf("Parse(%s): %v", enc, err)
		}
		if !reflect.DeepEqual(got, links) {
			t.Fatalf("round trip of %s\n got %#v\nwant %#v", enc, got, links)
		}
	})
}

func FuzzParse(f *testing.F) {
	seeds := []string{
		"</1/0>,</1/1>,</3/0>,</5>",
		`</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>;ver=1.1`,
		"</3/0/7>;dim=8;pmin=10;pmax=60;gt=50;lt=42.2",
		`</0/0>;ssid=101;uri="coaps://s.example.com"`,
		`</x>;title="a \"b\""`, "</x>;obs", "", "<", `</x>;a="`, "</a>;b*=UTF-8''x",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		links, err := Parse(data)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("untyped error %T", err)
			}
			return
		}
		enc := Encode(links)
		again, err := Parse(enc)
		if err != nil {
			t.Fatalf("re-parse of %q (from %q): %v", enc, data, err)
		}
		if !reflect.DeepEqual(again, links) {
			t.Fatalf("unstable: %q -> %#v -> %#v", data, links, again)
		}
		for _, l := range links {
			_, _ = l.Attributes()
		}
		_, _ = ParseRegistration(links)
	})
}

func ExampleParseRegistration() {
	links, err := Parse([]byte(`</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>;ver=1.1,</3311/0>`))
	if err != nil {
		fmt.Println(err)
		return
	}
	r, err := ParseRegistration(links)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(r.RootPath, r.ContentFormats)
	for _, o := range r.Objects {
		fmt.Printf("%v ver=%q\n", o.Path, o.Version)
	}
	// Output:
	// / [11543]
	// /1/0 ver=""
	// /3/0 ver="1.1"
	// /3311/0 ver=""
}

func ExampleEncode() {
	a := Attributes{Dim: Ptr[uint16](8), Pmin: Ptr[uint32](10)}
	fmt.Println(string(Encode([]Link{PathLink(path.Instance(3, 0), Attributes{}), PathLink(path.Resource(3, 0, 7), a)})))
	// Output: </3/0>,</3/0/7>;dim=8;pmin=10
}
