package gateway

import (
	"bytes"
	"strings"
	"testing"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

func regDatagram(t *testing.T, code codes.Code, path string, queries ...string) []byte {
	t.Helper()
	m := message.Message{Code: code, Type: message.Confirmable, MessageID: 7, Token: []byte{1, 2}, Payload: []byte("</3/0>")}
	for _, seg := range strings.Split(strings.Trim(path, "/"), "/") {
		m.Options = m.Options.Add(message.Option{ID: message.URIPath, Value: []byte(seg)})
	}
	for _, q := range queries {
		m.Options = m.Options.Add(message.Option{ID: message.URIQuery, Value: []byte(q)})
	}
	m.Options = m.Options.Add(message.Option{ID: message.ContentFormat, Value: []byte{40}})
	n, _ := coder.DefaultCoder.Size(m)
	b := make([]byte, n)
	if _, err := coder.DefaultCoder.Encode(m, b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRewriteRegistration(t *testing.T) {
	cases := []struct {
		name    string
		code    codes.Code
		path    string
		in      []string
		want    []string
		changed bool
	}{
		{"1.1 S", codes.POST, "/rd", []string{"ep=l1", "lt=300", "lwm2m=1.1", "b=S", "sms=491720000001"}, []string{"ep=l1", "lt=300", "lwm2m=1.1", "b=U"}, true},
		{"1.1 S with Q", codes.POST, "/rd", []string{"ep=l1", "lwm2m=1.1", "b=S", "Q"}, []string{"ep=l1", "lwm2m=1.1", "b=U", "Q"}, true},
		{"1.0 SQ", codes.POST, "/rd", []string{"ep=l1", "lwm2m=1.0", "b=SQ", "sms=491720000001"}, []string{"ep=l1", "lwm2m=1.0", "b=UQ"}, true},
		{"1.0 S", codes.POST, "/rd", []string{"ep=l1", "b=S"}, []string{"ep=l1", "b=U"}, true},
		{"update S", codes.POST, "/rd/5", []string{"lt=300", "b=S"}, []string{"lt=300", "b=U"}, true},
		{"US keeps U", codes.POST, "/rd", []string{"ep=l1", "lwm2m=1.1", "b=US"}, []string{"ep=l1", "lwm2m=1.1", "b=U"}, true},
		{"already U", codes.POST, "/rd", []string{"ep=l1", "b=U"}, nil, false},
		{"update without query", codes.POST, "/rd/5", nil, nil, false},
		{"not rd", codes.POST, "/dp", []string{"b=S"}, nil, false},
		{"not POST", codes.GET, "/rd", []string{"b=S"}, nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := regDatagram(t, c.code, c.path, c.in...)
			out, changed := rewriteRegistration(in)
			if changed != c.changed {
				t.Fatalf("changed %v, want %v", changed, c.changed)
			}
			if !changed {
				if !bytes.Equal(out, in) {
					t.Fatal("unchanged datagram altered")
				}
				return
			}
			m := message.Message{Options: make(message.Options, 0, 16)}
			if _, err := coder.DefaultCoder.Decode(out, &m); err != nil {
				t.Fatal(err)
			}
			q, _ := m.Options.Queries()
			if strings.Join(q, "&") != strings.Join(c.want, "&") {
				t.Fatalf("queries %v, want %v", q, c.want)
			}
			p, _ := m.Options.Path()
			cf, _ := m.Options.ContentFormat()
			if p != c.path || cf != 40 || string(m.Payload) != "</3/0>" || m.MessageID != 7 || !bytes.Equal(m.Token, []byte{1, 2}) {
				t.Fatalf("rest of the message changed: %v", m.String())
			}
		})
	}
	if out, changed := rewriteRegistration([]byte{0xff, 0x00}); changed || len(out) != 2 {
		t.Fatal("garbage rewritten")
	}
}

func FuzzRewriteRegistration(f *testing.F) {
	f.Add([]byte{0x40, 0x02, 0x00, 0x07, 0xb2, 'r', 'd', 0x43, 'b', '=', 'S'})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, d []byte) {
		out, changed := rewriteRegistration(d)
		if !changed && !bytes.Equal(out, d) {
			t.Fatal("unchanged datagram altered")
		}
		if changed {
			m := message.Message{Options: make(message.Options, 0, 64)}
			if _, err := coder.DefaultCoder.Decode(out, &m); err != nil {
				t.Fatalf("rewritten datagram does not decode: %v", err)
			}
		}
	})
}
