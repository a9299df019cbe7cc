package secure

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkHandshake measures a complete handshake (Dial until
// established) over the in-memory network, per security mode.
func BenchmarkHandshake(b *testing.B) {
	devKey, srvKey := newKey(b), newKey(b)
	devRPK, _ := NewRawKeyCertificate(devKey)
	srvRPK, _ := NewRawKeyCertificate(srvKey)
	devSPKI, _ := PublicKeyInfo(devKey.Public())
	srvSPKI, _ := PublicKeyInfo(srvKey.Public())
	for _, m := range []struct {
		name     string
		srv, cli *Config
	}{
		{"PSK", &Config{PSKLookup: pskLookup, Logger: discardLogger()},
			&Config{PSKIdentity: []byte("dev-1"), PSKKey: testPSKs["dev-1"], Logger: discardLogger()}},
		{"ECDHE-RPK", &Config{Certificate: &srvRPK, VerifyRawKey: TrustKeys(devSPKI), Logger: discardLogger()},
			&Config{Certificate: &devRPK, VerifyRawKey: TrustKeys(srvSPKI), Logger: discardLogger()}},
	} {
		b.Run(m.name, func(b *testing.B) {
			n := newMemNet()
			s, err := NewServer(n.attach("srv", memParams()), m.srv)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c, err := Dial(ctx, n.attach(fmt.Sprintf("dev-%d", i), memParams()), memAddr("srv"), m.cli)
				if err != nil {
					b.Fatal(err)
				}
				_ = c.Close()
			}
		})
	}
}

// BenchmarkRoundTrip measures one 100-byte datagram client → server →
// client through an established PSK session (two encryptions, two
// decryptions, the demultiplexer and the queues).
func BenchmarkRoundTrip(b *testing.B) {
	n := newMemNet()
	s, err := NewServer(n.attach("srv", memParams()), &Config{PSKLookup: pskLookup, Logger: discardLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			k, addr, err := s.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = s.WriteTo(buf[:k], addr)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Dial(ctx, n.attach("dev", memParams()), memAddr("srv"), &Config{PSKIdentity: []byte("dev-1"), PSKKey: testPSKs["dev-1"]})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msg := bytes.Repeat([]byte{0x42}, 100)
	buf := make([]byte, 2048)
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.WriteTo(msg, memAddr("srv")); err != nil {
			b.Fatal(err)
		}
		if _, _, err := c.ReadFrom(buf); err != nil {
			b.Fatal(err)
		}
	}
}
