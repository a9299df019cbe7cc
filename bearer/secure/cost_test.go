package secure

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// smsSegments is how many binary SMS a datagram of n bytes takes: one SMS
// carries 140 bytes of 8-bit user data; a concatenated one 134 (8-bit
// reference UDH, TS 23.040 §9.2.3.24.1).
func smsSegments(n int) int {
	if n <= 140 {
		return 1
	}
	return (n + 133) / 134
}

// TestHandshakeCost measures what a full handshake costs on the wire:
// datagrams and bytes in each direction, and the binary SMS they would take,
// for PSK and ECDHE (raw key and X.509, P-256), with and without RFC 9146
// connection IDs, at the default 1200-byte MTU and at an SMS-sized MTU. The
// network is lossless and the retransmission timer long, so the counts are
// exactly one handshake: ClientHello, HelloVerifyRequest, ClientHello with
// cookie, the server flight, the client's key exchange flight and the
// server's Finished flight. Run with -v to see the table.
func TestHandshakeCost(t *testing.T) {
	pki := newPKI(t)
	devKey, srvKey := newKey(t), newKey(t)
	devRPK, _ := NewRawKeyCertificate(devKey)
	srvRPK, _ := NewRawKeyCertificate(srvKey)
	devSPKI, _ := PublicKeyInfo(devKey.Public())
	srvSPKI, _ := PublicKeyInfo(srvKey.Public())
	type cfgs struct{ srv, cli Config }
	modes := []struct {
		name string
		mk   func() cfgs
	}{
		{"PSK", func() cfgs {
			return cfgs{Config{PSKLookup: pskLookup}, Config{PSKIdentity: []byte("dev-1"), PSKKey: testPSKs["dev-1"]}}
		}},
		{"ECDHE-ECDSA raw key", func() cfgs {
			return cfgs{Config{Certificate: &srvRPK, VerifyRawKey: TrustKeys(devSPKI)},
				Config{Certificate: &devRPK, VerifyRawKey: TrustKeys(srvSPKI)}}
		}},
		{"ECDHE-ECDSA X.509", func() cfgs {
			return cfgs{Config{Certificate: &pki.server, RootCAs: pki.pool},
				Config{Certificate: &pki.client, RootCAs: pki.pool}}
		}},
	}
	var table strings.Builder
	fmt.Fprintf(&table, "\n| mode | CID | MTU | datagrams c→s | bytes c→s | datagrams s→c | bytes s→c | total bytes | SMS (140/134 B) |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, m := range modes {
		for _, cid := range []int{0, 6} {
			for _, mtu := range []int{0, 140} {
				name := fmt.Sprintf("%s/cid=%d/mtu=%d", m.name, cid, mtu)
				t.Run(name, func(t *testing.T) {
					c := m.mk()
					c.srv.CIDLength, c.srv.MTU, c.cli.MTU = new(cid), mtu, mtu
					c.srv.FlightInterval, c.cli.FlightInterval = 10*time.Second, 10*time.Second
					n := newMemNet()
					startServer(t, n, &c.srv)
					inner := n.attach("dev", memParams())
					conn, err := Dial(testCtx(t), inner, memAddr("srv"), &c.cli)
					if err != nil {
						t.Fatal(err)
					}
					defer conn.Close()
					// The server's last flight may still be in the pipe when
					// Dial returns; wait until both directions balance.
					waitFor(t, "final flight", func() bool { return inner.recvN.Load() >= 3 })
					sent, recv := inner.sizes()
					sms := 0
					for _, s := range append(append([]int(nil), sent...), recv...) {
						sms += smsSegments(s)
					}
					sb, rb := sum(sent), sum(recv)
					mtuS := "1200"
					if mtu > 0 {
						mtuS = fmt.Sprint(mtu)
					}
					fmt.Fprintf(&table, "| %s | %d | %s | %d | %d | %d | %d | %d | %d |\n",
						m.name, cid, mtuS, len(sent), sb, len(recv), rb, sb+rb, sms)
					t.Logf("sent %v recv %v", sent, recv)
					if len(sent) < 3 || len(recv) < 3 {
						t.Errorf("fewer flights than a DTLS 1.2 handshake has: %v %v", sent, recv)
					}
					if m.name == "PSK" && mtu == 0 && (len(sent) != 3 || len(recv) != 3 || sb+rb > 800) {
						t.Errorf("PSK handshake costs more than expected: %v %v", sent, recv)
					}
				})
			}
		}
	}
	t.Log(table.String())
}

func sum(xs []int) int {
	s := 0
	for _, x := range xs {
		s += x
	}
	return s
}
