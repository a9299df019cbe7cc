package sim

import (
	"context"
	"io"
	"log/slog"

	"github.com/m2mbearer/m2mbearer/modem"
	"github.com/warthog618/sms/encoding/tpdu"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// gammu runs the Debian gammu binary against a pty with a timeout; on
// failure the test log gets gammu's debug log (the AT commands it sent).
func gammu(t *testing.T, dev string, args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("gammu")
	if err != nil {
		t.Skip("gammu not installed")
	}
	dir := t.TempDir()
	rc := filepath.Join(dir, "gammurc")
	logf := filepath.Join(dir, "gammu.log")
	cfg := "[gammu]\ndevice = " + dev + "\nconnection = at\nlogfile = " + logf + "\nlogformat = textall\n"
	if err := os.WriteFile(rc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-c", rc}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil || os.Getenv("SIM_GAMMU_LOG") != "" {
		lg, _ := os.ReadFile(logf)
		t.Logf("gammu %s: %v\n%s\n--- debug log ---\n%s", strings.Join(args, " "), err, out, lg)
	}
	return string(out), err
}

func TestGammuIdentifyAndSend(t *testing.T) {
	if _, err := exec.LookPath("gammu"); err != nil {
		t.Skip("gammu not installed")
	}
	n, err := NewNetwork()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	p, _ := ProfileByName("sim800")
	a, err := n.AddModem("+15550101", WithProfile(p), WithIdentity("356938035643809", "001010123456789"),
		WithPTYLink(filepath.Join(t.TempDir(), "ttyGSM0")))
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.AddModem("+15550102")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := a.OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	out, err := gammu(t, dev, "identify")
	if err != nil {
		t.Fatalf("identify: %v", err)
	}
	for _, want := range []string{"SIMCOM_Ltd", "SIMCOM_SIM800", "356938035643809"} {
		t.Run(want, func(t *testing.T) {
			if !strings.Contains(out, want) {
				t.Errorf("identify output lacks %q:\n%s", want, out)
			}
		})
	}
	// The receiver is read by the m2mbearer driver (package modem) over
	// its own pty: a real serial path on both sides.
	devB, err := b.OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	drv, err := modem.Open(ctx, modem.Config{Device: devB, MSISDN: b.MSISDN(), HealthInterval: -1},
		modem.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatalf("driver open: %v", err)
	}
	defer func() {
		// tarm/serial reads a blocking descriptor; its Close waits for the
		// read in progress, which the unplug ends.
		b.Unplug()
		_ = drv.Close()
	}()
	if out, err := gammu(t, dev, "sendsms", "TEXT", "+15550102", "-text", "hello"); err != nil {
		t.Fatalf("sendsms: %v\n%s", err, out)
	}
	var rx *modem.Received
	select {
	case rx = <-drv.Received():
	case <-ctx.Done():
		t.Fatal("nothing received by the driver")
	}
	if err := rx.Ack(ctx); err != nil {
		t.Errorf("ack: %v", err)
	}
	var d tpdu.TPDU
	if err := d.UnmarshalBinary(rx.TPDU); err != nil {
		t.Fatalf("received TPDU %x: %v", rx.TPDU, err)
	}
	if d.OA.Number() != "+15550101" {
		t.Errorf("originator %q", d.OA.Number())
	}
	alpha, _ := d.Alphabet()
	if alpha != 0 { // 7-bit
		t.Errorf("alphabet %v", alpha)
	}
	// UD holds GSM 7-bit septets; "hello" is plain ASCII in GSM 03.38.
	if string(d.UD) != "hello" {
		t.Errorf("text %q", d.UD)
	}
}
