package route

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
)

type fake struct {
	name string
	err  error
	in   chan sms.Inbound
	sent int
}

func (f *fake) SendTPDU(_ context.Context, from, _ string, _ []byte) (string, uint8, error) {
	if f.err != nil {
		return "", 0, f.err
	}
	f.sent++
	return from, 1, nil
}
func (f *fake) Inbound() <-chan sms.Inbound { return f.in }

type retryErr struct{ retry bool }

func (e retryErr) Error() string   { return "fake" }
func (e retryErr) Retryable() bool { return e.retry }

func TestSendPicksRouteAndFailsOver(t *testing.T) {
	const a, b = "+15550001", "+15550002"
	cases := []struct {
		name      string
		smppErr   error
		smppReady bool
		modemErr  error
		from      string
		want      string // route that sent, "" for an error
		wantErr   error
	}{
		{"smpp preferred", nil, true, nil, a, "smpp", nil},
		{"number only on modems", nil, true, nil, b, "modems", nil},
		{"smpp not ready: modems first", nil, false, nil, a, "modems", nil},
		{"smpp retryable error: failover", retryErr{true}, true, nil, a, "modems", nil},
		{"smpp permanent error: no failover", retryErr{false}, true, nil, a, "", retryErr{false}},
		{"both fail", retryErr{true}, true, retryErr{true}, a, "", retryErr{true}},
		{"unknown number", nil, true, nil, "+15559999", "", ErrNoRoute},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			smpp := &fake{name: "smpp", err: c.smppErr, in: make(chan sms.Inbound)}
			modems := &fake{name: "modems", err: c.modemErr, in: make(chan sms.Inbound)}
			ready := c.smppReady
			m, err := New([]Route{
				{Name: "smpp", Transport: smpp, Numbers: []string{a}, Ready: func() bool { return ready }},
				{Name: "modems", Transport: modems, Numbers: []string{a, b}},
			}, WithStateFile(filepath.Join(t.TempDir(), "route.db")))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			_, _, err = m.SendTPDU(context.Background(), c.from, "+15551234", []byte{1})
			if c.want == "" {
				if err == nil || !errors.Is(err, c.wantErr) {
					t.Fatalf("err = %v, want %v", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := map[bool]string{true: "smpp", false: "modems"}[smpp.sent == 1]; got != c.want || smpp.sent+modems.sent != 1 {
				t.Fatalf("sent via smpp %d, modems %d; want %s", smpp.sent, modems.sent, c.want)
			}
		})
	}
}

func TestInboundMerged(t *testing.T) {
	x, y := &fake{in: make(chan sms.Inbound, 1)}, &fake{in: make(chan sms.Inbound, 1)}
	m, err := New([]Route{{Name: "x", Transport: x}, {Name: "y", Transport: y}}, WithBuffer(4), WithStateFile(filepath.Join(t.TempDir(), "route.db")))
	if err != nil {
		t.Fatal(err)
	}
	x.in <- sms.Inbound{SIM: "+1"}
	y.in <- sms.Inbound{SIM: "+2"}
	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case msg := <-m.Inbound():
			got[msg.SIM] = true
		case <-time.After(5 * time.Second):
			t.Fatal("not merged")
		}
	}
	close(x.in)
	close(y.in)
	select {
	case _, ok := <-m.Inbound():
		if ok {
			t.Fatal("unexpected message")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("merged channel not closed after every route closed")
	}
	m.Close()
	if st := m.Stats(); st[0].Received != 1 || st[1].Received != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestNewRefusesBadRoutes(t *testing.T) {
	cases := []struct {
		name   string
		routes []Route
	}{
		{"none", nil},
		{"nil transport", []Route{{Name: "x"}}},
		{"bad number", []Route{{Name: "x", Transport: &fake{}, Numbers: []string{"12ab"}}}},
		{"shared number without a state file", []Route{{Name: "x", Transport: &fake{}, Numbers: []string{"+15550001"}},
			{Name: "y", Transport: &fake{}, Numbers: []string{"+15550001"}}}},
		{"any-number route beside another without a state file", []Route{{Name: "x", Transport: &fake{}},
			{Name: "y", Transport: &fake{}, Numbers: []string{"+15550001"}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := New(c.routes); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
