package config

import (
	"bytes"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/modem"
)

// DefaultYAML is the embedded default configuration.
//
//go:embed default.yaml
var DefaultYAML []byte

// Config is the whole configuration.
type Config struct {
	Mode    string `yaml:"mode"`
	Proxy   Proxy  `yaml:"proxy"`
	DataDir string `yaml:"data_dir"`
	// Store, StorePrefix and Node: where the shared state lives (store.go).
	Store       string    `yaml:"store"`
	StorePrefix string    `yaml:"store_prefix"`
	Node        string    `yaml:"node"`
	Cluster     Cluster   `yaml:"cluster"`
	Log         Log       `yaml:"log"`
	API         API       `yaml:"api"`
	LwM2M       LwM2M     `yaml:"lwm2m"`
	Modems      []Modem   `yaml:"modems"`
	SMS         SMS       `yaml:"sms"`
	Queue       Queue     `yaml:"queue"`
	Firmware    Firmware  `yaml:"firmware"`
	Simulator   Simulator `yaml:"simulator"`
	// SMPP are links to operators' SMSCs (docs/smpp.md).
	SMPP []SMPPLink `yaml:"smpp"`
}

// SMPPLink is one SMPP 3.4 account at an operator's SMSC.
type SMPPLink struct {
	// Name names the link in logs, metrics and routes (default host:port).
	Name string `yaml:"name"`
	// Host and Port are the SMSC's address (SMPP is usually port 2775,
	// 3550 with TLS).
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
	// SystemID, Password and SystemType are the bind credentials the
	// operator gives (at most 15, 8 and 12 characters in SMPP 3.4).
	SystemID   string `yaml:"system_id"`
	Password   string `yaml:"password"`
	SystemType string `yaml:"system_type"`
	// TLS wraps the connection; TLSServerName overrides the name checked.
	TLS           bool   `yaml:"tls"`
	TLSServerName string `yaml:"tls_server_name"`
	// TLSCAFile trusts the CAs in it (PEM; an SMSC's self-signed
	// certificate pins it) instead of the system's roots; TLSCertFile and
	// TLSKeyFile are a client certificate for SMSCs that ask for one.
	TLSCAFile   string `yaml:"tls_ca_file"`
	TLSCertFile string `yaml:"tls_cert_file"`
	// TLSKeyFile is the PEM private key of TLSCertFile.
	TLSKeyFile string `yaml:"tls_key_file"`
	// Bind is "transceiver" (default) or "transmitter-receiver".
	Bind string `yaml:"bind"`
	// Sources are the numbers the account may send from; devices that know
	// one of them as their server number are reached over this link.
	Sources []string `yaml:"sources"`
	// Window is the submit_sm outstanding at once; Rate the submits a
	// second (0: no limit).
	Window int     `yaml:"window"`
	Rate   float64 `yaml:"rate"`
	// Concat is udh (default), sar or payload.
	Concat string `yaml:"concat"`
	// Backup tries the link only after the modems that share its numbers.
	Backup bool `yaml:"backup"`
	// EnquireLink is the keep-alive interval (default 30s).
	EnquireLink time.Duration `yaml:"enquire_link"`
	// Account groups links bound to the same SMSC account (redundant
	// binds): they share receipt correlation, since the SMSC may send a
	// receipt on any of them.
	Account string `yaml:"account"`
}

// Firmware configures the firmware image store, the Package URI servers and
// campaigns.
type Firmware struct {
	// Dir is the image store directory; empty means <data_dir>/firmware.
	Dir string `yaml:"dir"`
	// MaxBytes bounds the total bytes of stored images.
	MaxBytes int64 `yaml:"max_bytes"`
	// MaxImageBytes bounds one image; a larger upload is refused with 413
	// while it streams (at most this many bytes are read and stored).
	MaxImageBytes int64 `yaml:"max_image_bytes"`
	// MaxImages bounds the number of stored images.
	MaxImages int `yaml:"max_images"`
	// AllowSMSPush is the default of allow_sms_push in update and campaign
	// requests: push packages over SMS to SMS-only devices.
	AllowSMSPush bool `yaml:"allow_sms_push"`
	// Concurrency is the default number of devices a campaign updates at once.
	Concurrency int `yaml:"concurrency"`
	// Retries is the default number of retries per device in a campaign.
	Retries int `yaml:"retries"`
	// SMSBudget is the default SMS budget of a campaign (-1: no limit).
	SMSBudget int `yaml:"sms_budget"`
}

