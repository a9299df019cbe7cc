package gateway

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/oscore"
	"github.com/m2mbearer/m2mbearer/bearer/secure"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/m2mbearer/m2mbearer/lwm2m/client"
	"github.com/m2mbearer/m2mbearer/lwm2m/content"
	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/modem/sim"
)

// Light kinds of the demo fleet.
const (
	KindUDP   = "udp"   // always reachable on UDP
	KindQueue = "queue" // UDP in queue mode, woken by SMS
	KindSMS   = "sms"   // SMS only
	KindDTLS  = "dtls"  // DTLS (PSK) over UDP
	// KindOSCORE lights talk OSCORE (RFC 8613) over UDP, KindOSCORESMS over
	// SMS only; their contexts are generated at start, like the DTLS PSKs.
	KindOSCORE    = "oscore"
	KindOSCORESMS = "oscore-sms"
	// KindDTLSSMS lights are SMS only and talk DTLS (PSK) over SMS
	// (fleet_dtlssms.go).
	KindDTLSSMS = "dtls-sms"
	// KindOSCOREQueue lights are queue lights on OSCORE: UDP in queue
	// mode, woken by an OSCORE-protected SMS trigger; one context (one
	// sequence number space) for both bearers.
	KindOSCOREQueue = "oscore-queue"
)

// sleeps reports whether the light is in queue mode, woken by SMS.
func (l *Light) sleeps() bool { return l.Kind == KindQueue || l.Kind == KindOSCOREQueue }

// Light is one simulated streetlight of the demo fleet: our LwM2M client with
// objects 3 (Device), 4 and 3311 (Light Control).
type Light struct {
	Name, Kind string
	MSISDN     string      // "" for UDP lights
	ServerSIM  string      // the server number it accepts SMS from
	PSK        *PSK        // DTLS lights: the credentials
	OSCORE     *OSCOREKeys // OSCORE lights: the context's keying material

	c      *client.Client
	udpEP  *bearer.Endpoint
	smsEP  *bearer.Endpoint
	smsB   *sms.Bearer
	link   *endpointLink
	sleepy *sleepyBearer
	fw     *firmware.Device
	fwBase int // updates applied before this start
	oscSt  *oscore.BoltStore
	oscCtx *oscore.Context // OSCORE lights: one context for every bearer
	wmu    sync.Mutex
	writes map[string]int
	dtls   *dtlsSMSLight // KindDTLSSMS
}

// PSK is a DTLS pre-shared key.
type PSK struct {
	Identity string
	Key      []byte
}

