package registry

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"testing"
)

// TestFreshIDsUnguessable: locations are 64 random bits, not a sequence: a
// client that knows its own location learns nothing about the next one.
func TestFreshIDsUnguessable(t *testing.T) {
	ctx := context.Background()
	for name, mk := range stores(t) {
		t.Run(name, func(t *testing.T) {
			s := mk(Options{})
			const n = 512
			seen := map[uint64]bool{}
			var ones, prev uint64
			near := 0
			for i := range n {
				r := newReg(fmt.Sprintf("ep-%d", i), 60, t0)
				if _, err := s.Add(ctx, r); err != nil {
					t.Fatal(err)
				}
				if r.ID == 0 || seen[r.ID] {
					t.Fatalf("ID %d zero or repeated", r.ID)
				}
				seen[r.ID] = true
				ones += uint64(bits.OnesCount64(r.ID))
				if d := r.ID - prev; d < 1<<20 || -d < 1<<20 {
					near++
				}
				prev = r.ID
				if id, ok := ParseID(FormatID(r.ID)); !ok || id != r.ID {
					t.Fatalf("location %s does not parse back", r.Location())
				}
			}
			// 64 random bits: about 32 set on average (512*64 trials, the
			// bound is more than 10 standard deviations wide).
			if avg := float64(ones) / n; avg < 30 || avg > 34 {
				t.Fatalf("average set bits %.2f: IDs are not uniformly random", avg)
			}
			if near > 2 {
				t.Fatalf("%d of %d IDs within 2^20 of the previous one", near, n)
			}
		})
	}
}

// TestObjectListLimits: payload and attribute sizes are bounded with the
// error the server maps to 4.13 and 4.00.
func TestObjectListLimits(t *testing.T) {
	long := strings.Repeat("a", MaxAttrLen+1)
	many := strings.Repeat("</3/0>,", MaxLinkPayload/7+1)
	tests := []struct {
		name    string
		payload string
		want    error
	}{
		{"attribute at the limit", `</3/0>;x="` + strings.Repeat("a", MaxAttrLen) + `"`, nil},
		{"attribute over the limit", `</3/0>;x="` + long + `"`, ErrBadRequest},
		{"60 KB attribute (seen in the field report)", `</3/0>;x="` + strings.Repeat("b", 60<<10) + `"`, ErrBadRequest},
		{"root ct over the limit", `</>;rt="oma.lwm2m";ct="` + long + `"`, ErrBadRequest},
		{"payload over the limit", many, ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseObjectLinks([]byte(tc.payload))
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if len(err.Error()) > 300 {
				t.Fatalf("error text of %d bytes echoes the input", len(err.Error()))
			}
			// Register and Update refuse it the same way.
			if _, err := ParseRegister([]string{"ep=x"}, []byte(tc.payload)); !errors.Is(err, tc.want) {
				t.Fatalf("Register: %v", err)
			}
			if _, err := ParseUpdate(V1_1, nil, []byte(tc.payload)); !errors.Is(err, tc.want) {
				t.Fatalf("Update: %v", err)
			}
		})
	}
}

func FuzzParseUpdate(f *testing.F) {
	f.Add(uint8(V1_1), "lt=60&b=US&sms=4915112345", []byte("</3/0>,</5/0>"))
	f.Add(uint8(V1_0), "b=UQS&sms=+15551234567", []byte(nil))
	f.Add(uint8(V1_2), "lt=1&b=UTSN", []byte(`</lwm2m>;rt="oma.lwm2m";ct="110 112",</lwm2m/3/0>;ver=1.2`))
	f.Add(uint8(V1_1), "lt=0&lt=1&b=UQ&sms=x", []byte("<"))
	f.Add(uint8(V1_0), "Q&d=x&unknown", []byte(`</1>;ver=9.9`))
	f.Fuzz(func(t *testing.T, v uint8, query string, payload []byte) {
		ver := Version(v%3) + V1_0
		qs := strings.Split(query, "&")
		u, err := ParseUpdate(ver, qs, payload)
		if err != nil {
			var pe *ParamError
			if !errors.As(err, &pe) || pe.Param == "" {
				t.Fatalf("error %v is not a *ParamError naming its parameter", err)
			}
			return
		}
		if u.Lifetime != nil && *u.Lifetime == 0 {
			t.Fatal("zero lifetime accepted")
		}
		if u.Binding != nil && *u.Binding == 0 {
			t.Fatal("empty binding accepted")
		}
		if u.Queue != nil && ver != V1_0 {
			t.Fatal("queue from a binding outside 1.0")
		}
		if len(u.Objects) > MaxObjectLinks || len(payload) > MaxLinkPayload {
			t.Fatalf("%d links from %d bytes accepted", len(u.Objects), len(payload))
		}
		if len(payload) > 0 && u.Objects == nil {
			t.Fatal("payload without object list")
		}
		// Applied to a registration, the result survives the codec.
		r := &Registration{ID: 1, Endpoint: "e", Lifetime: 60, Version: ver, Binding: BindingU, Objects: u.Objects}
		if u.SMS != nil {
			r.SMS = *u.SMS
		}
		r.SetAltPath(u.AltPath)
		got, err := UnmarshalRegistration(MarshalRegistration(nil, r), nil)
		if err != nil || got.SMS != r.SMS || len(got.Objects) != len(r.Objects) {
			t.Fatalf("codec: %v %+v", err, got)
		}
	})
}

// FuzzParseID: a location segment from any client either names one ID
// whose FormatID is the segment itself (one spelling per location), or is
// refused.
func FuzzParseID(f *testing.F) {
	for _, s := range []string{"1", "3w5e11264sgsf", "3w5e11264sgsg", "0", "", "00001", "ZZ", "-1", "+1", "1_0", "9" + strings.Repeat("z", 20)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, ok := ParseID(s)
		if !ok {
			return
		}
		if got := FormatID(id); got != s || id == 0 {
			t.Fatalf("ParseID(%q) = %d, formatted %q", s, id, got)
		}
	})
}