// Proxy configures proxy mode.
type Proxy struct {
	Server string `yaml:"server"`
	Bind   string `yaml:"bind"`
}

// Log configures log/slog.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// API configures the HTTP API.
type API struct {
	// Listen is the host:port of the HTTP API, the web UI, /metrics and
	// the HTTP Package URI server (/fw/).
	Listen string `yaml:"listen"`
	// Token is the bearer token (the SMSGW_TOKEN environment variable
	// overrides it). Empty: TokenFile.
	Token string `yaml:"token"`
	// TokenFile is a file holding the token. Empty: <data_dir>/api-token,
	// generated (mode 0600) at the first start and kept.
	TokenFile string `yaml:"token_file"`
	// MetricsAuth makes /metrics require the API token too (Prometheus:
	// authorization.credentials_file in the scrape config).
	MetricsAuth bool `yaml:"metrics_auth"`
	// Limits bound what one client can hold of the HTTP listener.
	Limits HTTPLimits `yaml:"limits"`
}

// HTTPLimits are the HTTP listener's timeouts and bounds.
type HTTPLimits struct {
	// HeaderTimeout: time to send the request line and headers.
	HeaderTimeout time.Duration `yaml:"header_timeout"`
	// BodyTimeout: time to send a JSON request body; for a firmware
	// upload, the longest pause between two reads.
	BodyTimeout time.Duration `yaml:"body_timeout"`
	// WriteTimeout: time to take an answer; for long answers (firmware
	// downloads, snapshots, the event stream) the longest pause between
	// two writes. Routes that wait for a device add their wait.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout: how long a keep-alive connection may wait for its next
	// request.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes bounds the request line and headers.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxConnsPerClient bounds the open connections of one client address
	// (IPv6: one /64); MaxConns all of them.
	MaxConnsPerClient int `yaml:"max_conns_per_client"`
	MaxConns          int `yaml:"max_conns"`
	// UploadMinRate is the slowest average rate (bytes a second) a
	// firmware upload may keep once BodyTimeout has passed.
	UploadMinRate int64 `yaml:"upload_min_rate"`
}

// LwM2M configures the LwM2M server listeners.
type LwM2M struct {
	UDP         string `yaml:"udp"`
	DTLS        string `yaml:"dtls"`
	PSK         []PSK  `yaml:"psk"`
	LifetimeMin uint32 `yaml:"lifetime_min"`
	LifetimeMax uint32 `yaml:"lifetime_max"`
	// Models is a directory of OMA DDF XML files (*.xml) loaded into the
	// object model at start, beside the built-in objects (Leshan's models
	// folder); empty: none.
	Models string `yaml:"models"`
	// StrictBinding refuses 1.1/1.2 registrations whose binding carries
	// the 1.0 queue letter (b=UQS, b=UQ); false accepts and counts them.
	StrictBinding bool `yaml:"strict_binding"`
	// OSCORE lists per-device OSCORE contexts (UDP and SMS).
	OSCORE []OSCORE `yaml:"oscore"`
	// The registration security policy and its limits (security.go).
	NoSec            NoSec   `yaml:"nosec"`
	RegisterRate     float64 `yaml:"register_rate"`
	RegisterBurst    int     `yaml:"register_burst"`
	MaxRegistrations int     `yaml:"max_registrations"`
	// DTLS credentials beside the PSKs (smssecurity.go): the server's
	// certificate and key (PEM files; a key alone is a raw public key),
	// the CAs of device certificates, and the devices' raw public keys
	// and certificates, each bound to its endpoint name.
	Certificate string `yaml:"certificate"`
	PrivateKey  string `yaml:"private_key"`
	CA          string `yaml:"ca"`
	RPK         []RPK  `yaml:"rpk"`  // devices' raw public keys, each bound to its endpoint name
	X509        []X509 `yaml:"x509"` // devices' certificates, each bound to its endpoint name
	// DTLSSessionTTL is how long a DTLS session may be resumed with an
	// abbreviated handshake (both listeners, UDP and SMS; sessions kept
	// in <data_dir>/dtls-sessions.db); 0: no resumption.
	DTLSSessionTTL time.Duration `yaml:"dtls_session_ttl"`
}

// Proxy-mode defaults of the embedded server's listeners: an external
// LwM2M server on the same host usually holds 5683 and 5684.
const (
	ProxyModeUDP  = "127.0.0.1:5783"
	ProxyModeDTLS = "127.0.0.1:5784"
)

