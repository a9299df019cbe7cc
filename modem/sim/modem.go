package sim

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/m2mbearer/m2mbearer/internal/cfgcheck"
)

// Errors of Modem methods.
var (
	ErrPlugged    = errors.New("sim: modem already plugged in")
	ErrNotPlugged = errors.New("sim: modem not plugged in")
)

// ModemStats are a modem's counters.
type ModemStats struct {
	Commands      uint64 // AT command lines answered
	Errors        uint64 // of which answered with ERROR, +CME ERROR or +CMS ERROR
	Sent          uint64 // SMS-SUBMITs accepted by the network (+CMGS: <mr>)
	Segments      uint64 // of which carry a concatenation IE
	SendFailed    uint64 // +CMGS answered with +CMS ERROR
	Received      uint64 // SMS-DELIVERs taken from the network
	StatusReports uint64 // SMS-STATUS-REPORTs taken from the network
	Refused       uint64 // offers refused (storage full, hung, ack pending full)
	AckTimeouts   uint64 // +CMT/+CDS not acknowledged by +CNMA in time
	URCs          uint64 // unsolicited result codes written
	URCsDropped   uint64 // indications lost to a full +CNMI mode 0 buffer
	Stored        int    // messages in storage now
	Plugs         uint64 // times plugged in
}

// ModemOption configures Network.AddModem. An option given a value out
// of its range makes AddModem fail with an error wrapping ErrInvalidOption.
type ModemOption func(*Modem) error

// WithProfile sets the vendor profile (default: the generic 27.005 modem).
func WithProfile(p Profile) ModemOption { return func(m *Modem) error { m.prof = p; return nil } }

// WithIdentity sets the IMEI (+CGSN) and IMSI (+CIMI).
func WithIdentity(imei, imsi string) ModemOption {
	return func(m *Modem) error { m.imei, m.imsi = imei, imsi; return nil }
}

// WithPIN makes the SIM require PIN pin after each plug-in.
func WithPIN(pin string) ModemOption { return func(m *Modem) error { m.pin = pin; return nil } }

// WithSendTime sets how long a +CMGS takes between the PDU and the final
// result (real modems: about 1 to 4 s; default 0); negative is refused.
func WithSendTime(d time.Duration) ModemOption {
	return func(m *Modem) error {
		m.sendTime = d
		return nonNegative("WithSendTime", d)
	}
}

// WithAckTimeout sets how long the modem waits for +CNMA after a +CMT or
// +CDS that needs one (TS 27.005 leaves it to the network; default 15 s);
// it must be positive.
func WithAckTimeout(d time.Duration) ModemOption {
	return func(m *Modem) error {
		m.ackTimeout = d
		if d <= 0 {
			return fmt.Errorf("%w: WithAckTimeout(%v): positive", ErrInvalidOption, d)
		}
		return nil
	}
}

// WithStorageCapacity sets the number of messages each storage holds, at
// least 1 (default 30, a typical SIM).
func WithStorageCapacity(n int) ModemOption {
	return func(m *Modem) error {
		m.capacity = n
		return cfgcheck.AtLeast1(ErrInvalidOption, "WithStorageCapacity", n)
	}
}

// WithTrace logs every AT exchange on l at Debug level.
func WithTrace(l *slog.Logger) ModemOption { return func(m *Modem) error { m.trace = l; return nil } }

// WithPTYLink makes OpenPTY maintain a symlink at path that points to the
// current pseudo-terminal, like a udev name, across unplug and replug.
func WithPTYLink(path string) ModemOption { return func(m *Modem) error { m.link = path; return nil } }

// WithSignal sets the +CSQ <rssi> (0..31, 99 unknown; default 20); any
// other value is refused.
func WithSignal(rssi int) ModemOption {
	return func(m *Modem) error {
		if (rssi < 0 || rssi > 31) && rssi != 99 {
			return fmt.Errorf("%w: WithSignal(%d): 0..31 or 99", ErrInvalidOption, rssi)
		}
		m.rssi = rssi
		return nil
	}
}

// WithChunkedWrites makes the modem write its output n bytes at a time
// (n at least 1), so that lines reach the driver split across reads.
func WithChunkedWrites(n int) ModemOption {
	return func(m *Modem) error {
		m.chunk = n
		return cfgcheck.AtLeast1(ErrInvalidOption, "WithChunkedWrites", n)
	}
}

