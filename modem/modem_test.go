package modem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testSMSC       = "07911326040000F0"
	testDeliver    = "040B911326880736F40004521152214300000301020" + "3"
	testDeliverLen = 22
	testReport     = "062A0B911326880736F4521152214300005211522143000000"
	testReportLen  = 25
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testProfile() Profile {
	p := mustProfile("generic")
	p.CommandTimeout = 3 * time.Second
	p.SendTimeout = 5 * time.Second
	return p
}

// openFake opens a Modem on f; every re-dial creates a new pipe to the
// same fake (its storage survives, as a SIM's does).
func openFake(t *testing.T, f *fakeModem, p Profile, cfg Config, opts ...Option) *Modem {
	t.Helper()
	if cfg.HealthInterval == 0 {
		cfg.HealthInterval = -1
	}
	if cfg.ReconnectMin == 0 {
		cfg.ReconnectMin = 20 * time.Millisecond
		cfg.ReconnectMax = 100 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := Open(ctx, cfg, append([]Option{WithProfile(p), WithLogger(quietLog()),
		WithDialer(func(context.Context) (io.ReadWriteCloser, error) { return newFakePair(f), nil })}, opts...)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func recvOne(t *testing.T, m *Modem, d time.Duration) *Received {
	t.Helper()
	select {
	case r := <-m.Received():
		return r
	case <-time.After(d):
		t.Fatalf("no message within %v", d)
	}
	return nil
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestOpenIdentityAndInit(t *testing.T) {
	f := newFake()
	m := openFake(t, f, testProfile(), Config{})
	id := m.Identity()
	want := Identity{Manufacturer: "FAKE", Model: "F1", Revision: "1.0", IMEI: "490154203237518", IMSI: "001010123456789", MSISDN: "+15550001", SMSC: "+31624000000", Profile: "generic"}
	if id != want {
		t.Fatalf("identity = %+v, want %+v", id, want)
	}
	cmds := strings.Join(f.commands(), "|")
	for _, c := range []string{"E0", "+CMEE=1", "+CMGF=0", "+CSMS=0", `+CPMS="SM","SM","SM"`, "+CNMI=2,1,0,2,0", "+CMGL=4"} {
		t.Run(c, func(t *testing.T) {
			if !strings.Contains(cmds, c) {
				t.Errorf("init did not send %s; sent %s", c, cmds)
			}
		})
	}
	h, err := m.Health(context.Background())
	if err != nil {
		t.Fatalf("Health: %v", err)
	}
	if !h.OK() || h.Signal.RSSI != 20 || h.CSReg.Stat != RegHome || len(h.Storage) != 3 || h.Storage[0].Total != 20 {
		t.Fatalf("health = %+v", h)
	}
	if dbm, _ := h.Signal.DBm(); dbm != -73 {
		t.Fatalf("dBm = %d", dbm)
	}
}

func TestConfigMSISDNWinsAndPIN(t *testing.T) {
	f := newFake()
	f.pin = "1234"
	m := openFake(t, f, testProfile(), Config{MSISDN: "+4915112345678", PIN: "1234"})
	if m.MSISDN() != "+4915112345678" {
		t.Fatalf("MSISDN = %q", m.MSISDN())
	}
	g := newFake()
	g.pin = "1234"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Open(ctx, Config{HealthInterval: -1}, WithProfile(testProfile()), WithLogger(quietLog()),
		WithDialer(func(context.Context) (io.ReadWriteCloser, error) { return newFakePair(g), nil }))
	if !errors.Is(err, ErrSIMPIN) {
		t.Fatalf("Open without PIN: %v, want ErrSIMPIN", err)
	}
}

func TestSendPDU(t *testing.T) {
	f := newFake()
	f.mr = 254
	m := openFake(t, f, testProfile(), Config{})
	ctx := context.Background()
	for _, want := range []int{254, 255, 0} {
		t.Run(fmt.Sprint(want), func(t *testing.T) {
			mr, err := m.SendPDU(ctx, []byte{0x01, 0x00, 0x0B, 0x91, 0x13, 0x26, 0x88, 0x07, 0x36, 0xF4, 0x00, 0x04, 0x01, 0xAA})
			if err != nil || mr != want {
				t.Fatalf("SendPDU = %d, %v; want %d", mr, err, want)
			}
		})
	}
	if _, err := m.SendPDU(ctx, nil); !errors.Is(err, ErrBadPDU) {
		t.Fatalf("empty TPDU: %v", err)
	}
	if st := m.Stats(); st.Sent != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSendErrorsTyped(t *testing.T) {
	f := newFake()
	m := openFake(t, f, testProfile(), Config{})
	ctx := context.Background()
	cases := []struct {
		line      string
		code      int
		retryable bool
		full      bool
	}{
		{"+CMS ERROR: 332", 332, true, false},
		{"+CMS ERROR: 304", 304, false, false},
		{"+CMS ERROR: 322", 322, false, true},
		{"+CMS ERROR: 42", 42, true, false},
		{"+CMS ERROR: 1", 1, false, false},
	}
	for _, c := range cases {
		t.Run(c.line, func(t *testing.T) {
			f.mu.Lock()
			f.cmgsErr = []string{c.line}
			f.mu.Unlock()
			_, err := m.SendPDU(ctx, []byte{0x01, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00})
			var cms *CMSError
			if !errors.As(err, &cms) || cms.Code != c.code {
				t.Fatalf("%s: err = %v", c.line, err)
			}
			if Retryable(err) != c.retryable {
				t.Errorf("%s: Retryable = %v", c.line, Retryable(err))
			}
			if errors.Is(err, ErrStorageFull) != c.full {
				t.Errorf("%s: storage full = %v", c.line, !c.full)
			}
		})
	}
}

func TestSendMissingPromptTimesOut(t *testing.T) {
	f := newFake()
	p := testProfile()
	p.SendTimeout = 200 * time.Millisecond
	m := openFake(t, f, p, Config{})
	f.mu.Lock()
	f.noPrompt = true
	f.mu.Unlock()
	_, err := m.SendPDU(context.Background(), []byte{0x01, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00})
	if !errors.Is(err, ErrTimeout) || !Retryable(err) {
		t.Fatalf("err = %v, want retryable ErrTimeout", err)
	}
	f.mu.Lock()
	f.noPrompt = false
	f.mu.Unlock()
	if _, err := m.SendPDU(context.Background(), []byte{0x01, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00}); err != nil {
		t.Fatalf("send after escape: %v", err)
	}
}

func TestSendHonoursContext(t *testing.T) {
	f := newFake()
	f.sendTime = 2 * time.Second
	m := openFake(t, f, testProfile(), Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := m.SendPDU(ctx, []byte{0x01, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00})
	if err == nil || time.Since(start) > 1500*time.Millisecond {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
}

func TestReceiveStoredAckDeletes(t *testing.T) {
	f := newFake()
	m := openFake(t, f, testProfile(), Config{})
	idx := f.storeMsg(testSMSC+testDeliver, testDeliverLen, true)
	r := recvOne(t, m, 10*time.Second)
	if r.Kind != KindDeliver || r.Index != idx || r.Storage != "SM" || r.SMSC != "+31624000000" || len(r.TPDU) != testDeliverLen {
		t.Fatalf("received %+v", r)
	}
	if len(f.stored()) != 1 {
		t.Fatal("message deleted before Ack")
	}
	if err := r.Ack(context.Background()); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	if len(f.stored()) != 0 {
		t.Fatal("message not deleted after Ack")
	}
	if err := r.Ack(context.Background()); err != nil {
		t.Fatalf("second Ack: %v", err)
	}
}

// A slot freed by an Ack's +CMGD can take the next message, announced by
// +CMTI, before the driver has the +CMGD's OK: the +CMTI then finds the slot
// still handed out. The new message must still be read at once (the health
// poll, whose sweep would find it later, is off here).
func TestReusedSlotAnnouncedBeforeDeleteOK(t *testing.T) {
	f := newFake()
	f.refillGap = 100 * time.Millisecond
	m := openFake(t, f, testProfile(), Config{})
	const rounds = 3
	f.mu.Lock()
	for i := 0; i < rounds; i++ {
		f.refill = append(f.refill, fmt.Sprintf("0,%d,%s", testDeliverLen, testSMSC+testDeliver))
	}
	f.mu.Unlock()
	idx := f.storeMsg(testSMSC+testDeliver, testDeliverLen, true)
	for i := 0; i <= rounds; i++ {
		r := recvOne(t, m, 20*time.Second)
		if r.Index != idx {
			t.Fatalf("round %d: index %d, want the reused slot %d", i, r.Index, idx)
		}
		if err := r.Ack(context.Background()); err != nil {
			t.Fatalf("round %d: Ack: %v", i, err)
		}
	}
	waitFor(t, 10*time.Second, "storage empty", func() bool { return len(f.stored()) == 0 })
	select {
	case r := <-m.Received():
		t.Fatalf("delivered after the last Ack: %+v", r)
	default:
	}
}

func TestRejectKeepsAndSweepRedelivers(t *testing.T) {
	f := newFake()
	m := openFake(t, f, testProfile(), Config{})
	f.storeMsg(testSMSC+testReport, testReportLen, true)
	r := recvOne(t, m, 10*time.Second)
	if r.Kind != KindStatusReport {
		t.Fatalf("kind = %v", r.Kind)
	}
	sr, err := r.StatusReport()
	if err != nil || sr.MR != 0x2A || !sr.Delivered() || sr.Recipient != "+31628870634" {
		t.Fatalf("status report %+v, %v", sr, err)
	}
	if err := r.Reject(context.Background()); err != nil {
		t.Fatal(err)
	}
	// While pending, a sweep does not deliver it twice; after Reject it does.
	if err := m.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	r2 := recvOne(t, m, 10*time.Second)
	if r2.Index != r.Index {
		t.Fatalf("redelivered index %d, want %d", r2.Index, r.Index)
	}
	if err := m.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case r3 := <-m.Received():
		t.Fatalf("pending message delivered twice: %+v", r3)
	default:
	}
	_ = r2.Ack(context.Background())
	if len(f.stored()) != 0 {
		t.Fatal("not deleted")
	}
}

// Garbage found by the start-up sweep is quarantined before it is deleted;
// the valid message beside it is delivered.
func TestSweepAtOpenQuarantinesGarbage(t *testing.T) {
	f := newFake()
	f.storeMsg(testSMSC+testDeliver, testDeliverLen, false)
	f.storeMsg("ZZ-not-hex", 5, false)
	f.storeMsg(testSMSC+testDeliver[:20], testDeliverLen, false) // truncated
	q := newMemQuarantine(f)
	m := openFake(t, f, testProfile(), Config{}, WithQuarantine(q))
	r := recvOne(t, m, 10*time.Second)
	if r.Index != 0 {
		t.Fatalf("index %d", r.Index)
	}
	waitFor(t, 10*time.Second, "garbage quarantined and deleted", func() bool { return len(f.stored()) == 1 })
	got := q.entries()
	if len(got) != 2 || got[0].Index != 1 || got[1].Index != 2 || got[0].Lines[1] != "ZZ-not-hex" || got[0].Modem != "+15550001" {
		t.Fatalf("quarantine %+v", got)
	}
	for _, e := range got {
		if !e.storedAtPut {
			t.Fatalf("slot %d deleted before it was in the quarantine", e.Index)
		}
	}
	if st := m.Stats(); st.Quarantined != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDirectDeliveryCNMA(t *testing.T) {
	f := newFake()
	p := mustProfile("ublox-sara")
	p.CommandTimeout = 3 * time.Second
	m := openFake(t, f, p, Config{})
	f.write("\r\n+CMT: ,22\r\n" + testSMSC + testDeliver + "\r\n")
	r := recvOne(t, m, 10*time.Second)
	if r.Index != -1 || r.Kind != KindDeliver {
		t.Fatalf("%+v", r)
	}
	f.mu.Lock()
	n := f.cnma
	f.mu.Unlock()
	if n != 0 {
		t.Fatal("+CNMA sent before Ack")
	}
	if err := r.Ack(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	n = f.cnma
	f.mu.Unlock()
	if n != 1 {
		t.Fatalf("+CNMA count %d", n)
	}
	f.write("\r\n+CMT: ,22\r\n" + testSMSC + testDeliver + "\r\n")
	r = recvOne(t, m, 10*time.Second)
	if err := r.Reject(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	n, nack := f.cnma, f.nack
	f.mu.Unlock()
	if n != 1 || nack != 1 {
		t.Fatalf("after Reject: +CNMA %d, +CNMA=2 %d", n, nack)
	}
	// A truncated +CMT is skipped (and so not acknowledged).
	f.write("\r\n+CMT: ,22\r\n" + testSMSC + "0400\r\n")
	f.write("\r\n+CDS: 25\r\n" + testSMSC + testReport + "\r\n")
	r = recvOne(t, m, 10*time.Second)
	if r.Kind != KindStatusReport {
		t.Fatalf("%+v", r)
	}
}

func TestStrayURCInsideCommand(t *testing.T) {
	f := newFake()
	m := openFake(t, f, testProfile(), Config{})
	idx := f.storeMsg(testSMSC+testDeliver, testDeliverLen, false)
	// A URC arriving between lines of a response must not confuse either.
	info := parseCMGLList([]string{`+CMGL: 0,0,,22`, testSMSC + testDeliver, "garbage", `+CMGL: x`})
	if len(info) != 2 || info[0].sm.v != vDeliver || info[0].idx != 0 || info[1].idx != -1 || info[1].sm.v != vUnreadable {
		t.Fatalf("parseCMGLList = %+v", info)
	}
	f.write(`+CMTI: "SM",` + "7\r\n") // unknown index: empty slot, skipped
	f.write("\r\n+CMTI: \"SM\",0\r\n")
	r := recvOne(t, m, 10*time.Second)
	if r.Index != idx {
		t.Fatalf("index %d", r.Index)
	}
}

func TestRecoveryAfterUnplug(t *testing.T) {
	f := newFake()
	m := openFake(t, f, testProfile(), Config{})
	f.mu.Lock()
	f.sendTime = 500 * time.Millisecond
	f.mu.Unlock()
	errc := make(chan error, 1)
	go func() {
		_, err := m.SendPDU(context.Background(), []byte{0x01, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00})
		errc <- err
	}()
	waitFor(t, 5*time.Second, "send in flight", func() bool {
		c := f.commands()
		return strings.HasPrefix(c[len(c)-1], "+CMGS=")
	})
	f.unplug()
	err := <-errc
	if !errors.Is(err, ErrLinkLost) || !Retryable(err) {
		t.Fatalf("in-flight send: %v, want retryable ErrLinkLost", err)
	}
	f.mu.Lock()
	f.sendTime = 0
	f.mu.Unlock()
	// A message stored while unplugged is found by the sweep after re-open.
	f.storeMsg(testSMSC+testDeliver, testDeliverLen, false)
	r := recvOne(t, m, 15*time.Second)
	if r.Kind != KindDeliver {
		t.Fatalf("%+v", r)
	}
	waitFor(t, 10*time.Second, "reconnect", m.Connected)
	if _, err := m.SendPDU(context.Background(), []byte{0x01, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00}); err != nil {
		t.Fatalf("send after reconnect: %v", err)
	}
	if m.Stats().Reconnects < 1 {
		t.Fatalf("stats %+v", m.Stats())
	}
	var types []EventType
	for len(m.Events()) > 0 {
		types = append(types, (<-m.Events()).Type)
	}
	if len(types) < 3 || types[0] != EventConnected || types[1] != EventDisconnected {
		t.Fatalf("events %v", types)
	}
}

func TestTimeoutStormReopens(t *testing.T) {
	f := newFake()
	p := testProfile()
	p.CommandTimeout = 100 * time.Millisecond
	m := openFake(t, f, p, Config{TimeoutStorm: 2})
	f.mu.Lock()
	f.hang = true
	f.mu.Unlock()
	for i := 0; i < 2; i++ {
		if _, err := m.Command(context.Background(), "+CSQ"); !errors.Is(err, ErrTimeout) {
			t.Fatalf("hung command: %v", err)
		}
	}
	waitFor(t, 5*time.Second, "disconnect", func() bool { return !m.Connected() })
	f.mu.Lock()
	f.hang = false
	f.mu.Unlock()
	waitFor(t, 10*time.Second, "reconnect", m.Connected)
	if _, err := m.Command(context.Background(), "+CSQ"); err != nil {
		t.Fatalf("after reconnect: %v", err)
	}
}

func TestCloseStopsEverything(t *testing.T) {
	f := newFake()
	m := openFake(t, f, testProfile(), Config{HealthInterval: 10 * time.Millisecond})
	time.Sleep(30 * time.Millisecond) // let a health poll or two run; not needed for correctness
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.SendPDU(context.Background(), []byte{1, 0, 0, 0, 0, 4, 0}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if !m.LastHealth().Time.IsZero() && m.LastHealth().Connected {
		t.Fatal("still connected")
	}
}

func TestStorageFullEventAndHealthSweep(t *testing.T) {
	f := newFake()
	f.storeCap = 2
	m := openFake(t, f, testProfile(), Config{HealthInterval: 20 * time.Millisecond})
	// Two messages stored without any +CMTI (lost URC): the health poll
	// sees storage in use, sweeps, and reports storage full.
	f.storeMsg(testSMSC+testDeliver, testDeliverLen, false)
	f.storeMsg(testSMSC+testDeliver, testDeliverLen, false)
	var got []*Received
	deadline := time.After(10 * time.Second)
	full := false
	for len(got) < 2 || !full {
		select {
		case r := <-m.Received():
			got = append(got, r)
		case e := <-m.Events():
			if e.Type == EventStorageFull && errors.Is(e.Err, ErrStorageFull) {
				full = true
			}
		case <-deadline:
			t.Fatalf("got %d messages, storage-full event %v", len(got), full)
		}
	}
	for _, r := range got {
		if err := r.Ack(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if len(f.stored()) != 0 {
		t.Fatal("not deleted")
	}
}

func TestGarbageFromModem(t *testing.T) {
	f := newFake()
	m := openFake(t, f, testProfile(), Config{})
	for _, g := range []string{
		"\r\n+CMTI: \"SM\r\n", "\r\n+CMTI: \"SM\",x\r\n", "\r\n+CDSI: ,\r\n",
		"\r\n+CMT: ,abc\r\nzz\r\n", "\r\n+CMT: ,500\r\n00\r\n", "\r\n+CDS: 25\r\nnot hex\r\n",
		"\r\n\x00\x01\x02garbage\r\n", "\r\n+UNKNOWN: 1\r\n", "\r\nRING\r\n", "\r\n> \r\n",
	} {
		f.write(g)
	}
	waitFor(t, 10*time.Second, "bad input counted", func() bool { return m.Stats().BadInput >= 6 })
	// A stray "> " would be taken as the prompt by a +CMGS running at that
	// moment (the at engine cannot tell); a plain command drains the line
	// first, as it would on a real link.
	if _, err := m.Command(context.Background(), "+CSQ"); err != nil {
		t.Fatal(err)
	}
	// The driver still works.
	if _, err := m.SendPDU(context.Background(), []byte{1, 0, 0, 0, 0, 4, 0}); err != nil {
		t.Fatalf("send after garbage: %v", err)
	}
	f.storeMsg(testSMSC+testDeliver, testDeliverLen, true)
	r := recvOne(t, m, 10*time.Second)
	if r.Kind != KindDeliver {
		t.Fatalf("%+v", r)
	}
	select {
	case extra := <-m.Received():
		t.Fatalf("garbage delivered as a message: %+v", extra)
	default:
	}
}

type lineSink struct {
	mu    sync.Mutex
	lines []string
}

func (s *lineSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, string(p))
	return len(p), nil
}

func (s *lineSink) has(sub string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

func TestTraceLogsATExchange(t *testing.T) {
	f := newFake()
	sink := &lineSink{}
	log := slog.New(slog.NewTextHandler(sink, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := Open(ctx, Config{HealthInterval: -1}, WithProfile(testProfile()), WithLogger(log), WithTrace(),
		WithDialer(func(context.Context) (io.ReadWriteCloser, error) { return newFakePair(f), nil }))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if !sink.has("AT+CMGF=0") || !sink.has("AT <-") || !sink.has("AT ->") {
		t.Fatalf("trace missing: %q", sink.lines)
	}
}

// deliverWith is testDeliver with its last user-data octet set to b, so
// that messages can be told apart.
func deliverWith(b byte) string { return fmt.Sprintf("%s%02X", testDeliver[:len(testDeliver)-2], b) }

// A sweep lists a slot whose message is handed out; before the sweep gets
// to that entry, the consumer acknowledges the message (+CMGD) and a newer
// one is stored in the freed slot without an announcement. The sweep must
// not deliver the listed (old) PDU under the slot's index: acknowledging
// that duplicate would delete the new message unread. The sweep is held
// between its +CMGL and that entry by a full inbox.
func TestSweepListingNotStaleAfterAck(t *testing.T) {
	f := newFake()
	m := openFake(t, f, testProfile(), Config{InboxSize: 1})
	put := func(idx int, pdu string) {
		f.mu.Lock()
		f.store[idx] = fmt.Sprintf("0,%d,%s", testDeliverLen, testSMSC+pdu)
		f.mu.Unlock()
	}
	old, fresh, first, filler := deliverWith(0xA1), deliverWith(0xA2), deliverWith(0xA0), deliverWith(0xAF)
	put(1, old)
	f.write("\r\n+CMTI: \"SM\",1\r\n")
	r1 := recvOne(t, m, 10*time.Second)
	if r1.Index != 1 || fmt.Sprintf("%X", r1.TPDU) != old {
		t.Fatalf("first delivery: index %d TPDU %X", r1.Index, r1.TPDU)
	}
	put(5, filler) // fills the inbox, so that the sweep waits at its first entry
	f.write("\r\n+CMTI: \"SM\",5\r\n")
	waitFor(t, 10*time.Second, "inbox full", func() bool { return len(m.Received()) == 1 })
	put(0, first) // the first entry of the listing: the sweep waits to deliver it
	nList := func() int { return strings.Count(strings.Join(f.commands(), "|"), "+CMGL=4") }
	before := nList()
	swept := make(chan error, 1)
	go func() { swept <- m.Sweep(context.Background()) }()
	waitFor(t, 10*time.Second, "+CMGL sent", func() bool { return nList() > before })
	// The Ack's +CMGD runs after the +CMGL answer (both under memMu).
	if err := r1.Ack(context.Background()); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	put(1, fresh) // the network stores the next message in the freed slot
	got := map[string]int{}
	deadline := time.After(20 * time.Second)
	for got[fresh] == 0 || got[first] == 0 || got[filler] == 0 {
		select {
		case r := <-m.Received():
			pdu := fmt.Sprintf("%X", r.TPDU)
			got[pdu]++
			if pdu == old {
				t.Fatalf("the acknowledged message was delivered again from slot %d (its Ack would delete the new message)", r.Index)
			}
			if err := r.Ack(context.Background()); err != nil {
				t.Fatalf("Ack %s/%d: %v", r.Storage, r.Index, err)
			}
		case err := <-swept:
			if err != nil {
				t.Fatalf("Sweep: %v", err)
			}
			swept = nil
			// The new message was stored unannounced after the Ack's
			// re-read may have run: a sweep finds it, as the health poll does.
			go func() { _ = m.Sweep(m.life) }()
		case <-deadline:
			t.Fatalf("delivered %v; want the new message, the first entry and the filler", got)
		}
	}
	waitFor(t, 10*time.Second, "storage empty", func() bool { return len(f.stored()) == 0 })
}

var testSubmit = []byte{0x01, 0x00, 0x0B, 0x91, 0x13, 0x26, 0x88, 0x07, 0x36, 0xF4, 0x00, 0x04, 0x01, 0xAA}

// The previous process was killed during a +CMGS; the modem writes that
// send's answer after the driver has opened the port again, before the
// answer to ATZ. With a modem that takes a moment to answer, every later
// command would get the answer of the one before it (wrong identity, a
// sweep that reads nothing, a +CMGS left at its prompt). Open must notice
// and get back in step.
func TestLateAnswerAtOpen(t *testing.T) {
	f := newFake()
	f.lateZ = "\r\n+CMGS: 7\r\n\r\nOK\r\n"
	f.latency = 30 * time.Millisecond
	f.storeMsg(testSMSC+testDeliver, testDeliverLen, false)
	p := testProfile()
	m := openFake(t, f, p, Config{})
	if id := m.Identity(); id.Manufacturer != "FAKE" || id.Model != "F1" || id.IMSI != "001010123456789" {
		t.Fatalf("identity = %+v", id)
	}
	r := recvOne(t, m, 10*time.Second) // found by the sweep at open
	if r.Index != 0 || fmt.Sprintf("%X", r.TPDU) != testDeliver {
		t.Fatalf("swept index %d TPDU %X", r.Index, r.TPDU)
	}
	if err := r.Ack(context.Background()); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	if len(f.stored()) != 0 {
		t.Fatalf("stored after Ack: %v", f.stored())
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.CommandTimeout)
	defer cancel()
	if mr, err := m.SendPDU(ctx, testSubmit); err != nil || mr != 0 {
		t.Fatalf("SendPDU = %d, %v; want 0, nil", mr, err)
	}
}

// A +CMGS that gets a late OK (no message reference) before its "> "
// prompt fails with ErrBadResponse, and the prompt must be cancelled:
// otherwise the modem takes the next command line as PDU text and the next
// send hangs.
func TestSendOKWithoutReferenceCancelsPrompt(t *testing.T) {
	f := newFake()
	p := testProfile()
	m := openFake(t, f, p, Config{})
	f.mu.Lock()
	f.lateCMGS = "\r\nOK\r\n"
	f.mu.Unlock()
	if _, err := m.SendPDU(context.Background(), testSubmit); !errors.Is(err, ErrBadResponse) {
		t.Fatalf("SendPDU after a late OK: %v, want ErrBadResponse", err)
	}
	escapes := func() int {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.escapes
	}
	waitFor(t, 10*time.Second, "the prompt cancelled with ESC", func() bool { return escapes() > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), p.CommandTimeout)
	defer cancel()
	if mr, err := m.SendPDU(ctx, testSubmit); err != nil || mr != 0 {
		t.Fatalf("next SendPDU = %d, %v; want 0, nil", mr, err)
	}
}
