package config

import (
	"errors"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestNoSecForms(t *testing.T) {
	tests := []struct {
		name, yaml string
		allows     map[string]bool
		str        string
	}{
		{"allow", "lwm2m:\n  nosec: allow\n", map[string]bool{"x": true, "light-1": true}, "allow"},
		{"deny", "lwm2m:\n  nosec: deny\n", map[string]bool{"x": false}, "deny"},
		{"list", "lwm2m:\n  nosec: [light-udp-*, meter-7]\n", map[string]bool{"light-udp-3": true, "meter-7": true, "meter-70": false, "light-sms-1": false}, "light-udp-*,meter-7"},
		{"empty list", "lwm2m:\n  nosec: []\n", map[string]bool{"x": false}, "deny"},
		{"default (demo)", "", map[string]bool{"anything": true}, "allow"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			for ep, want := range tc.allows {
				if got := c.LwM2M.NoSec.Allows(ep); got != want {
					t.Errorf("Allows(%q) = %v", ep, got)
				}
			}
			if s := c.LwM2M.NoSec.String(); s != tc.str {
				t.Errorf("String() = %q", s)
			}
			// It writes back as it reads.
			b, err := yaml.Marshal(c.LwM2M.NoSec)
			if err != nil {
				t.Fatal(err)
			}
			var back NoSec
			if err := yaml.Unmarshal(b, &back); err != nil || back.String() != tc.str {
				t.Fatalf("round trip %q: %v %v", b, back, err)
			}
		})
	}
	if (NoSec{}).Allows("x") {
		t.Fatal("the zero NoSec allows a name")
	}
}

func TestSecurityConfigErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		line       int
		want       string
	}{
		{"nosec word", "lwm2m:\n  nosec: maybe\n", 2, "use allow, deny or a list"},
		{"nosec map", "lwm2m:\n  nosec: {a: b}\n", 2, "allow, deny or a list"},
		{"nosec star inside", "lwm2m:\n  nosec: [\"a*b\"]\n", 2, "prefix ending in '*'"},
		{"nosec empty name", "lwm2m:\n  nosec: [\"\"]\n", 2, "prefix ending in '*'"},
		{"lifetime_max 0", "lwm2m:\n  lifetime_max: 0\n", 2, "0 no longer means unbounded"},
		{"lifetime_min above max", "lwm2m:\n  lifetime_min: 100\n  lifetime_max: 10\n", 2, "above lifetime_max"},
		{"register_rate 0", "lwm2m:\n  register_rate: 0\n", 2, "-1 for no limit"},
		{"register_burst 0", "lwm2m:\n  register_burst: 0\n", 2, "register_burst"},
		{"max_registrations 0", "lwm2m:\n  max_registrations: 0\n", 2, "max_registrations"},
		{"device nosec not allowed", "lwm2m:\n  nosec: deny\nsms:\n  devices:\n    - endpoint: a\n      msisdn: '+491720000001'\n      nosec: true\n", 7, "does not allow its name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err %v, want *Error", err)
			}
			found := false // problems are sorted by line: the one wanted need not be first
			for _, p := range ce.Problems {
				found = found || p.Line == tc.line && strings.Contains(p.String(), tc.want)
			}
			if !found {
				t.Fatalf("problems %v, want line %d with %q", ce.Problems, tc.line, tc.want)
			}
		})
	}
}

// TestProductionExample: deploy/smsgw.yaml is valid and denies NoSec.
func TestProductionExample(t *testing.T) {
	b, err := os.ReadFile("../../../../deploy/smsgw.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// As shipped, only the example keys are refused.
	_, err = Parse(b)
	var ce *Error
	if !errors.As(err, &ce) || len(ce.Problems) != 2 {
		t.Fatalf("the example as shipped: %v", err)
	}
	for _, p := range ce.Problems {
		if !strings.Contains(p.Msg, "example key") || p.Line == 0 {
			t.Fatalf("unexpected problem %v", p)
		}
	}
	b = []byte(strings.NewReplacer("5ec0de5ec0de5ec0de5ec0de5ec0de07", "9f1c2b7d04e8a6135c7d2e9b8a1f0c43",
		"5ec0de5ec0de5ec0de5ec0de5ec0de08", "0d6e4a91b3c75f28e1a09d4c6b7f3e52").Replace(string(b)))
	c, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if c.LwM2M.NoSec.All || len(c.LwM2M.NoSec.Names) != 0 || c.Simulator.Enabled || !c.API.MetricsAuth ||
		c.LwM2M.RegisterRate <= 0 || c.LwM2M.LifetimeMax > 30*24*3600 {
		t.Fatalf("production example is not the safe one: %+v", c.LwM2M)
	}
	for _, d := range c.SMS.Devices {
		if d.NoSec {
			t.Fatalf("device %s registers without DTLS in the production example", d.Endpoint)
		}
	}
}