// PSK is one entry of the DTLS PSK store.
type PSK struct {
	// Identity is the PSK identity the device sends in its handshake.
	Identity string `yaml:"identity"`
	Key      string `yaml:"key"` // hex
	// Endpoint is the endpoint name the identity may register as, and
	// the only one.
	Endpoint string `yaml:"endpoint"`
}

// KeyBytes returns the decoded key.
func (p PSK) KeyBytes() ([]byte, error) { return hex.DecodeString(p.Key) }

// Modem is one real AT modem.
type Modem struct {
	Device string `yaml:"device"`
	// Baud is the serial speed (0: 115200).
	Baud int `yaml:"baud"`
	// PIN is the SIM PIN, sent once when the SIM asks for it; a PIN the
	// SIM refuses is never sent again (docs/operations.md).
	PIN     string `yaml:"pin"`
	MSISDN  string `yaml:"msisdn"`
	Profile string `yaml:"profile"`
}

// SMS configures the SMS bearer rules.
type SMS struct {
	Framing              string      `yaml:"framing"`
	DailyBudget          int         `yaml:"daily_budget"`
	DailyBudgetPerDevice int         `yaml:"daily_budget_per_device"`
	PeerRate             float64     `yaml:"peer_rate"`
	PeerBurst            int         `yaml:"peer_burst"` // segments one destination may get at once before peer_rate applies (0: 1)
	Devices              []SMSDevice `yaml:"devices"`
	// BudgetWarn is the share of a daily budget at which an alert is
	// raised (event sms-budget, metric smsgw_sms_budget_alerts_total).
	BudgetWarn float64 `yaml:"budget_warn"`
	// LoopMax refuses more than this many identical SMS to or from one
	// device within LoopWindow (0: no check).
	LoopMax    int           `yaml:"loop_max"`
	LoopWindow time.Duration `yaml:"loop_window"`
	// DTLSIdle ends a DTLS-over-SMS session with no traffic for that long,
	// without an alert (0: the DTLS default, 10 minutes).
	DTLSIdle time.Duration `yaml:"dtls_idle"`
	// StatusReports asks for a status report (an SMPP receipt) of every
	// SMS; outbox entries then stay until reported delivered.
	StatusReports bool `yaml:"status_reports"`
}

// SMSDevice binds a device's number to its endpoint name and the server SIM
// it accepts SMS from.
type SMSDevice struct {
	// Endpoint is the device's LwM2M endpoint name.
	Endpoint string `yaml:"endpoint"`
	// MSISDN is the device's own number (E.164): the only number its SMS
	// are accepted from and sent to.
	MSISDN string `yaml:"msisdn"`
	// ServerSIM is the number of our SIM the device accepts SMS from (its
	// provisioned server number); its SMS leave from that SIM.
	ServerSIM string `yaml:"server_sim"`
	Trigger   bool   `yaml:"trigger"`
	// NoSec lets the device also register over UDP without DTLS, where
	// lwm2m.nosec allows its name; otherwise it registers only over SMS
	// from MSISDN (or over DTLS with a PSK bound to its endpoint).
	NoSec bool `yaml:"nosec"`
	// Security is the device's SMS security mode: nosec, psk, rpk, x509
	// or oscore (Config.SecurityMode says what unset means).
	Security string `yaml:"security"`
}

// Queue configures queue mode.
type Queue struct {
	AwakeWindow time.Duration `yaml:"awake_window"`
	Expiry      time.Duration `yaml:"expiry"`
	PerDevice   int           `yaml:"per_device"`
	WakeTimeout time.Duration `yaml:"wake_timeout"`
	WakeMax     int           `yaml:"wake_max"`
}

// Simulator configures the embedded simulated network and demo fleet.
type Simulator struct {
	Enabled    bool          `yaml:"enabled"`
	Latency    time.Duration `yaml:"latency"`
	SendTime   time.Duration `yaml:"send_time"`
	ServerSIMs []string      `yaml:"server_sims"` // numbers of the simulated server modems
	Fleet      Fleet         `yaml:"fleet"`       // the demo fleet of streetlights, by kind
	// SMPP serves the server SIMs' numbers through a simulated SMSC over an
	// SMPP link on loopback instead of simulated modems; SMPPRate is that
	// link's rate (SMS a second, 0: no limit).
	SMPP     bool    `yaml:"smpp"`
	SMPPRate float64 `yaml:"smpp_rate"`
}