// WithLengthSkew makes the modem print every <length> (+CMGR, +CMGL, +CMT,
// +CDS) off by d octets, as the phones in gammu's test dumps do.
func WithLengthSkew(d int) ModemOption { return func(m *Modem) error { m.lengthSkew = d; return nil } }

// WithEchoStuck makes ATE0 answer OK but leave the echo on.
func WithEchoStuck() ModemOption { return func(m *Modem) error { m.echoStuck = true; return nil } }

func nonNegative(option string, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("%w: %s(%v): negative", ErrInvalidOption, option, d)
	}
	return nil
}

// maxInbox bounds the messages offered to a modem and not yet handled.
const maxInbox = 256

// Modem is a simulated cellular modem with one SIM, attached to a Network.
// Its methods are safe for concurrent use.
//
// The zero Modem is not usable: use Network.AddModem. It cannot be plugged
// in (Pipe, OpenPTY and Replug fail with ErrNotCreated).
type Modem struct {
	net        *Network
	msisdn     string
	prof       Profile
	imei, imsi string
	pin        string
	sendTime   time.Duration
	ackTimeout time.Duration
	capacity   int
	trace      *slog.Logger
	link       string
	chunk      int
	lengthSkew int
	echoStuck  bool

	mu       sync.Mutex
	st       settings
	rssi     int
	detached bool // not registered to the network (SetRegistered)
	stores   map[string][]*stored
	mr       byte
	inbox    []*mtMessage
	wake     chan struct{}
	ack      *mtMessage // +CMT/+CDS waiting for +CNMA
	ackTimer Timer
	direct   []*mtMessage // +CMT/+CDS queued behind ack
	urcBuf   []string     // URCs held by +CNMI mode 0
	lateURCs []string     // boot texts due after +CPIN
	// interleave are lines to put after the next +CMGR/+CMGL headers
	// (Interleave), one per header.
	interleave []string
	inject     struct{ code, n int }
	hung       bool
	pinTries   int // wrong PINs in a row: kept by the SIM across power cycles
	att        *attachment
	lastPTY    bool
	stats      ModemStats
}

// settings are reset at each plug-in (a power cycle).
type settings struct {
	echo  bool
	cmee  int
	cmgf  int
	csms  int
	cnmi  [5]int
	creg  int
	cereg int
	cgreg int
	pinOK bool
	mem   [3]string
	smsc  string
	cfun  int
	cscs  string
}

// stored is one message in a storage slot.
type stored struct {
	stat      int // 0 REC UNREAD, 1 REC READ, 2 STO UNSENT, 3 STO SENT
	emptyStat bool
	pdu       string
	n         int
}

// statText is <stat> as +CMGR and +CMGL print it.
func (x *stored) statText() string {
	if x.emptyStat {
		return ""
	}
	return itoa(x.stat)
}

// AddModem adds a modem owning msisdn to the network. It is unplugged:
// call Pipe or OpenPTY to plug it in. An option out of its range is
// refused with an error wrapping ErrInvalidOption.
func (n *Network) AddModem(msisdn string, opts ...ModemOption) (*Modem, error) {
	m := &Modem{
		net: n, msisdn: NormalizeMSISDN(msisdn), prof: genericProfile(),
		ackTimeout: 15 * time.Second, capacity: 30, rssi: 20,
		wake: make(chan struct{}, 1),
	}
	for _, o := range opts {
		if err := o(m); err != nil {
			return nil, err
		}
	}
	if m.imei == "" {
		m.imei = fmt.Sprintf("35%013d", len(m.msisdn)*7919+int(hash(m.msisdn)%1e9))
	}
	if m.imsi == "" {
		m.imsi = fmt.Sprintf("00101%010d", hash(m.msisdn)%1e10)
	}
	m.stores = map[string][]*stored{}
	for _, s := range m.prof.Storages {
		m.stores[s] = make([]*stored, m.capacity)
	}
	m.resetLocked()
	if err := n.register(m.msisdn, m); err != nil {
		return nil, err
	}
	return m, nil
}

func hash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// resetLocked restores power-up settings.
func (m *Modem) resetLocked() {
	first := "SM"
	if len(m.prof.Storages) > 0 {
		first = m.prof.Storages[0]
	}
	m.st = settings{echo: true, cnmi: m.prof.CNMIDefault, pinOK: m.pin == "",
		mem: [3]string{first, first, first}, smsc: m.net.smsc, cfun: 1, cscs: "IRA"}
}

