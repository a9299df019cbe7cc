//go:build unix

package sim

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/modem"
	"github.com/warthog618/sms/encoding/tpdu"
)

// This file drives the simulator with the SMS tools Debian packages,
// unchanged: gammu-smsd (gammu's daemon), smsd (smstools) and gsmsendsms
// (gsm-utils). Each test plugs a simulated modem into a pty for the tool
// and reads or writes the other end with the m2mbearer driver over a second
// pty. A test skips only when its tool is not installed.

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (Debian: see .ci/run)", name)
	}
	return p
}

// toolPair returns a network with modem a (for the tool, on a pty) and the
// driver opened on modem b (over its own pty).
func toolPair(t *testing.T, numA, numB string, optsA ...ModemOption) (*Network, *Modem, string, *modem.Modem) {
	t.Helper()
	n, err := NewNetwork(WithSeed(3), WithConditions(Conditions{Latency: Fixed(20 * time.Millisecond)}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	a, err := n.AddModem(numA, optsA...)
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.AddModem(numB)
	if err != nil {
		t.Fatal(err)
	}
	devA, err := a.OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	devB, err := b.OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	drv, err := modem.Open(ctx, modem.Config{Device: devB, MSISDN: b.MSISDN(), HealthInterval: -1},
		modem.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatalf("driver open: %v", err)
	}
	t.Cleanup(func() { b.Unplug(); _ = drv.Close() })
	return n, a, devA, drv
}

// daemon starts a tool in its own process group and stops the group at
// cleanup (smsd forks its workers).
func daemon(t *testing.T, dir, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir)
	out, err := os.Create(filepath.Join(dir, "stdout.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	pgid := cmd.Process.Pid
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-done
		}
		out.Close()
	})
}

// dumpOnFailure logs the tool's files when the test failed.
func dumpOnFailure(t *testing.T, files ...string) {
	t.Cleanup(func() {
		if !t.Failed() && os.Getenv("SIM_TOOL_LOG") == "" {
			return
		}
		for _, f := range files {
			b, _ := os.ReadFile(f)
			if len(b) > 20000 {
				b = b[len(b)-20000:]
			}
			t.Logf("--- %s ---\n%s", f, b)
		}
	})
}

// waitFile returns the content of the first file in dir whose content
// contains want.
func waitFile(t *testing.T, dir, want string, d time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil && strings.Contains(string(b), want) {
				return string(b)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no file in %s contains %q within %v", dir, want, d)
	return ""
}

// recvText waits for an SMS-DELIVER on the driver, acknowledges it and
// returns its originator and 7-bit text.
func recvText(t *testing.T, drv *modem.Modem, d time.Duration) (string, string) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case r := <-drv.Received():
			if err := r.Ack(context.Background()); err != nil {
				t.Errorf("ack: %v", err)
			}
			if r.Kind != modem.KindDeliver {
				continue
			}
			var p tpdu.TPDU
			if err := p.UnmarshalBinary(r.TPDU); err != nil {
				t.Fatalf("TPDU %x: %v", r.TPDU, err)
			}
			return p.OA.Number(), string(p.UD)
		case <-deadline:
			t.Fatalf("nothing received by the driver within %v", d)
		}
	}
}

// sendText sends a 7-bit text with the driver (TS 23.038 default alphabet:
// plain ASCII letters and spaces are the same septets).
func sendText(t *testing.T, drv *modem.Modem, to, text string) {
	t.Helper()
	s, err := tpdu.NewSubmit()
	if err != nil {
		t.Fatal(err)
	}
	s.DA = tpdu.NewAddress(tpdu.FromNumber(to))
	s.SetUD([]byte(text))
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := drv.SendPDU(ctx, b); err != nil {
		t.Fatalf("driver send: %v", err)
	}
}