// Fleet sizes the demo fleet.
type Fleet struct {
	UDP   int `yaml:"udp"`
	Queue int `yaml:"queue"`
	SMS   int `yaml:"sms"`
	DTLS  int `yaml:"dtls"`
	// OSCORE lights talk OSCORE over UDP, OSCORESMS over SMS only.
	OSCORE    int `yaml:"oscore"`
	OSCORESMS int `yaml:"oscore_sms"`
	// OSCOREQueue lights are queue lights on OSCORE (UDP and the SMS
	// trigger under one context).
	OSCOREQueue int `yaml:"oscore_queue"`
	// DTLSSMS lights are SMS only and talk DTLS (PSK) over SMS.
	DTLSSMS int           `yaml:"dtls_sms"`
	Awake   time.Duration `yaml:"awake"`
}

// Default returns the embedded default configuration.
func Default() *Config {
	c, err := Parse(DefaultYAML)
	if err != nil {
		// The embedded file is tested; this cannot happen in a release.
		return &Config{Mode: "server"}
	}
	return c
}

// Problem is one configuration error at a line of the file (0: unknown).
type Problem struct {
	Line, Column int
	Field        string
	Msg          string
}

// A message that names its field itself, in backquotes ("unknown key
// `sms.dialy_budget` ...", "`api.listen` must be host:port ...") is shown
// as it is after the line; others after "field: ".
func (p Problem) String() string {
	msg := p.Msg
	if p.Field != "" && !strings.Contains(msg, "`"+p.Field+"`") {
		msg = p.Field + ": " + msg
	}
	if p.Line > 0 {
		return fmt.Sprintf("line %d: %s", p.Line, msg)
	}
	return msg
}

// Error lists the problems of a configuration file. It matches ErrInvalid.
type Error struct{ Problems []Problem }

// ErrInvalid is matched by every *Error.
var ErrInvalid = errors.New("config: invalid configuration")

func (e *Error) Error() string {
	if len(e.Problems) == 1 {
		return "invalid configuration: " + e.Problems[0].String()
	}
	var b strings.Builder
	b.WriteString("invalid configuration:")
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// Parse decodes data over the embedded default (absent keys keep their
// default) and validates it. Errors are an *Error with line numbers.
func Parse(data []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(DefaultYAML))
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("config: embedded default: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return &c, nil
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &Error{Problems: []Problem{yamlProblem(err)}}
	}
	if ps := checkKeys(&root); len(ps) > 0 {
		// The values that could be read are checked too (checkKeys took
		// the refused ones out), so that one run lists every problem.
		if root.Decode(&c) == nil {
			c.proxyModeDefaults(&root)
			ps = append(ps, c.validate(&root)...)
		}
		sortProblems(ps)
		return nil, &Error{Problems: ps}
	}
	dec = yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			e := &Error{}
			for _, m := range te.Errors {
				e.Problems = append(e.Problems, lineProblem(m))
			}
			return nil, e
		}
		return nil, &Error{Problems: []Problem{yamlProblem(err)}}
	}
	c.proxyModeDefaults(&root)
	if ps := c.validate(&root); len(ps) > 0 {
		sortProblems(ps)
		return nil, &Error{Problems: ps}
	}
	return &c, nil
}

// proxyModeDefaults moves the embedded server's listeners off the
// standard CoAP ports in proxy mode when the file does not set them: the
// external server proxied to often runs on the same host on 5683/5684.
func (c *Config) proxyModeDefaults(root *yaml.Node) {
	if c.Mode != "proxy" {
		return
	}
	if !hasKey(root, "lwm2m", "udp") {
		c.LwM2M.UDP = ProxyModeUDP
	}
	if !hasKey(root, "lwm2m", "dtls") && c.LwM2M.DTLS != "" {
		c.LwM2M.DTLS = ProxyModeDTLS
	}
}

// hasKey reports whether the document sets the key path.
func hasKey(root *yaml.Node, keys ...string) bool {
	n := locate(root, keys...)
	return n != nil && n.Kind == yaml.ScalarNode && n.Value == keys[len(keys)-1]
}

