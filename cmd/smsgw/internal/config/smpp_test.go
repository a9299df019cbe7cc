package config

import (
	"strings"
	"testing"
)

func TestSMPPValidation(t *testing.T) {
	const good = "smpp:\n  - name: op1\n    host: 127.0.0.1\n    port: 2775\n    system_id: city\n    password: pw\n    sources: ['+491710000009']\n"
	c, err := Parse([]byte(good + "sms:\n  devices:\n    - endpoint: a\n      msisdn: '+491720000001'\n      server_sim: '+491710000009'\n"))
	if err != nil {
		t.Fatalf("good link: %v", err)
	}
	if len(c.SMPP) != 1 || c.SMPP[0].Sources[0] != "+491710000009" {
		t.Fatalf("parsed %+v", c.SMPP)
	}
	link := func(extra string) string {
		return "smpp:\n  - host: 127.0.0.1\n    port: 2775\n    system_id: city\n    sources: ['+491710000009']\n" + extra
	}
	cases := []struct {
		name, yaml string
		line       int
		want       string
	}{
		{"no host", "smpp:\n  - port: 2775\n    system_id: a\n    sources: ['+491710000009']\n", 2, "host is required"},
		{"bad port", "smpp:\n  - host: h\n    port: 70000\n    system_id: a\n    sources: ['+491710000009']\n", 3, "port 70000"},
		{"long system_id", link("    password: x\n") + "    system_id2: x\n", 7, "system_id2"},
		{"password too long", link("    password: '123456789'\n"), 6, "at most 8"},
		{"bind", link("    bind: half\n"), 6, "unknown bind"},
		{"concat", link("    concat: zip\n"), 6, "unknown concat"},
		{"source", "smpp:\n  - host: h\n    port: 1\n    system_id: a\n    sources: ['+12ab', 'TooLongSenderName']\n", 5, "source"},
		{"no sources", "smpp:\n  - host: h\n    port: 1\n    system_id: a\n", 2, "source number"},
		{"window", link("    window: 5000\n"), 6, "window"},
		{"rate", link("    rate: -1\n"), 6, "rate"},
		{"tls option without tls", link("    tls_ca_file: /etc/ssl/smsc.pem\n"), 6, "tls_ca_file has no effect without tls: true"},
		{"tls_server_name without tls", link("    tls_server_name: smsc.example.net\n"), 6, "tls_server_name has no effect"},
		{"CA file missing", link("    tls: true\n    tls_ca_file: /nonexistent/smsc-ca.pem\n"), 7, "tls_ca_file"},
		{"client certificate without key", link("    tls: true\n    tls_cert_file: /nonexistent/client.pem\n"), 7, "go together"},
		{"account with two system_ids", link("    account: op\n") + "  - host: 127.0.0.2\n    port: 2775\n    system_id: other\n    sources: ['+491710000009']\n    account: op\n", 11, "share its system_id"},
		{"twice", link("") + "  - host: 127.0.0.1\n    port: 2775\n    system_id: c\n    sources: ['+491710000008']\n", 6, "used twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			e, ok := err.(*Error)
			if !ok || len(e.Problems) == 0 {
				t.Fatalf("err %T %v", err, err)
			}
			p := e.Problems[0]
			if p.Line != c.line || !strings.Contains(p.String(), c.want) {
				t.Fatalf("problem %q (line %d), want line %d containing %q", p.String(), p.Line, c.line, c.want)
			}
		})
	}
}
