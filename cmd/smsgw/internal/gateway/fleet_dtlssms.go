package gateway

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/secure"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
)

// DTLSSMSSessionKey is the key a DTLS-over-SMS demo light keeps its DTLS
// session under (secure.Config.SessionKey): the LwM2M server account, not
// the bearer, so a device that also had a UDP path would offer the same
// session on both.
const DTLSSMSSessionKey = "lwm2m-server-101"

// dtlsSMSLight is a DTLS-over-SMS light's DTLS state: its session cache,
// kept in <state dir>/<light>/dtls-sessions.db so that the light resumes
// its session (abbreviated handshake) after a restart, as a device that
// keeps its session in flash.
type dtlsSMSLight struct {
	sess *secure.SessionCache
	smsB *sms.Bearer
	// Resumed and Full count the light's handshakes by kind.
	resumed, full atomic.Int64
}

func (d *dtlsSMSLight) close() {
	d.smsB.Close() // its session's Endpoint may already have closed it
	d.sess.Close()
}

// DTLSHandshakes returns how many full and abbreviated handshakes a
// DTLS-over-SMS light made since it started (0, 0 for other lights).
func (l *Light) DTLSHandshakes() (full, resumed int64) {
	if l.dtls == nil {
		return 0, 0
	}
	return l.dtls.full.Load(), l.dtls.resumed.Load()
}

// lightPSK returns the PSK provisioned into <dir>/psk at the light's first
// start (a real device keeps its key across reboots, and a resumed session
// is bound to the key it was made with), or key when there is none yet,
// written there for the next start.
func lightPSK(dir string, key []byte) []byte {
	file := filepath.Join(dir, "psk")
	if b, err := os.ReadFile(file); err == nil {
		if k, err := hex.DecodeString(strings.TrimSpace(string(b))); err == nil && len(k) == len(key) {
			return k
		}
	}
	if os.MkdirAll(dir, 0o700) == nil {
		_ = os.WriteFile(file, []byte(hex.EncodeToString(key)+"\n"), 0o600)
	}
	return key
}

// startDTLSSMS handshakes with the server over SMS (PSK, one SMS segment
// per handshake datagram, the server's session resumed when the light has
// one) and registers, in the background, trying again every 10 s while the
// handshake fails.
func (f *Fleet) startDTLSSMS(ctx context.Context, s FleetSpec, l *Light, dir string) error {
	sess, err := secure.OpenSessionCache(filepath.Join(dir, dtlsSessionsFileName), secure.WithMaxEntries(4))
	if err != nil {
		return err
	}
	l.dtls = &dtlsSMSLight{sess: sess, smsB: l.smsB}
	srv, err := sms.ParseMSISDN(l.ServerSIM)
	if err != nil {
		return err
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for ctx.Err() == nil {
			err := f.dialDTLSSMS(ctx, s, l, srv)
			if err == nil || ctx.Err() != nil {
				return
			}
			f.log.Warn("demo light: DTLS over SMS failed, retrying", "light", l.Name, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Second):
			}
		}
	}()
	return nil
}

func (f *Fleet) dialDTLSSMS(ctx context.Context, s FleetSpec, l *Light, srv net.Addr) error {
	_ = l.smsB.SetReadDeadline(time.Time{}) // a failed attempt's lent bearer set it
	hctx, cancel := context.WithTimeout(ctx, smsHandshakeTimeout)
	defer cancel()
	conn, err := secure.Dial(hctx, &lentBearer{Bearer: l.smsB}, srv, &secure.Config{
		PSKIdentity: []byte(l.PSK.Identity), PSKKey: l.PSK.Key,
		MTU: smsHandshakeMTU, CIDLength: new(0), FlightInterval: smsFlightInterval, HandshakeTimeout: smsHandshakeTimeout,
		Sessions: l.dtls.sess, SessionKey: DTLSSMSSessionKey, QuietClose: true, // a light going dark says nothing
		Logger: s.Logger.With("light", l.Name, "bearer", "dtls+sms"),
	})
	if err != nil {
		return err
	}
	if conn.Resumed() {
		l.dtls.resumed.Add(1)
	} else {
		l.dtls.full.Add(1)
	}
	ep, err := bearer.NewEndpoint(conn, bearer.WithHandler(l.c))
	if err != nil {
		conn.Close()
		return err
	}
	f.mu.Lock()
	l.smsEP = ep
	f.mu.Unlock()
	if err := l.c.StartRetry(ctx, ep, srv); err != nil {
		return fmt.Errorf("register over DTLS over SMS: %w", err)
	}
	return nil
}

// lentBearer lends a light's SMS bearer to one DTLS session: secure.Dial
// closes its bearer when the handshake fails, and the light tries again on
// the same SMS bearer. Closing it ends the session's reads (a deadline
// wakes the reader, which then sees it closed) and leaves the SMS bearer
// open.
type lentBearer struct {
	*sms.Bearer
	closed atomic.Bool
}

func (b *lentBearer) ReadFrom(p []byte) (int, net.Addr, error) {
	if b.closed.Load() {
		return 0, nil, net.ErrClosed
	}
	n, a, err := b.Bearer.ReadFrom(p)
	if err != nil && b.closed.Load() {
		return 0, nil, net.ErrClosed
	}
	return n, a, err
}

func (b *lentBearer) Close() error {
	if !b.closed.Swap(true) {
		_ = b.Bearer.SetReadDeadline(time.Now())
	}
	return nil
}