// sameSocket reports whether two host:port addresses would take the same
// UDP port on this host: the same port, and the same IP, or either a
// wildcard, or "localhost" against a loopback address. Host names other
// than localhost are not resolved (check-config must not need DNS).
func sameSocket(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb || pa == "0" {
		return false
	}
	ip := func(h string) (netip.Addr, bool) {
		if h == "" {
			return netip.IPv6Unspecified(), true
		}
		if strings.EqualFold(h, "localhost") {
			return netip.MustParseAddr("127.0.0.1"), true
		}
		x, err := netip.ParseAddr(h)
		return x.Unmap(), err == nil
	}
	ia, oka := ip(ha)
	ib, okb := ip(hb)
	if !oka || !okb {
		return false
	}
	return ia == ib || ia.IsUnspecified() || ib.IsUnspecified()
}

// yamlProblem turns a yaml syntax error ("yaml: line 3: ...") into a Problem.
func yamlProblem(err error) Problem {
	return lineProblem(strings.TrimPrefix(err.Error(), "yaml: "))
}

func lineProblem(msg string) Problem {
	var line int
	if _, err := fmt.Sscanf(msg, "line %d:", &line); err == nil {
		if i := strings.Index(msg, ":"); i >= 0 {
			msg = strings.TrimSpace(msg[i+1:])
		}
	}
	return Problem{Line: line, Field: "YAML syntax", Msg: msg}
}

// locate returns the key node at a key path ("api", "listen"; list indexes as
// "0", "1"), or the deepest existing one, for error positions.
func locate(root *yaml.Node, keys ...string) *yaml.Node {
	n := root
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for ki, k := range keys {
		if n == nil {
			return nil
		}
		switch n.Kind {
		case yaml.MappingNode:
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k {
					next = n.Content[i+1]
					if ki == len(keys)-1 {
						next = n.Content[i] // the key: its line is the one to fix
					}
					break
				}
			}
			if next == nil {
				return n
			}
			n = next
		case yaml.SequenceNode:
			var idx int
			if _, err := fmt.Sscanf(k, "%d", &idx); err != nil || idx < 0 || idx >= len(n.Content) {
				return n
			}
			n = n.Content[idx]
		default:
			return n
		}
	}
	return n
}

type checker struct {
	root *yaml.Node
	ps   []Problem
}

func (c *checker) add(msg string, keys ...string) {
	p := Problem{Field: strings.Join(keys, "."), Msg: msg}
	if n := locate(c.root, keys...); n != nil && n != c.root {
		p.Line, p.Column = n.Line, n.Column
	}
	c.ps = append(c.ps, p)
}

// Validate checks a configuration built in Go (no line numbers).
func (c *Config) Validate() error {
	if ps := c.validate(nil); len(ps) > 0 {
		return &Error{Problems: ps}
	}
	return nil
}

// validate checks every section in a fixed order, the order in which
// Load and check-config report the problems: mode, store, log, listeners,
// PSK identities, models, security, modems, SMPP, simulator, OSCORE, SMS
// security, firmware, SMS, queue, and last whether there is anything to
// serve. The numbers of the modems, SMPP sources and simulator SIMs
// (sims) gathered on the way are those sms.devices[].server_sim may name.
func (c *Config) validate(root *yaml.Node) []Problem {
	ck := &checker{root: root}
	c.validateMode(ck)
	c.validateStore(ck)
	c.validateLog(ck)
	c.validateListeners(ck)
	c.validatePSK(ck)
	c.validateModels(ck)
	c.validateSecurity(ck)
	sims := c.validateModems(ck)
	c.validateSMPP(ck, sims)
	c.validateSimulator(ck, sims)
	c.validateOSCORE(ck)
	c.validateSMSSecurity(ck)
	c.validateFirmware(ck)
	c.validateSMS(ck)
	c.validateSMSDevices(ck, sims)
	c.validateQueue(ck)
	if !c.Simulator.Enabled && len(c.Modems) == 0 && len(c.SMPP) == 0 && c.LwM2M.UDP == "" {
		ck.add("nothing to serve: enable the simulator, configure modems or a UDP listener", "modems")
	}
	return ck.ps
}

// validateMode checks mode and, in proxy mode, the proxy section and that
// the embedded server's listeners are not the external server's port.
func (c *Config) validateMode(ck *checker) {
	switch c.Mode {
	case "server":
	case "proxy":
		c.validateProxy(ck)
	default:
		ck.add(fmt.Sprintf("unknown mode %q; use \"server\" or \"proxy\"", c.Mode), "mode")
	}
}

