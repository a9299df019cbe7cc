package model

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"testing"
	"testing/fstest"

	"pgregory.net/rapid"
)

func TestCoreObjects(t *testing.T) {
	objs := Core()
	if len(objs) != 8 {
		t.Fatalf("%d core objects", len(objs))
	}
	for k, o := range objs {
		if int(o.ID) != k {
			t.Errorf("object %d at index %d", o.ID, k)
		}
		if err := o.Validate(); err != nil {
			t.Errorf("object %d: %v", o.ID, err)
		}
	}
	// Spot checks against the OMA definitions.
	r := DefaultRegistry()
	checks := []struct {
		obj, res uint16
		name     string
		ops      Operations
		multiple bool
		mand     bool
		typ      Type
	}{
		{0, 0, "LWM2M Server URI", NoOps, false, true, String},
		{0, 10, "Short Server ID", NoOps, false, false, Integer},
		{1, 1, "Lifetime", RW, false, true, Integer},
		{1, 8, "Registration Update Trigger", E, false, true, None},
		{1, 21, "Trigger", RW, false, false, Boolean},
		{2, 2, "ACL", RW, true, false, Integer},
		{3, 4, "Reboot", E, false, true, None},
		{3, 11, "Error Code", R, true, true, Integer},
		{3, 13, "Current Time", RW, false, false, Time},
		{3, 22, "ExtDevInfo", R, true, false, Objlnk},
		{4, 4, "IP Addresses", R, true, true, String},
		{5, 0, "Package", W, false, true, Opaque},
		{5, 3, "State", R, false, true, Integer},
		{6, 0, "Latitude", R, false, true, Float},
		{7, 6, "Start", E, false, true, None},
		{3311, 5850, "On/Off", RW, false, true, Boolean},
		{3311, 5851, "Dimmer", RW, false, false, Integer},
		{3311, 5805, "Cumulative active power", R, false, false, Float},
	}
	for _, c := range checks {
		t.Run(fmt.Sprintf("/%d/x/%d", c.obj, c.res), func(t *testing.T) {
			res, ok := r.Resource(c.obj, c.res)
			if !ok {
				t.Errorf("/%d/x/%d missing", c.obj, c.res)
				return
			}
			if res.Name != c.name || res.Operations != c.ops || res.Multiple != c.multiple || res.Mandatory != c.mand || res.Type != c.typ {
				t.Errorf("/%d/x/%d = %+v", c.obj, c.res, *res)
			}
		})
	}
	if _, ok := r.Resource(5, 4); ok {
		t.Error("/5/x/4 does not exist in Firmware Update")
	}
	if _, ok := r.Resource(9999, 0); ok {
		t.Error("unknown object resolved")
	}
	if got := r.IDs(); !reflect.DeepEqual(got, []uint16{0, 1, 2, 3, 4, 5, 6, 7, 21, 3311}) {
		t.Errorf("IDs %v", got)
	}
	if o, _ := r.Object(3); o.Multiple || !o.Mandatory {
		t.Error("Device is single and mandatory")
	}
	if o, _ := r.Object(3311); !o.Multiple || o.URN != "urn:oma:lwm2m:ext:3311" {
		t.Errorf("3311 %+v", o)
	}
}

func TestDDFRoundTripCore(t *testing.T) {
	for _, o := range append(Core(), Embedded()...) {
		b, err := MarshalDDF(o)
		if err != nil {
			t.Fatalf("%d: %v", o.ID, err)
		}
		back, err := ParseDDF(b)
		if err != nil {
			t.Fatalf("%d: %v\n%s", o.ID, err, b)
		}
		if len(back) != 1 || !reflect.DeepEqual(back[0], o) {
			t.Fatalf("object %d changed:\n%+v\n%+v", o.ID, back[0], o)
		}
	}
}