// MSISDN returns the modem's number, normalised ("+" and digits).
func (m *Modem) MSISDN() string { return m.msisdn }

// Profile returns the modem's vendor profile.
func (m *Modem) Profile() Profile { return m.prof }

// IMEI returns the modem's IMEI.
func (m *Modem) IMEI() string { return m.imei }

// Stats returns a snapshot of the modem counters.
func (m *Modem) Stats() ModemStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.stats
	s.Stored = 0
	for _, st := range m.stores {
		for _, x := range st {
			if x != nil {
				s.Stored++
			}
		}
	}
	return s
}

// InjectCMSError makes the next n +CMGS commands fail with +CMS ERROR code.
func (m *Modem) InjectCMSError(code, n int) {
	m.mu.Lock()
	m.inject.code, m.inject.n = code, n
	m.mu.Unlock()
}

// StoreRaw puts an entry into memory mem as a modem or a phone may hold
// one: <stat> stat (-1 prints it empty), the <length> length as printed,
// and pdu as the PDU line, whatever it is. With announce, +CMTI reports it.
// It returns the index shown to the driver.
func (m *Modem) StoreRaw(mem string, stat, length int, pdu string, announce bool) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stores[mem] == nil {
		return 0, fmt.Errorf("sim: no memory %q", mem)
	}
	x := &stored{stat: stat, emptyStat: stat < 0, pdu: pdu, n: length}
	if stat < 0 {
		x.stat = 0
	}
	idx, ok := m.storeLocked(mem, x)
	if !ok {
		return 0, fmt.Errorf("sim: memory %s full", mem)
	}
	if announce {
		m.lateURCs = append(m.lateURCs, "+CMTI: \""+mem+"\","+itoa(idx))
		m.kickLocked()
	}
	return idx, nil
}

// Interleave makes the modem put line after each of the next n +CMGR and
// +CMGL headers, between the header and its PDU line, as a modem does when
// a URC comes while it writes an answer.
func (m *Modem) Interleave(line string, n int) {
	m.mu.Lock()
	for i := 0; i < n; i++ {
		m.interleave = append(m.interleave, line)
	}
	m.mu.Unlock()
}

// DropSMSClient makes the modem forget its +CNMI routing and say so with
// an unsolicited +CMS ERROR: 524, as an nRF91 does when its SMS client is
// unregistered.
func (m *Modem) DropSMSClient() {
	m.mu.Lock()
	m.st.cnmi = [5]int{}
	m.lateURCs = append(m.lateURCs, "+CMS ERROR: 524")
	m.kickLocked()
	m.mu.Unlock()
}

// Hang makes the modem stop answering: it reads and ignores everything,
// including a command in progress, until it is unplugged and replugged.
func (m *Modem) Hang() {
	m.mu.Lock()
	m.hung = true
	m.mu.Unlock()
}

// SetRegistered attaches or detaches the modem from the radio network:
// detached, +CREG reports 0 and +CMGS fails with +CMS ERROR: 331, and
// incoming messages wait in the SMSC.
func (m *Modem) SetRegistered(on bool) {
	m.mu.Lock()
	m.detached = !on
	m.mu.Unlock()
	if on && m.net != nil {
		m.net.ready(m.msisdn)
	}
}

// SetSendTime changes the time each +CMGS takes (see WithSendTime).
func (m *Modem) SetSendTime(d time.Duration) {
	m.mu.Lock()
	m.sendTime = d
	m.mu.Unlock()
}

// SetSignal sets the +CSQ <rssi>.
func (m *Modem) SetSignal(rssi int) {
	m.mu.Lock()
	m.rssi = rssi
	m.mu.Unlock()
}

// Plugged reports whether the modem is plugged in.
func (m *Modem) Plugged() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.att != nil
}