func TestGammuSMSD(t *testing.T) {
	bin := needTool(t, "gammu-smsd")
	inject := needTool(t, "gammu-smsd-inject")
	t.Parallel()
	_, a, devA, drv := toolPair(t, "+15550301", "+15550302")
	dir := t.TempDir()
	for _, d := range []string{"inbox", "outbox", "sent", "error"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	rc := filepath.Join(dir, "smsdrc")
	cfg := "[gammu]\ndevice = " + devA + "\nconnection = at\nlogfile = " + filepath.Join(dir, "gammu.log") +
		"\n[smsd]\nservice = files\nlogfile = " + filepath.Join(dir, "smsd.log") + "\ndebuglevel = 1\n" +
		"inboxpath = " + dir + "/inbox/\noutboxpath = " + dir + "/outbox/\nsentsmspath = " + dir + "/sent/\n" +
		"errorsmspath = " + dir + "/error/\nReceiveFrequency = 1\nCommTimeout = 1\nDeliveryReport = sms\n"
	if err := os.WriteFile(rc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	dumpOnFailure(t, filepath.Join(dir, "smsd.log"), filepath.Join(dir, "stdout.log"))
	daemon(t, dir, bin, "-c", rc)
	// gammu-smsd sends: the driver receives.
	out, err := exec.Command(inject, "-c", rc, "TEXT", "+15550302", "-report", "-text", "from gammu smsd").CombinedOutput()
	if err != nil {
		t.Fatalf("gammu-smsd-inject: %v\n%s", err, out)
	}
	if from, text := recvText(t, drv, 60*time.Second); from != "+15550301" || text != "from gammu smsd" {
		t.Fatalf("driver received %q from %s", text, from)
	}
	waitFile(t, filepath.Join(dir, "sent"), "", 30*time.Second)
	// The status report of that send reaches gammu-smsd (+CDSI, SR read).
	waitFile(t, filepath.Join(dir, "inbox"), "", 30*time.Second)
	// The driver sends: gammu-smsd receives.
	sendText(t, drv, "+15550301", "to gammu smsd")
	waitFile(t, filepath.Join(dir, "inbox"), "to gammu smsd", 60*time.Second)
	if st := a.Stats(); st.Sent < 1 || st.Received < 1 || st.StatusReports < 1 {
		t.Fatalf("modem stats %+v", st)
	}
}

func TestSmstools(t *testing.T) {
	bin := needTool(t, "smsd")
	t.Parallel()
	_, a, devA, drv := toolPair(t, "+15550401", "+15550402")
	dir := t.TempDir()
	for _, d := range []string{"outgoing", "checked", "incoming", "sent", "failed", "reports", "stats"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "smsd.conf")
	cfg := "devices = GSM1\noutgoing = " + dir + "/outgoing\nchecked = " + dir + "/checked\nincoming = " + dir + "/incoming\n" +
		"sent = " + dir + "/sent\nfailed = " + dir + "/failed\nreport = " + dir + "/reports\nlogfile = " + dir + "/smsd.log\n" +
		"loglevel = 7\ninfofile = " + dir + "/smsd.working\npidfile = " + dir + "/smsd.pid\nstats = " + dir + "/stats\n" +
		"delaytime = 1\n\n[GSM1]\ndevice = " + devA + "\nincoming = yes\nbaudrate = 115200\nreport = yes\n" +
		"init = AT+CNMI=2,0,0,2,1\n"
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	dumpOnFailure(t, filepath.Join(dir, "smsd.log"), filepath.Join(dir, "stdout.log"))
	// smsd sends: the driver receives, and smsd gets the status report.
	if err := os.WriteFile(filepath.Join(dir, "outgoing", "msg1"), []byte("To: 15550402\nReport: yes\n\nfrom smstools\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	daemon(t, dir, bin, "-c", conf, "-t")
	if from, text := recvText(t, drv, 60*time.Second); from != "+15550401" || text != "from smstools" {
		t.Fatalf("driver received %q from %s", text, from)
	}
	waitFile(t, filepath.Join(dir, "sent"), "from smstools", 30*time.Second)
	if r := waitFile(t, filepath.Join(dir, "reports"), "Status: 0", 60*time.Second); !strings.Contains(r, "15550402") {
		t.Fatalf("report:\n%s", r)
	}
	// The driver sends: smsd receives.
	sendText(t, drv, "+15550401", "to smstools")
	if in := waitFile(t, filepath.Join(dir, "incoming"), "to smstools", 60*time.Second); !strings.Contains(in, "From: 15550402") {
		t.Fatalf("incoming:\n%s", in)
	}
	// smsd deletes each message after writing its file.
	deadline := time.Now().Add(20 * time.Second)
	for a.Stats().Stored != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("smsd left %d messages on the modem", a.Stats().Stored)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ioctlShim is an LD_PRELOAD library that makes the modem-control ioctls
// (DTR/RTS) succeed on a pty: gsmlib toggles DTR at open and gives up when
// the device has no modem-control lines, which a pty never has (a USB
// serial modem does). Nothing else of gsmsendsms is touched.
const ioctlShim = `#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <sys/ioctl.h>
int ioctl(int fd, unsigned long req, ...) {
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	static int (*real)(int, unsigned long, ...);
	if (!real) real = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
	int r = real(fd, req, arg);
	if (r < 0 && errno == ENOTTY && (req == TIOCMBIC || req == TIOCMBIS || req == TIOCMGET || req == TIOCMSET)) {
		errno = 0;
		return 0;
	}
	return r;
}
`

func TestGsmsendsms(t *testing.T) {
	bin := needTool(t, "gsmsendsms")
	cc := needTool(t, "cc")
	t.Parallel()
	_, a, devA, drv := toolPair(t, "+15550501", "+15550502")
	dir := t.TempDir()
	src, so := filepath.Join(dir, "shim.c"), filepath.Join(dir, "shim.so")
	if err := os.WriteFile(src, []byte(ioctlShim), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cc, "-shared", "-fPIC", "-o", so, src, "-ldl").CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, args := range [][]string{
		{"-d", devA, "+15550502", "from gsmsendsms"},         // AT+CMGS=<n><NUL>
		{"-r", "-d", devA, "+15550502", "with a report"},     // TP-SRR set
		{"-b", "115200", "-d", devA, "15550502", "national"}, // no '+'
	} {
		t.Run(args[len(args)-1], func(t *testing.T) {
			cmd := exec.CommandContext(ctx, bin, args...)
			cmd.Env = append(os.Environ(), "LD_PRELOAD="+so)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("gsmsendsms %q: %v\n%s", args, err, out)
			}
			want := args[len(args)-1]
			if from, text := recvText(t, drv, 30*time.Second); from != "+15550501" || text != want {
				t.Fatalf("driver received %q from %s, want %q", text, from, want)
			}
		})
	}
	if st := a.Stats(); st.Sent != 3 || st.SendFailed != 0 {
		t.Fatalf("modem stats %+v", st)
	}
}
