package config

import (
	"errors"
	"strings"
	"testing"
)

// TestProblemWording: each kind of error is told in the configuration's own
// words, at the line to fix (the whole message is compared).
func TestProblemWording(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       string // the first problem, as printed
	}{
		{"unknown key with a suggestion", "sms:\n  framing: coap\n  dialy_budget: 5\n",
			"line 3: unknown key `sms.dialy_budget` (did you mean `daily_budget`?)"},
		{"unknown key case", "api:\n  Listen: 127.0.0.1:1\n",
			"line 2: unknown key `api.Listen` (did you mean `listen`?)"},
		{"unknown key without a near one", "log:\n  colour: red\n",
			"line 2: unknown key `log.colour` (the keys here are level, format)"},
		{"unknown top-level key", "quue:\n  expiry: 1h\n",
			"line 1: unknown key `quue` (did you mean `queue`?)"},
		{"unknown key in a list item", "modems:\n  - devcie: /dev/ttyUSB2\n",
			"line 2: unknown key `modems[0].devcie` (did you mean `device`?)"},
		{"key set twice", "log:\n  level: info\n  level: debug\n",
			"line 3: `log.level` is set twice (first on line 2)"},
		{"whole number", "queue:\n  per_device: lots\n",
			"line 2: `queue.per_device` must be a whole number, got \"lots\""},
		{"unsigned out of range", "lwm2m:\n  lifetime_min: -1\n",
			"line 2: `lwm2m.lifetime_min` must be a whole number in 0..4294967295, got \"-1\""},
		{"boolean", "firmware:\n  allow_sms_push: maybe\n",
			"line 2: `firmware.allow_sms_push` must be true or false, got \"maybe\""},
		{"duration", "queue:\n  expiry: soon\n",
			"line 2: `queue.expiry` must be a duration such as 30s, 5m or 24h, got \"soon\""},
		{"number", "sms:\n  peer_rate: fast\n",
			"line 2: `sms.peer_rate` must be a number, got \"fast\""},
		{"mapping expected", "api: 8080\n",
			"line 1: `api` must be a mapping of keys (key: value on the lines below it), got \"8080\""},
		{"list expected", "modems: /dev/ttyUSB2\n",
			"line 1: `modems` must be a list (lines starting with \"- \"), got \"/dev/ttyUSB2\""},
		{"text expected", "api:\n  token:\n    a: b\n",
			"line 3: `api.token` must be a text value, got a mapping"},
		{"top level not a mapping", "- a\n- b\n",
			"line 1: the file must be a mapping of keys (key: value on the lines below it), got a list"},
		{"syntax", "api:\n  listen: [\n",
			"line 2: YAML syntax: did not find expected node content"},
		{"port out of range", "api:\n  listen: 127.0.0.1:99999\n",
			"line 2: `api.listen` must be host:port with a port in 1..65535, or 0 for any free port, got \"127.0.0.1:99999\""},
		{"port not a number", "lwm2m:\n  dtls: 127.0.0.1:coaps\n",
			"line 2: `lwm2m.dtls` must be host:port with a port number in 1..65535, or 0 for any free port, got \"127.0.0.1:coaps\""},
		{"no port", "lwm2m:\n  udp: 127.0.0.1\n",
			"line 2: `lwm2m.udp` must be host:port (e.g. 127.0.0.1:8080 or [::1]:5683), got \"127.0.0.1\""},
		{"IPv6 without brackets", "lwm2m:\n  udp: '::1:5683'\n",
			"line 2: `lwm2m.udp` must be host:port (e.g. 127.0.0.1:8080 or [::1]:5683), got \"::1:5683\""},
		{"bad IPv4", "api:\n  listen: 300.1.1.1:8080\n",
			"line 2: `api.listen` must be host:port; \"300.1.1.1\" is not an IP address"},
		{"bad host name", "api:\n  listen: 'my host:8080'\n",
			"line 2: `api.listen` must be host:port; \"my host\" is neither an IP address nor a host name"},
		{"dialled port 0", "mode: proxy\nproxy:\n  server: 127.0.0.1:0\n",
			"line 3: `proxy.server`: proxy mode needs the external LwM2M server; it must be host:port with a port in 1..65535, got \"127.0.0.1:0\""},
		{"dialled host missing", "mode: proxy\nproxy:\n  server: ':5683'\n",
			"line 3: `proxy.server`: proxy mode needs the external LwM2M server; it must name the host to connect to, got \":5683\""},
		{"SMPP host", "smpp:\n  - host: 'smsc..example'\n    port: 2775\n    system_id: a\n    sources: ['+491710000001']\n",
			"line 2: `smpp.0.host`: \"smsc..example\" is neither an IP address nor a host name"},
		{"SMPP port", "smpp:\n  - host: smsc.example\n    port: 70000\n    system_id: a\n    sources: ['+491710000001']\n",
			"line 3: smpp.0.port: port 70000 is not in 1..65535 (SMPP is usually 2775, 3550 with TLS)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			var ce *Error
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("err %v, want *Error", err)
			}
			if got := ce.Problems[0].String(); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
			if strings.Contains(err.Error(), "yaml: ") || strings.Contains(err.Error(), "unmarshal") || strings.Contains(err.Error(), "!!") {
				t.Fatalf("library wording in %q", err)
			}
		})
	}
}