// Fleet is the demo fleet; Close stops every light.
type Fleet struct {
	Lights []*Light
	mu     sync.Mutex // guards the endpoints DTLS lights create late
	log    *slog.Logger
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// FleetSpec describes the fleet to start.
type FleetSpec struct {
	UDP, Queue, SMS, DTLS int
	OSCORE, OSCORESMS     int
	DTLSSMS               int
	OSCOREQueue           int
	Awake                 time.Duration
	ServerUDP, ServerDTLS net.Addr
	ServerSIMs            []string
	Network               *sim.Network
	StateDir              string
	Logger                *slog.Logger
	// SMSTransport, when set, gives each SMS-capable light its SIM (a
	// simulated modem through the real driver, say) instead of a modem-less
	// Endpoint on Network; the caller owns and closes what it returns.
	SMSTransport func(msisdn string) (sms.Transport, error)
}

// DeviceMSISDN is the number of the i-th SMS-capable demo light.
func DeviceMSISDN(i int) string { return fmt.Sprintf("+49172%07d", i+1) }

// FleetPlan returns the lights a spec creates (names, kinds, numbers),
// so that the server can be configured before the lights start.
func FleetPlan(s FleetSpec) []*Light {
	var out []*Light
	smsIdx := 0
	add := func(kind string, n int) {
		for i := 0; i < n; i++ {
			l := &Light{Name: fmt.Sprintf("light-%s-%d", kind, i+1), Kind: kind}
			if (kind == KindQueue || kind == KindSMS || kind == KindOSCORESMS || kind == KindDTLSSMS || kind == KindOSCOREQueue) && len(s.ServerSIMs) > 0 {
				l.MSISDN = DeviceMSISDN(smsIdx)
				l.ServerSIM = s.ServerSIMs[smsIdx%len(s.ServerSIMs)]
				smsIdx++
			}
			out = append(out, l)
		}
	}
	add(KindUDP, s.UDP)
	add(KindQueue, s.Queue)
	add(KindSMS, s.SMS)
	add(KindDTLS, s.DTLS)
	add(KindOSCORE, s.OSCORE)
	add(KindOSCORESMS, s.OSCORESMS)
	add(KindDTLSSMS, s.DTLSSMS)
	add(KindOSCOREQueue, s.OSCOREQueue)
	nosc := 0
	for _, l := range out {
		if l.Kind == KindDTLS || l.Kind == KindDTLSSMS {
			key := make([]byte, 16)
			rand.Read(key)
			l.PSK = &PSK{Identity: l.Name, Key: key}
			if l.Kind == KindDTLSSMS && s.StateDir != "" {
				l.PSK.Key = lightPSK(filepath.Join(s.StateDir, l.Name), key)
			}
		}
		if l.Kind == KindOSCORE || l.Kind == KindOSCORESMS || l.Kind == KindOSCOREQueue {
			dir := ""
			if s.StateDir != "" {
				dir = filepath.Join(s.StateDir, l.Name)
			}
			l.OSCORE = newOSCOREKeys(dir, nosc)
			nosc++
		}
	}
	return out
}

// StartFleet creates and registers the lights of the plan. Registration
// runs in the background (each light's update loop retries); Close stops it.
func StartFleet(ctx context.Context, s FleetSpec, plan []*Light) (*Fleet, error) {
	ctx, cancel := context.WithCancel(ctx)
	f := &Fleet{log: s.Logger, cancel: cancel}
	for _, l := range plan {
		if err := f.start(ctx, s, l); err != nil {
			f.Close()
			return nil, fmt.Errorf("demo light %s: %w", l.Name, err)
		}
		f.Lights = append(f.Lights, l)
	}
	return f, nil
}

// start brings one light up, step by step: its LwM2M client and objects,
// its bearers (SMS, then UDP), its firmware object, then its registration
// in the background.
func (f *Fleet) start(ctx context.Context, s FleetSpec, l *Light) error {
	binding, err := f.newClient(s, l)
	if err != nil {
		return err
	}
	dir := filepath.Join(s.StateDir, l.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fwState, err := loadLightFirmware(dir)
	if err != nil {
		return err
	}
	if err := l.addObjects(binding, fwState); err != nil {
		return err
	}
	if l.MSISDN != "" {
		if err := l.openSMS(s, dir); err != nil {
			return err
		}
	}
	if l.Kind != KindSMS && l.Kind != KindDTLS && l.Kind != KindOSCORESMS && l.Kind != KindDTLSSMS {
		if err := l.openUDP(s, dir); err != nil {
			return err
		}
	}
	if err := l.addFirmware(s, dir, fwState); err != nil {
		return err
	}
	return f.register(ctx, s, l, dir)
}

// newClient creates the light's LwM2M client (l.c) for its kind and returns
// its binding (U, US or S).
func (f *Fleet) newClient(s FleetSpec, l *Light) (binding string, err error) {
	opts := []client.Option{client.WithLifetime(600), client.WithLogger(s.Logger.With("light", l.Name)), client.WithRetry(2 * time.Second)}
	binding = "U"
	switch l.Kind {
	case KindQueue, KindOSCOREQueue:
		binding = "US"
		opts = append(opts, client.WithQueueMode(), client.WithSMSNumber(l.MSISDN[1:]))
	case KindSMS, KindOSCORESMS, KindDTLSSMS:
		binding = "S"
		opts = append(opts, client.WithSMSNumber(l.MSISDN[1:]))
	}
	if l.Kind == KindDTLSSMS { // a new DTLS session when the server lost it (fleet_dtlssms.go)
		opts = append(opts, client.WithRedial(func(ctx context.Context) (*bearer.Endpoint, error) { return f.dialDTLSSMS(ctx, s, l) }))
	}
	opts = append(opts, client.WithBinding(binding))
	c, err := client.New(l.Name, opts...)
	if err != nil {
		return "", err
	}
	l.c = c
	return binding, nil
}

// addObjects gives the light's client its objects: Server, Device (with
// the firmware version it runs), Connectivity, Light Control, and the
// registration procedure's settings.
func (l *Light) addObjects(binding string, fwState *LightFirmware) error {
	c := l.c
	must := func(err error) error { return err }
	if err := errors.Join(
		must(c.AddServer(client.Server{ShortID: 101, Lifetime: 600, Binding: binding})),
		must(c.AddDevice(client.Device{Manufacturer: "m2mbearer", Model: "SL-" + l.Kind, Serial: l.Name,
			Firmware: fwState.Version, Binding: binding})),
		must(c.AddConnectivity(client.Connectivity{NetworkBearer: 6, RSSI: -71, LinkQuality: 80})),
		must(c.AddObject(3311, client.Handlers{Write: l.recordWrite})),
		must(c.Set(path.Resource(3311, 0, 5850), content.NewBool(true))),
		must(c.Set(path.Resource(3311, 0, 5851), content.NewInt(80))),
		// The registration procedure (LwM2M 1.1, /1/x/17-20): 5 attempts
		// 2 s x 2^(n-1) apart, 3 sequences an hour apart; a light whose
		// Register is refused costs at most 15 Register SMS, then stops.
		must(c.Set(path.Resource(1, 0, 17), content.NewInt(5))),
		must(c.Set(path.Resource(1, 0, 18), content.NewInt(2))),
		must(c.Set(path.Resource(1, 0, 19), content.NewInt(3600))),
		must(c.Set(path.Resource(1, 0, 20), content.NewInt(3))),
	); err != nil {
		return err
	}
	if l.sleeps() {
		if err := c.Set(path.Resource(1, 0, 21), content.NewBool(true)); err != nil {
			return err
		}
	}
	return nil
}

// openSMS opens the light's SMS bearer (l.smsB, state in dir) on its SIM,
// OSCORE-wrapped for OSCORE lights, and its SMS Endpoint (l.smsEP) but for
// DTLS-over-SMS lights, whose Endpoint comes with their DTLS session.
func (l *Light) openSMS(s FleetSpec, dir string) error {
	var tr sms.Transport
	var err error
	if s.SMSTransport != nil {
		if tr, err = s.SMSTransport(l.MSISDN); err != nil {
			return err
		}
	} else {
		link, err := newEndpointLink(s.Network, l.MSISDN)
		if err != nil {
			return err
		}
		l.link, tr = link, link
	}
	mode := sms.ModeNoSec
	if l.OSCORE != nil {
		mode = sms.ModeOSCORE
	}
	if l.Kind == KindDTLSSMS {
		mode = sms.ModeDTLS
	}
	b, err := sms.New(tr, sms.Config{
		StateDir: dir,
		Peers:    map[string]sms.Peer{l.ServerSIM: {Security: mode, SIM: l.MSISDN}},
		Worker:   outbox.WorkerConfig{Poll: 20 * time.Millisecond, BackoffMin: 50 * time.Millisecond, BackoffMax: time.Second},
		Logger:   s.Logger.With("light", l.Name, "bearer", "sms"),
	})
	if err != nil {
		return err
	}
	l.smsB = b
	var sb bearer.Bearer = b
	if l.OSCORE != nil {
		a, err := sms.ParseMSISDN(l.ServerSIM)
		if err != nil {
			return err
		}
		var reg net.Addr = a
		if l.sleeps() { // registers over UDP, woken over SMS
			reg = s.ServerUDP
		}
		if sb, err = l.wrapOSCORE(dir, b, a, reg); err != nil {
			return err
		}
	}
	if l.Kind != KindDTLSSMS { // a DTLS light's Endpoint comes with its session (startDTLSSMS)
		if l.smsEP, err = bearer.NewEndpoint(sb, bearer.WithHandler(l.c)); err != nil {
			return err
		}
	}
	return nil
}

// openUDP opens the light's UDP Endpoint (l.udpEP) on its stable port
// (listenStable), asleep between wake-ups for queue lights and
// OSCORE-wrapped for OSCORE lights.
func (l *Light) openUDP(s FleetSpec, dir string) error {
	u, err := listenStable(dir)
	if err != nil {
		return err
	}
	var b bearer.Bearer = u
	if l.sleeps() {
		l.sleepy = &sleepyBearer{Bearer: u, window: s.Awake}
		b = l.sleepy
	}
	if l.OSCORE != nil {
		if b, err = l.wrapOSCORE(dir, b, s.ServerUDP, s.ServerUDP); err != nil {
			u.Close()
			return err
		}
	}
	if l.udpEP, err = bearer.NewEndpoint(b, bearer.WithHandler(l.c)); err != nil {
		return err
	}
	return nil
}

// addFirmware gives the light Object 5 (l.fw): the light checks, applies
// and "reboots" into a package (bad checksum: Update Result 5). UDP lights
// pull over CoAP too; SMS and DTLS lights take pushes only.
func (l *Light) addFirmware(s FleetSpec, dir string, fwState *LightFirmware) error {
	l.fwBase = fwState.Applied
	fw, err := firmware.NewDevice(l.c, firmware.DeviceConfig{Endpoint: l.udpEP, PushOnly: l.udpEP == nil,
		Applied: func(v string) {
			// The light "flashes" the version before it reboots: it
			// survives a restart of the daemon, and so does the count.
			fwState.Version = v
			fwState.Applied++
			if err := saveLightFirmware(dir, fwState); err != nil {
				s.Logger.Error("demo light: saving firmware state", "light", l.Name, "err", err)
			}
		}})
	if err != nil {
		return err
	}
	l.fw = fw
	return nil
}

// register starts the light's registration in the background, on its
// bearer: over a DTLS session (startDTLS, startDTLSSMS), over SMS for SMS
// lights, else over UDP.
func (f *Fleet) register(ctx context.Context, s FleetSpec, l *Light, dir string) error {
	ep, srv := l.udpEP, s.ServerUDP
	if l.Kind == KindSMS || l.Kind == KindOSCORESMS {
		a, err := sms.ParseMSISDN(l.ServerSIM)
		if err != nil {
			return err
		}
		ep, srv = l.smsEP, a
	}
	if l.Kind == KindDTLS {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.startDTLS(ctx, s, l)
		}()
		return nil
	}
	if l.Kind == KindDTLSSMS {
		return f.startDTLSSMS(ctx, s, l, dir)
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		// The registration procedure with its backoff; it gives up for
		// good when every attempt failed (no SMS storm).
		if err := l.c.StartRetry(ctx, ep, srv); err != nil && ctx.Err() == nil {
			f.log.Error("demo light: registration failed", "light", l.Name, "err", err)
		}
	}()
	return nil
}

// startDTLS handshakes with the server (PSK) and registers, retrying
// until it succeeds or ctx ends.
func (f *Fleet) startDTLS(ctx context.Context, s FleetSpec, l *Light) {
	for ctx.Err() == nil {
		err := func() error {
			u, err := udp.Listen("udp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			conn, err := secure.Dial(hctx, u, s.ServerDTLS, &secure.Config{PSKIdentity: []byte(l.PSK.Identity), PSKKey: l.PSK.Key,
				Logger: s.Logger.With("light", l.Name)})
			if err != nil {
				u.Close()
				return err
			}
			ep, err := bearer.NewEndpoint(conn, bearer.WithHandler(l.c))
			if err != nil {
				conn.Close()
				return err
			}
			if err := l.c.Start(hctx, ep, s.ServerDTLS); err != nil {
				ep.Close()
				return err
			}
			f.mu.Lock()
			l.udpEP = ep
			f.mu.Unlock()
			return nil
		}()
		if err == nil {
			return
		}
		f.log.Warn("demo light: DTLS register failed, retrying", "light", l.Name, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
}

// Awake reports whether a queue-mode light is listening now (always true for
// the others).
func (l *Light) Awake() bool { return l.sleepy == nil || l.sleepy.Awake() }

// SMSStats returns the counters of the light's SMS bearer (false for a
// light without SMS).
func (l *Light) SMSStats() (sms.Stats, bool) {
	if l.smsB == nil {
		return sms.Stats{}, false
	}
	return l.smsB.Stats(), true
}

// recordWrite counts the Writes the light applied to its Light Control
// object, by path and value (tests check each ran once).
func (l *Light) recordWrite(p path.Path, v content.Value) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.writes == nil {
		l.writes = map[string]int{}
	}
	if len(l.writes) < 4096 {
		l.writes[p.String()+"="+v.String()]++
	}
	return nil
}

// Writes returns how often each Light Control write ("/3311/0/5851=42")
// was applied.
func (l *Light) Writes() map[string]int {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	out := make(map[string]int, len(l.writes))
	for k, v := range l.writes {
		out[k] = v
	}
	return out
}

// FirmwareApplied returns how many firmware updates the light applied, over
// all its starts.
func (l *Light) FirmwareApplied() int {
	if l.fw == nil {
		return l.fwBase
	}
	return l.fwBase + l.fw.Applied()
}

// Close stops the lights (without de-registering: they just go dark).
func (f *Fleet) Close() {
	f.cancel()
	f.wg.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range f.Lights {
		if l.fw != nil {
			l.fw.Close()
		}
		if l.c != nil {
			l.c.Close()
		}
		if l.udpEP != nil {
			l.udpEP.Close()
		}
		if l.smsEP != nil {
			l.smsEP.Close() // closes l.smsB
		} else if l.smsB != nil {
			l.smsB.Close()
		}
		if l.link != nil {
			l.link.Close()
		}
		if l.oscSt != nil {
			l.oscSt.Close()
		}
		if l.dtls != nil {
			l.dtls.close()
		}
	}
}

// LightFirmware is a demo light's persistent firmware state, kept in
// <state dir>/<light>/firmware.json: the version it runs (its /3/0/3 after
// a restart) and how many updates it ever applied.
type LightFirmware struct {
	Version string `json:"version"`
	Applied int    `json:"applied"`
}

// LightFirmwareFile is the file name of a light's LightFirmware.
const LightFirmwareFile = "firmware.json"

func loadLightFirmware(dir string) (*LightFirmware, error) {
	st := &LightFirmware{Version: "1.0.0"}
	b, err := os.ReadFile(filepath.Join(dir, LightFirmwareFile))
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, st); err != nil || st.Version == "" {
		return nil, fmt.Errorf("%s: bad firmware state (%v); delete it to start from 1.0.0", filepath.Join(dir, LightFirmwareFile), err)
	}
	return st, nil
}

// saveLightFirmware writes st durably (writeFileAtomic).
func saveLightFirmware(dir string, st *LightFirmware) error {
	b, _ := json.Marshal(st)
	return writeFileAtomic(filepath.Join(dir, LightFirmwareFile), b)
}

// listenStable opens a light's UDP socket on the port it had before a
// restart of the daemon (kept in <dir>/udp-port), as a real device keeps its
// address while the gateway restarts; when that port is taken, a new one.
func listenStable(dir string) (*udp.Conn, error) {
	file := filepath.Join(dir, "udp-port")
	if b, err := os.ReadFile(file); err == nil {
		if port, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && port > 0 && port < 65536 {
			if u, err := udp.Listen("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
				return u, nil
			}
		}
	}
	u, err := udp.Listen("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	if a, ok := u.LocalAddr().(*net.UDPAddr); ok {
		_ = os.WriteFile(file, []byte(strconv.Itoa(a.Port)), 0o600)
	}
	return u, nil
}