func (c *Config) validateProxy(ck *checker) {
	if addrProblem(c.Proxy.Server, dialPort) != "" {
		ck.add(fmt.Sprintf("`proxy.server`: proxy mode needs the external LwM2M server; it %s", addrProblem(c.Proxy.Server, dialPort)), "proxy", "server")
	}
	if c.Proxy.Bind != "" {
		if _, err := netip.ParseAddr(c.Proxy.Bind); err != nil {
			ck.add(fmt.Sprintf("bind %q is not an IP address", c.Proxy.Bind), "proxy", "bind")
		}
	}
	for _, l := range []struct{ key, addr, def string }{{"udp", c.LwM2M.UDP, ProxyModeUDP}, {"dtls", c.LwM2M.DTLS, ProxyModeDTLS}} {
		if l.addr != "" && sameSocket(l.addr, c.Proxy.Server) {
			ck.add(fmt.Sprintf("%s is the port of the external server proxy.server %s; give the embedded server another one (proxy-mode default %s)",
				l.addr, c.Proxy.Server, l.def), "lwm2m", l.key)
		}
	}
}

// validateLog checks log.level and log.format.
func (c *Config) validateLog(ck *checker) {
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		ck.add(fmt.Sprintf("unknown level %q; use debug, info, warn or error", c.Log.Level), "log", "level")
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		ck.add(fmt.Sprintf("unknown format %q; use text or json", c.Log.Format), "log", "format")
	}
}

// validateListeners checks the API's address and limits and the LwM2M
// UDP and DTLS listeners.
func (c *Config) validateListeners(ck *checker) {
	ck.checkAddr(c.API.Listen, listenPort, "api", "listen")
	c.API.Limits.validate(ck)
	if c.LwM2M.UDP != "" {
		ck.checkAddr(c.LwM2M.UDP, listenPort, "lwm2m", "udp")
	}
	if c.LwM2M.DTLS != "" {
		ck.checkAddr(c.LwM2M.DTLS, listenPort, "lwm2m", "dtls")
	}
}

// validatePSK checks lwm2m.psk: one identity per endpoint, one endpoint
// per identity, keys of 8..64 bytes.
func (c *Config) validatePSK(ck *checker) {
	ids, bound := map[string]bool{}, map[string]bool{}
	for i, p := range c.LwM2M.PSK {
		idx := fmt.Sprint(i)
		if p.Identity == "" || len(p.Identity) > 128 {
			ck.add("identity is required (1..128 bytes)", "lwm2m", "psk", idx, "identity")
		} else if ids[p.Identity] {
			ck.add(fmt.Sprintf("identity %q listed twice", p.Identity), "lwm2m", "psk", idx, "identity")
		}
		ids[p.Identity] = true
		if k, err := p.KeyBytes(); err != nil || len(k) < 8 || len(k) > 64 {
			ck.add("key must be 8..64 bytes in hex (16..128 hex digits)", "lwm2m", "psk", idx, "key")
		}
		if p.Endpoint == "" {
			ck.add("endpoint is required: the endpoint name this identity may register as", "lwm2m", "psk", idx, "endpoint")
		} else if bound[p.Endpoint] {
			ck.add(fmt.Sprintf("endpoint %q has two identities", p.Endpoint), "lwm2m", "psk", idx, "endpoint")
		}
		bound[p.Endpoint] = true
	}
}

// validateModels checks that lwm2m.models, if set, is a directory.
func (c *Config) validateModels(ck *checker) {
	if m := c.LwM2M.Models; m != "" {
		if st, err := os.Stat(m); err != nil || !st.IsDir() {
			ck.add(fmt.Sprintf("models %q is not a readable directory of DDF XML files", m), "lwm2m", "models")
		}
	}
}

// validateModems checks modems[] and returns the set of their numbers
// (E.164, as sms.Address.String gives them).
func (c *Config) validateModems(ck *checker) map[string]bool {
	sims := map[string]bool{}
	for i, m := range c.Modems {
		idx := fmt.Sprint(i)
		if m.Device == "" {
			ck.add("device is required (e.g. /dev/ttyUSB2)", "modems", idx, "device")
		}
		if m.Baud < 0 {
			ck.add("baud must be positive", "modems", idx, "baud")
		}
		a, err := sms.ParseMSISDN(m.MSISDN)
		if err != nil {
			ck.add(fmt.Sprintf("msisdn %q: %v; give the SIM's number in E.164 form, e.g. +491710000001", m.MSISDN, err), "modems", idx, "msisdn")
		} else {
			sims[a.String()] = true
		}
		if !knownProfile(m.Profile) {
			ck.add(fmt.Sprintf("unknown profile %q; use one of %s, or leave empty to detect it", m.Profile, strings.Join(profileNames(), ", ")), "modems", idx, "profile")
		}
	}
	return sims
}