// TestAddressesAccepted: the address forms that must pass.
func TestAddressesAccepted(t *testing.T) {
	for _, tc := range []struct{ name, yaml string }{
		{"ephemeral listener", "api:\n  listen: 127.0.0.1:0\n"},
		{"every interface", "api:\n  listen: ':8080'\n"},
		{"IPv6 in brackets", "lwm2m:\n  udp: '[::1]:5683'\n"},
		{"IPv6 with zone", "lwm2m:\n  udp: '[fe80::1%eth0]:5683'\n"},
		{"host name", "api:\n  listen: localhost:8080\n"},
		{"highest port", "lwm2m:\n  dtls: 127.0.0.1:65535\n"},
		{"proxy to a name", "mode: proxy\nproxy:\n  server: lwm2m.example.org:5683\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse([]byte(tc.yaml)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestProblemsSortedByLine: problems come in the order of the file, whatever
// order the checks ran in (log is checked before api, the keys before the
// values).
func TestProblemsSortedByLine(t *testing.T) {
	tests := []struct {
		name, yaml string
		lines      []int
	}{
		{"validation", "api:\n  listen: 127.0.0.1:99999\nqueue:\n  per_device: 0\nlog:\n  level: loud\n", []int{2, 4, 6}},
		{"keys", "sms:\n  dialy_budget: 1\napi:\n  lissen: x\nlog:\n  colour: red\n", []int{2, 4, 6}},
		// the refused key and value are set aside, the rest is still validated
		{"keys, kinds and values", "api:\n  listen: 127.0.0.1:99999\nsms:\n  dialy_budget: 3\nqueue:\n  per_device: 10\n  expiry: soon\n", []int{2, 4, 7}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			var ce *Error
			if !errors.As(err, &ce) || len(ce.Problems) != len(tc.lines) {
				t.Fatalf("err %v, want %d problems", err, len(tc.lines))
			}
			for i, p := range ce.Problems {
				if p.Line != tc.lines[i] {
					t.Fatalf("problem %d at line %d, want %d:\n%v", i, p.Line, tc.lines[i], err)
				}
			}
		})
	}
}

// TestValidateSameWords: a configuration changed in Go (the daemon's -api
// flag over the file) is refused with the same words, without a line.
func TestValidateSameWords(t *testing.T) {
	c := Default()
	c.API.Listen = "127.0.0.1:99999"
	err := c.Validate()
	want := "`api.listen` must be host:port with a port in 1..65535, or 0 for any free port, got \"127.0.0.1:99999\""
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "line ") {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}