func TestParseDDFErrors(t *testing.T) {
	wrap := func(obj string) string {
		return `<?xml version="1.0"?><LWM2M>` + obj + `</LWM2M>`
	}
	good := `<Object ObjectType="MODefinition"><Name>X</Name><ObjectID>%s</ObjectID><MultipleInstances>%s</MultipleInstances><Mandatory>Optional</Mandatory><Resources>%s</Resources></Object>`
	item := `<Item ID="%s"><Name>r</Name><Operations>%s</Operations><MultipleInstances>Single</MultipleInstances><Mandatory>Optional</Mandatory><Type>%s</Type></Item>`
	tests := []struct{ name, doc string }{
		{"not xml", "hello"},
		{"truncated", `<LWM2M><Object>`},
		{"no objects", `<LWM2M></LWM2M>`},
		{"bad id", wrap(fmt.Sprintf(good, "x", "Single", ""))},
		{"reserved id", wrap(fmt.Sprintf(good, "65535", "Single", ""))},
		{"bad multiple", wrap(fmt.Sprintf(good, "10", "Many", ""))},
		{"bad type", wrap(fmt.Sprintf(good, "10", "Single", fmt.Sprintf(item, "1", "R", "Complex")))},
		{"bad ops", wrap(fmt.Sprintf(good, "10", "Single", fmt.Sprintf(item, "1", "RX", "String")))},
		{"exec with type", wrap(fmt.Sprintf(good, "10", "Single", fmt.Sprintf(item, "1", "E", "String")))},
		{"readable without type", wrap(fmt.Sprintf(good, "10", "Single", fmt.Sprintf(item, "1", "R", "")))},
		{"duplicate resource", wrap(fmt.Sprintf(good, "10", "Single", fmt.Sprintf(item, "1", "R", "String")+fmt.Sprintf(item, "1", "R", "String")))},
		{"bad resource id", wrap(fmt.Sprintf(good, "10", "Single", fmt.Sprintf(item, "70000", "R", "String")))},
		{"charset", `<?xml version="1.0" encoding="ISO-8859-1"?><LWM2M></LWM2M>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDDF([]byte(tt.doc))
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: %v", tt.name, err)
			}
			var de *DDFError
			if err != nil && !errors.As(err, &de) {
				t.Errorf("%s: %T not *DDFError", tt.name, err)
			}
		})
	}
	ok := wrap(fmt.Sprintf(good, "10", "Single", fmt.Sprintf(item, "2", "R", "Unsigned Integer")+fmt.Sprintf(item, "1", "E", "")))
	objs, err := ParseDDF([]byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if o := objs[0]; o.Version != "1.0" || o.Resources[0].ID != 1 || o.Resources[1].Type != Unsigned {
		t.Fatalf("%+v", o)
	}
}

func TestRegistry(t *testing.T) {
	r, err := NewRegistry(WithMaxObjects(2))
	if err != nil {
		t.Fatal(err)
	}
	core := Core()
	if err := r.Add(core[0]); err != nil {
		t.Fatal(err)
	}
	if err := r.Add(core[0]); !errors.Is(err, ErrExists) {
		t.Fatalf("dup: %v", err)
	}
	if err := r.Put(core[0]); err != nil {
		t.Fatalf("put: %v", err)
	}
	if err := r.Add(core[1]); err != nil {
		t.Fatal(err)
	}
	if err := r.Add(core[2]); !errors.Is(err, ErrFull) {
		t.Fatalf("full: %v", err)
	}
	if r.Len() != 2 {
		t.Fatal("Len")
	}
	if err := r.Add(&Object{ID: 9}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid: %v", err)
	}
}

func TestLoadDir(t *testing.T) {
	data, err := embedded.ReadFile("ddf/3311.xml")
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{
		"objs/3311.xml":  {Data: data},
		"objs/README":    {Data: []byte("ignored")},
		"bad/broken.xml": {Data: []byte("<LWM2M>")},
	}
	r := new(Registry)
	objs, err := r.LoadDir(fsys, "objs")
	if err != nil || len(objs) != 1 || objs[0].ID != 3311 {
		t.Fatalf("LoadDir: %v %v", objs, err)
	}
	if _, err := r.LoadDir(fsys, "bad"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad dir: %v", err)
	}
	if _, err := r.LoadDir(fsys, "missing"); err == nil {
		t.Fatal("missing dir")
	}
}

func TestParseHelpers(t *testing.T) {
	for _, s := range []string{"", "R", "W", "RW", "E"} {
		t.Run(s, func(t *testing.T) {
			o, err := ParseOperations(s)
			if err != nil || o.String() != s {
				t.Errorf("ParseOperations(%q) = %v, %v", s, o, err)
			}
		})
	}
	for _, s := range []string{"RE", "X"} {
		t.Run(s, func(t *testing.T) {
			if _, err := ParseOperations(s); !errors.Is(err, ErrInvalid) {
				t.Errorf("ParseOperations(%q) accepted", s)
			}
		})
	}
	for ty := None + 1; ty <= Corelnk; ty++ {
		got, err := ParseType(ty.String())
		if err != nil || got != ty {
			t.Errorf("ParseType(%v) = %v, %v", ty, got, err)
		}
	}
}

func genObject() *rapid.Generator[*Object] {
	return rapid.Custom(func(t *rapid.T) *Object {
		o := &Object{
			ID:          rapid.Uint16Range(0, 65534).Draw(t, "id"),
			Name:        rapid.StringMatching(`[A-Za-z][A-Za-z0-9 /-]{0,20}[a-z]`).Draw(t, "name"),
			Description: rapid.StringMatching(`([!-~]([ -~]{0,28}[!-~])?)?`).Draw(t, "desc"),
			Version:     rapid.SampledFrom([]string{"1.0", "1.1", "2.3"}).Draw(t, "ver"),
			Multiple:    rapid.Bool().Draw(t, "multi"),
			Mandatory:   rapid.Bool().Draw(t, "mand"),
		}
		ids := rapid.SliceOfNDistinct(rapid.Uint16Range(0, 65534), 0, 10, rapid.ID).Draw(t, "rids")
		for _, id := range ids {
			r := Resource{ID: id, Name: "r", Multiple: rapid.Bool().Draw(t, "rm"), Mandatory: rapid.Bool().Draw(t, "rmand")}
			if rapid.Bool().Draw(t, "exec") {
				r.Operations = E
			} else {
				r.Operations = rapid.SampledFrom([]Operations{NoOps, R, W, RW}).Draw(t, "ops")
				r.Type = Type(rapid.IntRange(1, int(Corelnk)).Draw(t, "type"))
			}
			o.Resources = append(o.Resources, r)
		}
		return o
	})
}

func TestRapidDDFRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		o := genObject().Draw(t, "o")
		// ParseDDF returns sorted resources; sort the original the same way.
		sortResources(o)
		b, err := MarshalDDF(o)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseDDF(b)
		if err != nil {
			t.Fatalf("%v\n%s", err, b)
		}
		if !reflect.DeepEqual(back[0], o) {
			t.Fatalf("changed:\n%+v\n%+v", back[0], o)
		}
	})
}

func sortResources(o *Object) {
	for i := 1; i < len(o.Resources); i++ {
		for j := i; j > 0 && o.Resources[j-1].ID > o.Resources[j].ID; j-- {
			o.Resources[j-1], o.Resources[j] = o.Resources[j], o.Resources[j-1]
		}
	}
}

func FuzzParseDDF(f *testing.F) {
	data, err := embedded.ReadFile("ddf/3311.xml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	if omna, err := os.ReadFile("testdata/omna-style.xml"); err == nil {
		f.Add(omna)
	}
	for _, o := range Core()[:4] {
		b, _ := MarshalDDF(o)
		f.Add(b)
	}
	f.Add([]byte(`<LWM2M><Object><ObjectID>1</ObjectID></Object></LWM2M>`))
	f.Add([]byte(`<LWM2M>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := ParseDDF(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		for _, o := range objs {
			if err := o.Validate(); err != nil {
				t.Fatalf("accepted invalid object: %v", err)
			}
		}
		if _, err := MarshalDDF(objs...); err != nil {
			t.Fatalf("cannot re-marshal: %v", err)
		}
	})
}

func ExampleRegistry_LoadDDF() {
	r := DefaultRegistry()
	res, _ := r.Resource(3311, 5851)
	fmt.Println(res.Name, res.Type, res.Operations, res.Range)
	res, _ = r.Resource(3, 13)
	fmt.Println(res.Name, res.Type, res.Operations)
	// Output:
	// Dimmer Integer RW 0..100
	// Current Time Time RW
}

func TestParseDDFOMNAStyle(t *testing.T) {
	data, err := os.ReadFile("testdata/omna-style.xml")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := ParseDDF(data)
	if err != nil {
		t.Fatal(err)
	}
	o := objs[0]
	if o.ID != 33001 || o.Name != "Lamp Energy Meter" || o.Version != "1.1" || !o.Multiple || o.Mandatory ||
		o.Description != "Energy measured by a street lamp controller.\nValues are reset by executing Reset." {
		t.Fatalf("object %+v", o)
	}
	want := []Resource{
		{ID: 0, Name: "Reset", Operations: E, Description: "Sets Energy to 0."},
		{ID: 1, Name: "Energy", Operations: R, Mandatory: true, Type: Float, Units: "Wh", Description: "Energy since the last reset, in <Wh>."},
		{ID: 2, Name: "Samples", Operations: RW, Multiple: true, Type: Unsigned, Range: "0..65535", Description: "Last samples & counters."},
	}
	if !reflect.DeepEqual(o.Resources, want) {
		t.Fatalf("resources\n got %+v\nwant %+v", o.Resources, want)
	}
}

func TestRegistryConcurrent(t *testing.T) {
	r := DefaultRegistry()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			for _, o := range Core() {
				if err := r.Put(o); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	for i := 0; i < 2000; i++ {
		if res, ok := r.Resource(3, 0); !ok || res.Name != "Manufacturer" {
			t.Fatal("lookup during Put")
		}
		_ = r.IDs()
	}
	<-done
}
