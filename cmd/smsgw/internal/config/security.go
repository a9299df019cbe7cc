package config

import (
	"fmt"
	"math"
	"strings"

	"go.yaml.in/yaml/v3"
)

// NoSec is lwm2m.nosec: which endpoint names may register without DTLS
// (plain UDP, or SMS without DTLS from a number in sms.devices). In YAML
// it is "allow" (any name), "deny" (none) or a list of names, where an
// entry ending in "*" is a prefix ("light-udp-*"). The zero NoSec allows
// none, as "deny" does.
type NoSec struct {
	All   bool     // "allow"
	Names []string // the list form; empty without All: "deny"
}

// UnmarshalYAML reads "allow", "deny" or a sequence of names.
func (n *NoSec) UnmarshalYAML(v *yaml.Node) error {
	bad := func(msg string) error {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: nosec: %s", v.Line, msg)}}
	}
	switch v.Kind {
	case yaml.ScalarNode:
		switch v.Value {
		case "allow":
			*n = NoSec{All: true}
		case "deny":
			*n = NoSec{}
		default:
			return bad(fmt.Sprintf("%q: use allow, deny or a list of endpoint names and prefixes (\"light-*\")", v.Value))
		}
	case yaml.SequenceNode:
		var names []string
		if err := v.Decode(&names); err != nil {
			return bad("a list of endpoint names and prefixes (\"light-*\")")
		}
		*n = NoSec{Names: names}
	default:
		return bad("allow, deny or a list of endpoint names and prefixes")
	}
	return nil
}

// MarshalYAML writes the form UnmarshalYAML reads.
func (n NoSec) MarshalYAML() (any, error) {
	switch {
	case n.All:
		return "allow", nil
	case len(n.Names) == 0:
		return "deny", nil
	}
	return n.Names, nil
}

// String is "allow", "deny" or the names joined with ",".
func (n NoSec) String() string {
	switch {
	case n.All:
		return "allow"
	case len(n.Names) == 0:
		return "deny"
	}
	return strings.Join(n.Names, ",")
}

// Allows reports whether the endpoint name ep may register without DTLS.
func (n NoSec) Allows(ep string) bool {
	if n.All {
		return true
	}
	for _, p := range n.Names {
		if p == ep || p == "*" || strings.HasSuffix(p, "*") && strings.HasPrefix(ep, strings.TrimSuffix(p, "*")) {
			return true
		}
	}
	return false
}

// exampleKeys are the PSK keys of deploy/smsgw.yaml: a configuration
// copied without replacing them is refused.
var exampleKeys = map[string]bool{
	"5ec0de5ec0de5ec0de5ec0de5ec0de07": true,
	"5ec0de5ec0de5ec0de5ec0de5ec0de08": true,
}

// validateSecurity checks the registration security policy and limits.
func (c *Config) validateSecurity(ck *checker) {
	l := c.LwM2M
	for i, p := range l.PSK {
		if exampleKeys[strings.ToLower(p.Key)] {
			ck.add("this is the example key of deploy/smsgw.yaml; generate one per device (openssl rand -hex 16)", "lwm2m", "psk", fmt.Sprint(i), "key")
		}
	}
	for i, p := range l.NoSec.Names {
		if p == "" || strings.Contains(strings.TrimSuffix(p, "*"), "*") {
			ck.add(fmt.Sprintf("entry %d %q: an endpoint name, or a prefix ending in '*' (\"light-*\")", i, p), "lwm2m", "nosec")
		}
	}
	if l.LifetimeMax == 0 {
		ck.add(fmt.Sprintf("lifetime_max must be a number of seconds (0 no longer means unbounded; the most is %d)", uint32(math.MaxUint32)), "lwm2m", "lifetime_max")
	} else if l.LifetimeMin > l.LifetimeMax {
		ck.add("lifetime_min is above lifetime_max", "lwm2m", "lifetime_min")
	}
	if l.RegisterRate != -1 && (l.RegisterRate <= 0 || math.IsNaN(l.RegisterRate) || math.IsInf(l.RegisterRate, 0)) {
		ck.add("register_rate must be a positive number of requests a second per source, or -1 for no limit", "lwm2m", "register_rate")
	}
	if l.RegisterBurst < 1 || l.RegisterBurst > 1_000_000 {
		ck.add("register_burst must be in 1..1000000", "lwm2m", "register_burst")
	}
	if l.MaxRegistrations < 1 || l.MaxRegistrations > 10_000_000 {
		ck.add("max_registrations must be in 1..10000000", "lwm2m", "max_registrations")
	}
	for i, d := range c.SMS.Devices {
		if d.NoSec && d.Endpoint != "" && !l.NoSec.Allows(d.Endpoint) {
			ck.add(fmt.Sprintf("device %q may register over UDP without DTLS, but lwm2m.nosec (%s) does not allow its name", d.Endpoint, l.NoSec),
				"sms", "devices", fmt.Sprint(i), "nosec")
		}
	}
}
