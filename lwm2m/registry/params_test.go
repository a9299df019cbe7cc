package registry

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRegister(t *testing.T) {
	tests := []struct {
		name    string
		q       []string
		payload string
		wantErr error
		check   func(t *testing.T, p *RegisterParams)
	}{
		{name: "libcoap example 1.1", q: []string{"ep=x", "lt=300", "lwm2m=1.1", "b=U"}, payload: "</1/0>,</3/0>",
			check: func(t *testing.T, p *RegisterParams) {
				if p.Endpoint != "x" || p.Lifetime != 300 || p.Version != V1_1 || p.Binding != BindingU || p.Queue {
					t.Errorf("got %+v", p)
				}
				if len(p.Objects) != 2 || p.Objects[0] != (ObjectLink{Object: 1, Instance: 0}) || p.Objects[1] != (ObjectLink{Object: 3, Instance: 0}) {
					t.Errorf("objects %v", p.Objects)
				}
			}},
		{name: "defaults", q: []string{"ep=dev"},
			check: func(t *testing.T, p *RegisterParams) {
				if p.Lifetime != DefaultLifetime || p.Version != V1_0 || p.Binding != BindingU || p.AltPath != "/" {
					t.Errorf("got %+v", p)
				}
			}},
		{name: "1.0 UQS", q: []string{"ep=a", "lwm2m=1.0", "b=UQS", "sms=+15551234567"},
			check: func(t *testing.T, p *RegisterParams) {
				if p.Binding != BindingU|BindingS || !p.Queue || p.SMS != "+15551234567" {
					t.Errorf("got %+v", p)
				}
				if got := BindingMode(p.Version, p.Binding, p.Queue); got != "UQS" {
					t.Errorf("BindingMode = %q", got)
				}
			}},
		{name: "1.0 SQ", q: []string{"ep=a", "b=SQ"}, check: func(t *testing.T, p *RegisterParams) {
			if p.Binding != BindingS || !p.Queue || BindingMode(V1_0, p.Binding, p.Queue) != "SQ" {
				t.Errorf("got %+v", p)
			}
		}},
		{name: "1.1 Q param", q: []string{"ep=a", "lwm2m=1.1", "b=UT", "Q"}, check: func(t *testing.T, p *RegisterParams) {
			if p.Binding != BindingU|BindingT || !p.Queue {
				t.Errorf("got %+v", p)
			}
		}},
		{name: "1.2 all letters", q: []string{"ep=a", "lwm2m=1.2", "b=NSTU"}, check: func(t *testing.T, p *RegisterParams) {
			if p.Binding.String() != "UTSN" {
				t.Errorf("got %v", p.Binding)
			}
		}},
		{name: "alt path and ct", q: []string{"ep=a", "lwm2m=1.1"},
			payload: `</lwm2m>;rt="oma.lwm2m";ct="110 112 11542",</lwm2m/1>;ver=1.1,</lwm2m/1/0>,</lwm2m/3/0>`,
			check: func(t *testing.T, p *RegisterParams) {
				if p.AltPath != "/lwm2m" || p.Formats != FormatSenMLJSON|FormatSenMLCBOR|FormatTLV {
					t.Errorf("got alt %q formats %v", p.AltPath, p.Formats.Numbers())
				}
				if len(p.Objects) != 3 || p.Objects[0].HasInstance() || p.Objects[0].Version() != "1.1" {
					t.Errorf("objects %v", p.Objects)
				}
			}},
		{name: "root ct", q: []string{"ep=a", "lwm2m=1.1"}, payload: `</>;rt="oma.lwm2m";ct=11543,</3/0>`,
			check: func(t *testing.T, p *RegisterParams) {
				if p.AltPath != "/" || p.Formats != FormatJSON || len(p.Objects) != 1 {
					t.Errorf("got %+v", p)
				}
			}},
		{name: "domain and unknown ignored", q: []string{"ep=a", "d=floor1", "et=light"}, check: func(t *testing.T, p *RegisterParams) {
			if p.Domain != "floor1" || len(p.Ignored) != 1 {
				t.Errorf("got %+v", p)
			}
		}},
		{name: "1.1 without ep", q: []string{"lwm2m=1.1"}, check: func(t *testing.T, p *RegisterParams) {
			if p.Endpoint != "" {
				t.Errorf("got %+v", p)
			}
		}},
		{name: "missing ep 1.0", q: []string{"lt=10"}, wantErr: ErrBadRequest},
		{name: "empty ep", q: []string{"ep="}, wantErr: ErrBadRequest},
		{name: "ep slash", q: []string{"ep=a/b"}, wantErr: ErrBadRequest},
		{name: "ep control", q: []string{"ep=a\x00"}, wantErr: ErrBadRequest},
		{name: "ep long", q: []string{"ep=" + strings.Repeat("a", 257)}, wantErr: ErrBadRequest},
		{name: "repeated ep", q: []string{"ep=a", "ep=b"}, wantErr: ErrBadRequest},
		{name: "lt zero", q: []string{"ep=a", "lt=0"}, wantErr: ErrBadRequest},
		{name: "lt negative", q: []string{"ep=a", "lt=-5"}, wantErr: ErrBadRequest},
		{name: "lt overflow", q: []string{"ep=a", "lt=4294967296"}, wantErr: ErrBadRequest},
		{name: "lt text", q: []string{"ep=a", "lt=abc"}, wantErr: ErrBadRequest},
		{name: "version 1.3", q: []string{"ep=a", "lwm2m=1.3"}, wantErr: ErrUnsupportedVersion},
		{name: "version 2.0", q: []string{"ep=a", "lwm2m=2.0"}, wantErr: ErrUnsupportedVersion},
		{name: "version junk", q: []string{"ep=a", "lwm2m=x"}, wantErr: ErrBadRequest},
		{name: "1.0 bad binding", q: []string{"ep=a", "b=T"}, wantErr: ErrBadRequest},
		{name: "1.0 binding order", q: []string{"ep=a", "b=SU"}, wantErr: ErrBadRequest},
		{name: "1.0 Q param", q: []string{"ep=a", "Q"}, wantErr: ErrBadRequest},
		{name: "1.1 Q in binding", q: []string{"ep=a", "lwm2m=1.1", "b=UQ"}, wantErr: ErrBadRequest},
		{name: "1.1 repeated letter", q: []string{"ep=a", "lwm2m=1.1", "b=UU"}, wantErr: ErrBadRequest},
		{name: "1.1 empty binding", q: []string{"ep=a", "lwm2m=1.1", "b="}, wantErr: ErrBadRequest},
		{name: "Q with value", q: []string{"ep=a", "lwm2m=1.1", "Q=1"}, wantErr: ErrBadRequest},
		{name: "bad sms", q: []string{"ep=a", "sms=12ab"}, wantErr: ErrBadRequest},
		{name: "long sms", q: []string{"ep=a", "sms=+1234567890123456"}, wantErr: ErrBadRequest},
		{name: "malformed link", q: []string{"ep=a"}, payload: "</1/0", wantErr: ErrBadRequest},
		{name: "resource link", q: []string{"ep=a"}, payload: "</3/0/1>", wantErr: ErrBadRequest},
		{name: "id out of range", q: []string{"ep=a"}, payload: "</3/65535>", wantErr: ErrBadRequest},
		{name: "outside alt path", q: []string{"ep=a"}, payload: `</lwm2m>;rt="oma.lwm2m",</3/0>`, wantErr: ErrBadRequest},
		{name: "two roots", q: []string{"ep=a"}, payload: `</a>;rt="oma.lwm2m",</b>;rt="oma.lwm2m"`, wantErr: ErrBadRequest},
		{name: "bad ver", q: []string{"ep=a"}, payload: `</3>;ver=one`, wantErr: ErrBadRequest},
		{name: "bad ct", q: []string{"ep=a"}, payload: `</>;ct=abc`, wantErr: ErrBadRequest},
		{name: "numeric alt path", q: []string{"ep=a"}, payload: `</3>;rt="oma.lwm2m"`, wantErr: ErrBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var payload []byte
			if tc.payload != "" {
				payload = []byte(tc.payload)
			}
			p, err := ParseRegister(tc.q, payload)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				var pe *ParamError
				if !errors.As(err, &pe) || pe.Param == "" || pe.Reason == "" {
					t.Fatalf("err %v is not a ParamError with a reason", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			tc.check(t, p)
		})
	}
}

func TestParseUpdate(t *testing.T) {
	u, err := ParseUpdate(V1_1, []string{"lt=60", "b=US", "sms=4915112345"}, []byte("</3/0>,</5/0>"))
	if err != nil {
		t.Fatal(err)
	}
	if *u.Lifetime != 60 || *u.Binding != BindingU|BindingS || u.Queue != nil || *u.SMS != "4915112345" || len(u.Objects) != 2 {
		t.Fatalf("got %+v", u)
	}
	u, err = ParseUpdate(V1_0, []string{"b=UQ"}, nil)
	if err != nil || *u.Binding != BindingU || u.Queue == nil || !*u.Queue || u.Lifetime != nil || u.Objects != nil {
		t.Fatalf("got %+v, %v", u, err)
	}
	u, err = ParseUpdate(V1_1, nil, nil)
	if err != nil || u.Lifetime != nil || u.Binding != nil || u.SMS != nil || u.Objects != nil {
		t.Fatalf("empty update: %+v, %v", u, err)
	}
	for _, q := range [][]string{{"lt=0"}, {"b=UQ"}, {"sms=x"}, {"lt=1", "lt=2"}} {
		t.Run(strings.Join(q, "&"), func(t *testing.T) {
			if _, err := ParseUpdate(V1_1, q, nil); !errors.Is(err, ErrBadRequest) {
				t.Errorf("%v: err = %v", q, err)
			}
		})
	}
	if _, err := ParseUpdate(V1_1, nil, []byte("<bad")); !errors.Is(err, ErrBadRequest) {
		t.Errorf("bad payload: %v", err)
	}
}

func TestBindingModeRoundTrip(t *testing.T) {
	for _, s := range []string{"U", "UQ", "S", "SQ", "US", "UQS"} {
		t.Run("1.0/"+s, func(t *testing.T) {
			b, q, err := ParseBinding(V1_0, s)
			if err != nil {
				t.Fatal(err)
			}
			if got := BindingMode(V1_0, b, q); got != s {
				t.Errorf("%s → %s", s, got)
			}
		})
	}
	for _, s := range []string{"U", "T", "S", "N", "UT", "US", "UTSN"} {
		t.Run("1.2/"+s, func(t *testing.T) {
			b, _, err := ParseBinding(V1_2, s)
			if err != nil {
				t.Fatal(err)
			}
			if got := BindingMode(V1_2, b, true); got != s {
				t.Errorf("%s → %s", s, got)
			}
		})
	}
}

func FuzzParseRegister(f *testing.F) {
	f.Add("ep=x&lt=300&lwm2m=1.1&b=U", []byte("</1/0>,</3/0>"))
	f.Add("ep=a&lwm2m=1.0&b=UQS&sms=+15551234567", []byte(`</>;rt="oma.lwm2m";ct=11543,</1>;ver=1.1,</3/0>`))
	f.Add("ep=a&lwm2m=1.2&b=UT&Q", []byte(`</lwm2m>;rt="oma.lwm2m";ct="110 112",</lwm2m/3/0>`))
	f.Add("ep=&lt=0", []byte("</3/0/1>"))
	f.Add("lwm2m=9.9", []byte("<"))
	f.Fuzz(func(t *testing.T, query string, payload []byte) {
		qs := strings.Split(query, "&")
		p, err := ParseRegister(qs, payload)
		if err != nil {
			var pe *ParamError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParamError", err)
			}
			return
		}
		if p.Lifetime == 0 || p.Version < V1_0 || p.Version > V1_2 || p.Binding == 0 || len(p.Objects) > MaxObjectLinks {
			t.Fatalf("invalid result %+v", p)
		}
		if p.Endpoint == "" && p.Version == V1_0 {
			t.Fatal("1.0 registration without endpoint")
		}
		// The object list survives the registration codec.
		r := &Registration{ID: 1, Endpoint: "e", Lifetime: p.Lifetime, Version: p.Version, Binding: p.Binding, Objects: p.Objects}
		r.SetAltPath(p.AltPath)
		if _, err := UnmarshalRegistration(MarshalRegistration(nil, r), nil); err != nil {
			t.Fatal(err)
		}
		if _, err := ParseUpdate(p.Version, qs, payload); err != nil {
			var pe *ParamError
			if !errors.As(err, &pe) {
				t.Fatalf("update error %v is not a *ParamError", err)
			}
		}
	})
}

