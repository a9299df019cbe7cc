package config

import (
	"errors"
	"strings"
	"testing"
)

func TestOSCOREConfig(t *testing.T) {
	entry := func(ep, secret, sid, rid string) string {
		return "    - endpoint: " + ep + "\n      master_secret: '" + secret + "'\n      sender_id: '" + sid + "'\n      recipient_id: '" + rid + "'\n"
	}
	good := "0102030405060708090a0b0c0d0e0f10"
	for _, c := range []struct{ name, yaml, want string }{
		{"short secret", entry("a", "0102", "", "01"), "master_secret must be at least 16 bytes"},
		{"not hex", entry("a", good+"zz", "", "01"), "not hex"},
		{"id too long", entry("a", good, "", "0102030405060708"), "recipient ID of 8 bytes"},
		{"same ids", entry("a", good, "01", "01"), "must differ"},
		{"no endpoint", entry("''", good, "", "01"), "endpoint is required"},
		{"endpoint twice", entry("a", good, "", "01") + entry("a", good, "", "02"), "two OSCORE contexts"},
		{"recipient twice", entry("a", good, "", "01") + entry("b", good, "", "01"), "used twice"},
		{"rederive recipient shared across ID contexts", entry("a", good, "", "01") + "      rederive: true\n" +
			entry("b", good, "", "01") + "      id_context: '37cb'\n", "used by a context with rederive"},
		{"recipient of a rederive context reused", entry("a", good, "", "01") + "      id_context: '37cb'\n" +
			entry("b", good, "", "01") + "      rederive: true\n", "is used by another context"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte("lwm2m:\n  oscore:\n" + c.yaml))
			var ce *Error
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), c.want) || ce.Problems[0].Line == 0 {
				t.Fatalf("err %v, want a line-numbered %q", err, c.want)
			}
		})
	}
	cfg, err := Parse([]byte("lwm2m:\n  oscore:\n" + entry("pole-8", good, "", "01") + "      id_context: '37cbf3210017a2d3'\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := cfg.LwM2M.OSCORE[0].Params()
	if err != nil || len(p.MasterSecret) != 16 || len(p.SenderID) != 0 || string(p.RecipientID) != "\x01" || len(p.IDContext) != 8 {
		t.Fatalf("params %+v %v", p, err)
	}
	if len(cfg.LwM2M.OSCORE[0].ContextOptions()) != 0 {
		t.Fatal("Appendix B.2 on without rederive")
	}
	cfg, err = Parse([]byte("lwm2m:\n  oscore:\n" + entry("pole-9", good, "", "02") + "      rederive: true\n"))
	if err != nil || !cfg.LwM2M.OSCORE[0].Rederive || len(cfg.LwM2M.OSCORE[0].ContextOptions()) != 1 {
		t.Fatalf("rederive: %v", err)
	}
}