// validateSimulator checks the simulator section when it is enabled and
// adds its server SIMs to sims.
func (c *Config) validateSimulator(ck *checker, sims map[string]bool) {
	if !c.Simulator.Enabled {
		return
	}
	for i, s := range c.Simulator.ServerSIMs {
		a, err := sms.ParseMSISDN(s)
		if err != nil {
			ck.add(fmt.Sprintf("%q: %v", s, err), "simulator", "server_sims", fmt.Sprint(i))
			continue
		}
		sims[a.String()] = true
	}
	if len(c.Simulator.ServerSIMs) == 0 {
		ck.add("at least one server SIM is needed", "simulator", "server_sims")
	}
	c.validateFleet(ck)
	if c.Simulator.Latency < 0 || c.Simulator.SendTime < 0 {
		ck.add("latency and send_time must not be negative", "simulator")
	}
}

// validateFleet checks simulator.fleet: the sizes of each kind of light
// and their awake time.
func (c *Config) validateFleet(ck *checker) {
	f := c.Simulator.Fleet
	if f.UDP < 0 || f.Queue < 0 || f.SMS < 0 || f.DTLS < 0 || f.UDP+f.Queue+f.SMS+f.DTLS > 1000 {
		ck.add("fleet sizes must be in 0..1000 in all", "simulator", "fleet")
	}
	if f.OSCORE < 0 || f.OSCORESMS < 0 || f.OSCOREQueue < 0 || f.OSCORE+f.OSCORESMS+f.OSCOREQueue > 100 {
		ck.add("oscore, oscore_sms and oscore_queue must be in 0..100", "simulator", "fleet")
	}
	if f.DTLSSMS < 0 || f.DTLSSMS > 100 {
		ck.add("dtls_sms must be in 0..100", "simulator", "fleet", "dtls_sms")
	}
	if f.DTLS > 0 && c.LwM2M.DTLS == "" {
		ck.add("DTLS lights need the lwm2m.dtls listener", "simulator", "fleet", "dtls")
	}
	if f.Awake <= 0 {
		ck.add("awake must be positive", "simulator", "fleet", "awake")
	}
}

// validateFirmware checks the firmware section's bounds.
func (c *Config) validateFirmware(ck *checker) {
	fw := c.Firmware
	if fw.MaxBytes <= 0 {
		ck.add("max_bytes must be positive", "firmware", "max_bytes")
	}
	if fw.MaxImageBytes <= 0 || fw.MaxImageBytes > fw.MaxBytes && fw.MaxBytes > 0 {
		ck.add("max_image_bytes must be positive and at most max_bytes", "firmware", "max_image_bytes")
	}
	if fw.MaxImages <= 0 || fw.MaxImages > 100000 {
		ck.add("max_images must be in 1..100000", "firmware", "max_images")
	}
	if fw.Concurrency < 1 || fw.Concurrency > 10000 {
		ck.add("concurrency must be in 1..10000", "firmware", "concurrency")
	}
	if fw.Retries < 0 || fw.Retries > 100 {
		ck.add("retries must be in 0..100", "firmware", "retries")
	}
	if fw.SMSBudget < -1 {
		ck.add("sms_budget must be -1 (no limit), 0 (no SMS) or a positive number of SMS", "firmware", "sms_budget")
	}
}

// validateSMS checks the sms section's framing, budgets and loop guard
// (sms.devices: validateSMSDevices).
func (c *Config) validateSMS(ck *checker) {
	switch c.SMS.Framing {
	case "coap", "wap-push":
	default:
		ck.add(fmt.Sprintf("unknown framing %q; use coap or wap-push", c.SMS.Framing), "sms", "framing")
	}
	if c.SMS.DailyBudget < -1 || c.SMS.DailyBudgetPerDevice < -1 || c.SMS.PeerRate < 0 || c.SMS.PeerBurst < 0 {
		ck.add("budgets are -1 (unlimited), 0 (no SMS) or positive; rates must not be negative", "sms")
	}
	if c.SMS.BudgetWarn < 0 || c.SMS.BudgetWarn > 1 {
		ck.add("budget_warn is a share of the budget, 0..1", "sms", "budget_warn")
	}
	if c.SMS.LoopMax < 0 || c.SMS.LoopWindow < 0 {
		ck.add("loop_max and loop_window must not be negative", "sms", "loop_max")
	}
}