// attachment is one plug-in: the modem side of a pipe or a pty master.
type attachment struct {
	conn  io.ReadWriteCloser
	slave *os.File // pty only: held open so the line survives driver close
	path  string   // pty only: slave path
	in    chan []byte
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

// Pipe plugs the modem in over an in-memory pipe and returns the driver's
// end. Reading it after Unplug gives io.EOF.
func (m *Modem) Pipe() (io.ReadWriteCloser, error) {
	if m.net == nil {
		return nil, ErrNotCreated
	}
	drv, mod := newPipe()
	if err := m.plug(&attachment{conn: mod}, false); err != nil {
		return nil, err
	}
	return drv, nil
}

func (m *Modem) plug(a *attachment, pty bool) error {
	m.mu.Lock()
	if m.att != nil {
		m.mu.Unlock()
		return ErrPlugged
	}
	m.net.mu.Lock()
	closed := m.net.closed
	m.net.mu.Unlock()
	if closed {
		m.mu.Unlock()
		return ErrClosed
	}
	a.in = make(chan []byte, 16)
	a.done = make(chan struct{})
	m.att = a
	m.lastPTY = pty
	m.hung = false
	m.resetLocked()
	m.stats.Plugs++
	pinOK := m.st.pinOK
	var boot []byte
	for _, u := range m.prof.BootURCs {
		boot = append(boot, "\r\n"+u+"\r\n"...)
	}
	if len(m.prof.BootURCs)+len(m.prof.ReadyURCs) > 0 {
		ready := m.prof.ReadyURCs
		if !pinOK {
			ready = []string{"+CPIN: SIM PIN"}
		}
		for _, u := range ready {
			boot = append(boot, "\r\n"+u+"\r\n"...)
		}
	}
	m.mu.Unlock()
	a.wg.Add(2)
	go m.reader(a)
	go m.session(a, boot)
	if pinOK {
		m.net.ready(m.msisdn)
	}
	return nil
}

// Unplug disconnects the modem as a USB unplug does: the driver's reads end
// (EOF on a pipe; EIO or EOF on a pty), volatile settings are lost, stored
// messages stay on the SIM, and the network holds new messages until the
// modem is back. Unplugging an unplugged modem does nothing.
//
// Over a pty with WithPTYLink, the link is removed first, as udev removes
// /dev/ttyUSBn: the kernel gives the freed pty number to the next pty
// opened on the machine (by any process), and a driver re-opening a name
// that still pointed at it would talk to a stranger's terminal. Until
// Replug the name does not exist, so re-opening fails and is retried.
func (m *Modem) Unplug() {
	m.mu.Lock()
	a := m.att
	link := m.link
	m.mu.Unlock()
	if a == nil {
		return
	}
	if a.slave != nil && link != "" {
		if target, err := os.Readlink(link); err == nil && target == a.path {
			_ = os.Remove(link)
		}
	}
	m.detach(a)
	a.wg.Wait()
}

// detach ends attachment a without waiting for its goroutines; messages
// handed to the modem but not yet delivered go back to the network.
func (m *Modem) detach(a *attachment) {
	m.mu.Lock()
	if m.att != a {
		m.mu.Unlock()
		return
	}
	m.att = nil
	var pending []*mtMessage
	if m.ack != nil {
		pending = append(pending, m.ack)
		m.ack = nil
		if m.ackTimer != nil {
			m.ackTimer.Stop()
		}
	}
	pending = append(pending, m.direct...)
	pending = append(pending, m.inbox...)
	m.direct, m.inbox, m.urcBuf, m.lateURCs = nil, nil, nil, nil
	m.mu.Unlock()
	a.once.Do(func() {
		close(a.done)
		_ = a.conn.Close()
		if a.slave != nil {
			_ = a.slave.Close()
		}
	})
	for _, p := range pending {
		p.done(false)
	}
}

// Replug plugs the modem back in the way it was last plugged: over a new
// pty behind the same symlink (the returned conn is nil; see PTYPath), or
// over a new in-memory pipe whose driver end it returns.
func (m *Modem) Replug() (io.ReadWriteCloser, error) {
	m.mu.Lock()
	pty := m.lastPTY
	m.mu.Unlock()
	if pty {
		_, err := m.OpenPTY()
		return nil, err
	}
	return m.Pipe()
}

// reader moves bytes from the line to the session.
func (m *Modem) reader(a *attachment) {
	defer a.wg.Done()
	defer close(a.in)
	for {
		buf := make([]byte, 512)
		n, err := a.conn.Read(buf)
		if n > 0 {
			select {
			case a.in <- buf[:n]:
			case <-a.done:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// offer implements subscriber.
func (m *Modem) offer(msg *mtMessage) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.att == nil {
		return false
	}
	if m.hung || m.detached || !m.st.pinOK || m.st.cfun == 0 || len(m.inbox)+len(m.direct) >= maxInbox {
		m.stats.Refused++
		return false
	}
	m.inbox = append(m.inbox, msg)
	select {
	case m.wake <- struct{}{}:
	default:
	}
	return true
}