// TestLenientBinding: deployed 1.1 clients send the 1.0 spelling of queue
// mode inside "b" (b=UQS; 1.2 clients b=UQ). Strict parsing refuses it;
// ParseOptions.LenientBinding reads the Q as queue mode and says so.
func TestLenientBinding(t *testing.T) {
	lenient := ParseOptions{LenientBinding: true}
	tests := []struct {
		name      string
		q         []string
		binding   Binding
		queue     bool
		reported  bool
		strictErr bool
		wantErr   bool
	}{
		{name: "1.1 UQS", q: []string{"ep=a", "lwm2m=1.1", "b=UQS"}, binding: BindingU | BindingS, queue: true, reported: true, strictErr: true},
		{name: "1.2 UQ", q: []string{"ep=a", "lwm2m=1.2", "b=UQ"}, binding: BindingU, queue: true, reported: true, strictErr: true},
		{name: "1.1 SQ", q: []string{"ep=a", "lwm2m=1.1", "b=SQ"}, binding: BindingS, queue: true, reported: true, strictErr: true},
		{name: "1.1 UQ with Q param", q: []string{"ep=a", "lwm2m=1.1", "b=UQ", "Q"}, binding: BindingU, queue: true, reported: true, strictErr: true},
		{name: "1.1 U is not lenient", q: []string{"ep=a", "lwm2m=1.1", "b=U"}, binding: BindingU},
		{name: "1.0 UQS is the 1.0 syntax", q: []string{"ep=a", "b=UQS"}, binding: BindingU | BindingS, queue: true},
		{name: "Q alone", q: []string{"ep=a", "lwm2m=1.1", "b=Q"}, wantErr: true, strictErr: true},
		{name: "two Q", q: []string{"ep=a", "lwm2m=1.1", "b=UQSQ"}, wantErr: true, strictErr: true},
		{name: "Q with a bad letter", q: []string{"ep=a", "lwm2m=1.1", "b=UQX"}, wantErr: true, strictErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseRegister(tc.q, nil); (err != nil) != tc.strictErr {
				t.Fatalf("strict: err %v, want error %v", err, tc.strictErr)
			}
			p, err := ParseRegisterWith(lenient, tc.q, nil)
			if tc.wantErr {
				if !errors.Is(err, ErrBadRequest) {
					t.Fatalf("lenient: err %v, want ErrBadRequest", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Binding != tc.binding || p.Queue != tc.queue || p.LenientBinding != tc.reported {
				t.Fatalf("got binding %v queue %v lenient %v", p.Binding, p.Queue, p.LenientBinding)
			}
		})
	}
	t.Run("update", func(t *testing.T) {
		if _, err := ParseUpdate(V1_1, []string{"b=UQ"}, nil); !errors.Is(err, ErrBadRequest) {
			t.Fatalf("strict update: %v", err)
		}
		u, err := ParseUpdateWith(lenient, V1_1, []string{"b=UQS"}, nil)
		if err != nil || *u.Binding != BindingU|BindingS || u.Queue == nil || !*u.Queue || !u.LenientBinding {
			t.Fatalf("lenient update: %+v %v", u, err)
		}
		u, err = ParseUpdateWith(lenient, V1_1, []string{"b=U"}, nil)
		if err != nil || u.Queue != nil || u.LenientBinding {
			t.Fatalf("plain 1.1 update leaves queue mode alone: %+v %v", u, err)
		}
	})
}
