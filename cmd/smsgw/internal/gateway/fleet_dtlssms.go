package gateway

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

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

// startDTLSSMS starts the light's registration procedure in the
// background: its first attempt handshakes with the server over SMS (PSK,
// one SMS segment per handshake datagram, the server's session resumed
// when the light has one) and registers; a handshake or Register that
// fails waits the procedure's backoff (/1/0/17-20), and a session the
// server lost later (a restart: its Update goes unanswered) is dialled
// again the same way (client.WithRedial, set by Fleet.start), so a light
// whose server is gone costs the SMS the procedure allows, no more.
func (f *Fleet) startDTLSSMS(ctx context.Context, _ FleetSpec, l *Light, dir string) error {
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
		if err := l.c.StartRetry(ctx, nil, srv); err != nil && ctx.Err() == nil {
			f.log.Error("demo light: DTLS over SMS registration failed", "light", l.Name, "err", err)
		}
	}()
	return nil
}

// dialDTLSSMS opens a DTLS session with the server over the light's SMS
// bearer (resumed from its cache when the server still knows it) and an
// Endpoint on it with the light's client as handler.
func (f *Fleet) dialDTLSSMS(ctx context.Context, s FleetSpec, l *Light) (*bearer.Endpoint, error) {
	if l.dtls == nil {
		return nil, errors.New("demo light: DTLS over SMS not started")
	}
	srv, err := sms.ParseMSISDN(l.ServerSIM)
	if err != nil {
		return nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, smsHandshakeTimeout)
	defer cancel()
	conn, err := secure.Dial(hctx, l.smsB.Lend(), srv, &secure.Config{
		PSKIdentity: []byte(l.PSK.Identity), PSKKey: l.PSK.Key,
		MTU: smsHandshakeMTU, CIDLength: new(0), FlightInterval: smsFlightInterval, HandshakeTimeout: smsHandshakeTimeout,
		Sessions: l.dtls.sess, SessionKey: DTLSSMSSessionKey, QuietClose: true, // a light going dark says nothing
		Logger: s.Logger.With("light", l.Name, "bearer", "dtls+sms"),
	})
	if err != nil {
		return nil, err
	}
	if conn.Resumed() {
		l.dtls.resumed.Add(1)
	} else {
		l.dtls.full.Add(1)
	}
	ep, err := bearer.NewEndpoint(conn, bearer.WithHandler(l.c))
	if err != nil {
		conn.Close()
		return nil, err
	}
	f.mu.Lock()
	l.smsEP = ep
	f.mu.Unlock()
	return ep, nil
}
