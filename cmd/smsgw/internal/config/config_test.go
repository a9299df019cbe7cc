package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func TestDefaultIsValid(t *testing.T) {
	c, err := Parse(DefaultYAML)
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode != "server" || !c.Simulator.Enabled || c.Simulator.Latency != 150*time.Millisecond ||
		c.Simulator.Fleet.UDP != 2 || c.Queue.Expiry != 24*time.Hour || c.API.Listen != "127.0.0.1:8080" {
		t.Fatalf("default: %+v", c)
	}
	if d := Default(); d.LwM2M.UDP != c.LwM2M.UDP {
		t.Fatal("Default differs from Parse(DefaultYAML)")
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		line       int
		want       string
	}{
		{"unknown key", "api:\n  listen: 127.0.0.1:1\n  lissen: x\n", 3, "lissen"},
		{"bad level", "log:\n  level: loud\n", 2, "unknown level"},
		{"bad format", "log:\n  format: xml\n", 2, "text or json"},
		{"bad listen", "api:\n  listen: nowhere\n", 2, "host:port"},
		{"bad udp", "lwm2m:\n  udp: ':::'\n", 2, "host:port"},
		{"port out of range", "api:\n  listen: 127.0.0.1:99999\n", 2, "port in 1..65535, or 0 for any free port"},
		{"port not a number", "lwm2m:\n  dtls: 127.0.0.1:coaps\n", 2, "host:port"},
		{"header timeout", "api:\n  limits:\n    header_timeout: 0s\n", 3, "(0, 1h]"},
		{"conns per client", "api:\n  limits:\n    max_conns_per_client: 5000\n", 3, "1..max_conns"},
		{"upload rate", "api:\n  limits:\n    upload_min_rate: 0\n", 3, "bytes a second"},
		{"header bytes", "api:\n  limits:\n    max_header_bytes: 10\n", 3, "1024..1048576"},
		{"image bytes", "firmware:\n  max_image_bytes: 2000000000\n", 2, "at most max_bytes"},
		{"syntax", "api:\n  listen: [\n", 2, ""},
		{"wrong type", "queue:\n  per_device: lots\n", 2, "lots"},
		{"bad duration", "queue:\n  expiry: soon\n", 2, "soon"},
		{"modem no device", "simulator:\n  enabled: false\nmodems:\n  - msisdn: '+491710000001'\n", 4, "device is required"},
		{"modem bad msisdn", "modems:\n  - device: /dev/ttyUSB0\n    msisdn: '12'\n", 3, "msisdn"},
		{"modem bad profile", "modems:\n  - device: /dev/ttyUSB0\n    msisdn: '+491710000001'\n    profile: nokia\n", 4, "unknown profile"},
		{"device sim not ours", "sms:\n  devices:\n    - endpoint: a\n      msisdn: '+491720000001'\n      server_sim: '+491799999999'\n", 5, "not the number of a configured modem"},
		{"device twice", "sms:\n  devices:\n    - endpoint: a\n      msisdn: '+491720000001'\n    - endpoint: a\n      msisdn: '+491720000002'\n", 5, "twice"},
		{"framing", "sms:\n  framing: morse\n", 2, "coap or wap-push"},
		{"daily budget", "sms:\n  daily_budget: -2\n", 1, "budgets are -1 (unlimited), 0 (no SMS)"},
		{"proxy", "mode: proxy\n", 1, "external LwM2M server"},
		{"proxy bind", "mode: proxy\nproxy:\n  server: 127.0.0.1:5683\n  bind: here\n", 4, "not an IP"},
		{"mode", "mode: client\n", 1, "unknown mode"},
		{"fleet", "simulator:\n  fleet:\n    udp: -1\n", 2, "fleet sizes"},
		{"per device", "queue:\n  per_device: 0\n", 2, "per_device"},
		{"firmware max bytes", "firmware:\n  max_bytes: 0\n", 2, "max_bytes must be positive"},
		{"firmware images", "firmware:\n  max_images: -3\n", 2, "max_images"},
		{"firmware concurrency", "firmware:\n  concurrency: 0\n", 2, "concurrency must be in 1..10000"},
		{"firmware retries", "firmware:\n  retries: 1000\n", 2, "retries"},
		{"firmware budget", "firmware:\n  sms_budget: -5\n", 2, "sms_budget"},
		{"firmware push", "firmware:\n  allow_sms_push: maybe\n", 2, "maybe"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			var ce *Error
			if !errors.As(err, &ce) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err %v, want *Error", err)
			}
			if len(ce.Problems) == 0 || ce.Problems[0].Line != c.line || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("problems %v, want line %d with %q", ce.Problems, c.line, c.want)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("line %d", c.line)) {
				t.Fatalf("message %q lacks line %d", err, c.line)
			}
		})
	}
}

func TestParseOverridesKeepDefaults(t *testing.T) {
	c, err := Parse([]byte("api:\n  token: secret\nsimulator:\n  fleet:\n    sms: 5\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.API.Token != "secret" || c.API.Listen != "127.0.0.1:8080" || c.Simulator.Fleet.SMS != 5 || c.Simulator.Fleet.UDP != 2 {
		t.Fatalf("%+v", c)
	}
	c, err = Parse([]byte("simulator:\n  enabled: false\nmodems:\n  - device: /dev/ttyUSB2\n    msisdn: '+491710000001'\n    profile: simcom\nsms:\n  devices:\n    - endpoint: pole-7\n      msisdn: '+491720000007'\n      server_sim: '+491710000001'\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Modems) != 1 || c.Modems[0].Baud != 0 || c.SMS.Devices[0].Endpoint != "pole-7" {
		t.Fatalf("%+v", c)
	}
}

// TestParseNeverPanics: any mutation of the default file either parses or
// gives an *Error whose problems all carry a message.
func TestParseNeverPanics(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		lines := strings.Split(string(DefaultYAML), "\n")
		i := rapid.IntRange(0, len(lines)-1).Draw(t, "line")
		lines[i] = rapid.StringOf(rapid.RuneFrom([]rune("ab:- '\"[]{}#0123456789.\t"))).Draw(t, "text")
		_, err := Parse([]byte(strings.Join(lines, "\n")))
		if err == nil {
			return
		}
		var ce *Error
		if !errors.As(err, &ce) {
			t.Fatalf("error %v is not *Error", err)
		}
		for _, p := range ce.Problems {
			if p.Msg == "" {
				t.Fatalf("empty problem in %v", ce)
			}
		}
	})
}

func FuzzParse(f *testing.F) {
	f.Add(DefaultYAML)
	f.Add([]byte("api:\n  listen: nowhere\n"))
	f.Add([]byte("modems:\n  - device: /dev/ttyUSB0\n    msisdn: '12'\n"))
	f.Add([]byte("sms:\n  devices:\n    - {endpoint: a, msisdn: '+491720000001', server_sim: '+4917'}\n"))
	f.Add([]byte("&a [*a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err == nil && c == nil {
			t.Fatal("nil config without error")
		}
		if err != nil && !errors.Is(err, ErrInvalid) && !strings.Contains(err.Error(), "embedded") {
			t.Fatalf("error %v does not match ErrInvalid", err)
		}
	})
}
