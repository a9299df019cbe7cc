package config

import (
	"strings"
	"testing"
)

// TestProxyModePorts: in proxy mode the embedded server's listeners move
// off 5683/5684 unless the file sets them (the external server proxied to
// often runs on the same host), and a listener set on the external
// server's port is refused by check-config.
func TestProxyModePorts(t *testing.T) {
	tests := []struct {
		name          string
		yaml          string
		udp, dtls     string
		wantErr, line string
	}{
		{name: "server mode keeps 5683", yaml: "mode: server\n", udp: "127.0.0.1:5683", dtls: "127.0.0.1:5684"},
		{name: "proxy mode moves the defaults",
			yaml: "mode: proxy\nproxy:\n  server: 127.0.0.1:5683\n", udp: ProxyModeUDP, dtls: ProxyModeDTLS},
		{name: "proxy mode keeps an explicit port",
			yaml: "mode: proxy\nproxy:\n  server: 127.0.0.1:5683\nlwm2m:\n  udp: 127.0.0.1:6000\n", udp: "127.0.0.1:6000", dtls: ProxyModeDTLS},
		{name: "proxy mode keeps dtls off",
			yaml: "mode: proxy\nproxy:\n  server: 127.0.0.1:5683\nlwm2m:\n  dtls: \"\"\nsimulator:\n  fleet:\n    dtls: 0\n", udp: ProxyModeUDP, dtls: ""},
		{name: "explicit clash", yaml: "mode: proxy\nproxy:\n  server: 127.0.0.1:5683\nlwm2m:\n  udp: 127.0.0.1:5683\n",
			wantErr: "is the port of the external server", line: "line 5: lwm2m.udp"},
		{name: "wildcard clash", yaml: "mode: proxy\nproxy:\n  server: localhost:5783\nlwm2m:\n  udp: 0.0.0.0:5783\n",
			wantErr: "is the port of the external server", line: "line 5: lwm2m.udp"},
		{name: "remote server same port", yaml: "mode: proxy\nproxy:\n  server: 192.0.2.7:5683\nlwm2m:\n  udp: 127.0.0.1:5683\n",
			udp: "127.0.0.1:5683", dtls: ProxyModeDTLS},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), tc.line) {
					t.Fatalf("err %v, want %q at %q", err, tc.wantErr, tc.line)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.LwM2M.UDP != tc.udp || c.LwM2M.DTLS != tc.dtls {
				t.Fatalf("udp %q dtls %q, want %q %q", c.LwM2M.UDP, c.LwM2M.DTLS, tc.udp, tc.dtls)
			}
		})
	}
}

func TestModelsDirChecked(t *testing.T) {
	if _, err := Parse([]byte("lwm2m:\n  models: /nonexistent/models\n")); err == nil || !strings.Contains(err.Error(), "line 2: lwm2m.models") {
		t.Fatalf("missing models dir: %v", err)
	}
	dir := t.TempDir()
	c, err := Parse([]byte("lwm2m:\n  models: " + dir + "\n  strict_binding: true\n"))
	if err != nil || c.LwM2M.Models != dir || !c.LwM2M.StrictBinding {
		t.Fatalf("%+v %v", c, err)
	}
}