// validateSMSDevices checks sms.devices[]: one entry per endpoint, their
// numbers, and that a server_sim is one of sims (outside a cluster).
func (c *Config) validateSMSDevices(ck *checker, sims map[string]bool) {
	eps := map[string]bool{}
	for i, d := range c.SMS.Devices {
		idx := fmt.Sprint(i)
		if d.Endpoint == "" {
			ck.add("endpoint is required", "sms", "devices", idx, "endpoint")
		} else if eps[d.Endpoint] {
			ck.add(fmt.Sprintf("endpoint %q listed twice", d.Endpoint), "sms", "devices", idx, "endpoint")
		}
		eps[d.Endpoint] = true
		if _, err := sms.ParseMSISDN(d.MSISDN); err != nil {
			ck.add(fmt.Sprintf("msisdn %q: %v", d.MSISDN, err), "sms", "devices", idx, "msisdn")
		}
		if d.ServerSIM != "" {
			c.validateServerSIM(ck, d.ServerSIM, sims, idx)
		}
	}
}

// validateServerSIM checks sms.devices[idx].server_sim against sims.
func (c *Config) validateServerSIM(ck *checker, sim string, sims map[string]bool, idx string) {
	a, err := sms.ParseMSISDN(sim)
	switch {
	case err != nil:
		ck.add(fmt.Sprintf("server_sim %q: %v", sim, err), "sms", "devices", idx, "server_sim")
	case !sims[a.String()] && !c.RedisStore():
		// In a cluster the SIM may be on another node's modem.
		ck.add(fmt.Sprintf("server_sim %s is not the number of a configured modem or SMPP source (%s)", a, strings.Join(sortedKeys(sims), ", ")), "sms", "devices", idx, "server_sim")
	}
}

// validateQueue checks the queue section.
func (c *Config) validateQueue(ck *checker) {
	if c.Queue.Expiry <= 0 {
		ck.add("expiry must be positive", "queue", "expiry")
	}
	if c.Queue.PerDevice <= 0 || c.Queue.PerDevice > 10000 {
		ck.add("per_device must be in 1..10000", "queue", "per_device")
	}
	if c.Queue.WakeTimeout <= 0 {
		ck.add("wake_timeout must be positive", "queue", "wake_timeout")
	}
	if c.Queue.WakeMax < 0 {
		ck.add("wake_max must not be negative", "queue", "wake_max")
	}
	if c.Queue.AwakeWindow < 0 {
		ck.add("awake_window must not be negative", "queue", "awake_window")
	}
}

func (l HTTPLimits) validate(ck *checker) {
	for _, d := range []struct {
		v    time.Duration
		name string
	}{{l.HeaderTimeout, "header_timeout"}, {l.BodyTimeout, "body_timeout"}, {l.WriteTimeout, "write_timeout"}, {l.IdleTimeout, "idle_timeout"}} {
		if d.v <= 0 || d.v > time.Hour {
			ck.add("must be a duration in (0, 1h], e.g. 30s", "api", "limits", d.name)
		}
	}
	if l.MaxHeaderBytes < 1024 || l.MaxHeaderBytes > 1<<20 {
		ck.add("must be in 1024..1048576", "api", "limits", "max_header_bytes")
	}
	if l.MaxConns < 1 || l.MaxConns > 1_000_000 {
		ck.add("must be in 1..1000000", "api", "limits", "max_conns")
	}
	if l.MaxConnsPerClient < 1 || l.MaxConnsPerClient > l.MaxConns {
		ck.add("must be in 1..max_conns", "api", "limits", "max_conns_per_client")
	}
	if l.UploadMinRate < 1 {
		ck.add("must be a positive number of bytes a second", "api", "limits", "upload_min_rate")
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// knownProfile reports whether name selects a modem profile: a built-in
// one (modem.Profiles), a vendor ("simcom", "quectel", "ublox": the family
// is detected), or "" (detected).
func knownProfile(name string) bool {
	switch name {
	case "", "simcom", "quectel", "ublox":
		return true
	}
	_, ok := modem.ProfileByName(name)
	return ok
}

func profileNames() []string {
	var out []string
	for _, p := range modem.Profiles() {
		out = append(out, p.Name)
	}
	return append(out, "simcom", "quectel", "ublox")
}
