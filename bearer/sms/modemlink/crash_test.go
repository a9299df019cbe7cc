package modemlink_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/modem/sim"
)

const crashDatagrams = 20

// nonRequest is a CoAP NON POST /n with message ID 0x4000+n and a token.
func nonRequest(n int) []byte {
	path := strconv.Itoa(n)
	mid := 0x4000 + n
	b := []byte{0x51, 0x02, byte(mid >> 8), byte(mid), byte(n)}
	b = append(b, byte(0xb0|len(path)))
	return append(b, path...)
}

// TestMain runs crashChildSender instead of the tests when the process is
// the child that TestKill9Outbox starts (SMS_CRASH_PTY set).
func TestMain(m *testing.M) {
	if pty := os.Getenv("SMS_CRASH_PTY"); pty != "" {
		if err := crashChildSender(pty, os.Getenv("SMS_CRASH_DIR")); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(2)
		}
	}
	os.Exit(m.Run())
}

// crashChildSender is the child of TestKill9Outbox: it opens the server
// modem's pty with the real driver, stores crashDatagrams datagrams in the
// SMS bearer's outbox, printing each one once WriteTo returned, then waits
// for SIGKILL while the slow modem sends them. It returns only on error.
func crashChildSender(pty, dir string) error {
	s, err := openSide(pty, serverNum, deviceNum, params(5*time.Second), dir)
	if err != nil {
		return err
	}
	dev, err := sms.ParseMSISDN(deviceNum)
	if err != nil {
		return err
	}
	for n := 0; n < crashDatagrams; n++ {
		if _, err := s.b.WriteTo(nonRequest(n), dev); err != nil {
			return fmt.Errorf("WriteTo %d: %w", n, err)
		}
		fmt.Printf("stored %d\n", n)
	}
	select {}
}

// TestKill9Outbox kills a process with SIGKILL while datagrams wait in its
// SMS outbox; after a restart on the same state every one is delivered to
// the device's CoAP layer exactly once.
func TestKill9Outbox(t *testing.T) {
	n, err := sim.NewNetwork(sim.WithSeed(3), sim.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	sm, err := n.AddModem(serverNum, sim.WithSendTime(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	dm, err := n.AddModem(deviceNum, sim.WithSendTime(2*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	spty, err := sm.OpenPTY()
	if err != nil {
		t.Fatal(err)
	}

	// The device: an Endpoint counting each request it serves.
	var mu sync.Mutex
	handled := map[string]int{}
	devSide := newSide(t, dm, serverNum, params(5*time.Second), "")
	mux := bearer.NewServeMux()
	mux.HandleFunc("/", func(w bearer.ResponseWriter, r *bearer.Request) {
		mu.Lock()
		handled[r.Path()]++
		mu.Unlock()
		w.WriteResponse(codes.Changed, nil)
	})
	dep, err := bearer.NewEndpoint(devSide.b, bearer.WithHandler(mux))
	if err != nil {
		t.Fatal(err)
	}
	defer dep.Close()

	dir := t.TempDir()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "SMS_CRASH_PTY="+spty, "SMS_CRASH_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	stored := 0
	sc := bufio.NewScanner(out)
	deadline := time.Now().Add(60 * time.Second)
	for stored < crashDatagrams && sc.Scan() {
		if strings.HasPrefix(sc.Text(), "stored ") {
			stored++
		}
		if time.Now().After(deadline) {
			t.Fatal("child too slow")
		}
	}
	if stored != crashDatagrams {
		t.Fatalf("child stored %d datagrams and exited", stored)
	}
	// Let a few go out, then kill it mid-way.
	for n.Stats().Submitted < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	sentBefore := n.Stats().Submitted
	t.Logf("killed after %d of %d datagrams left the modem", sentBefore, crashDatagrams)
	if sentBefore >= crashDatagrams {
		t.Fatal("everything was sent before the kill: the test proves nothing")
	}

	// Restart on the same state directory and the same modem.
	srv := openSideOn(t, spty, serverNum, deviceNum, dir)
	defer srv.close()
	deadline = time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		got := len(handled)
		mu.Unlock()
		if got == crashDatagrams && srv.b.Stats().Outbox.Entries == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after restart only %d of %d datagrams arrived; outbox %+v; pool %+v; server modem %+v",
				got, crashDatagrams, srv.b.Stats().Outbox, srv.pool.Status(), sm.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // a duplicate would arrive now
	mu.Lock()
	defer mu.Unlock()
	for i := 0; i < crashDatagrams; i++ {
		if c := handled["/"+strconv.Itoa(i)]; c != 1 {
			t.Errorf("datagram %d handled %d times", i, c)
		}
	}
	t.Logf("after restart: all %d delivered once; SMS submitted in all: %d", crashDatagrams, n.Stats().Submitted)
}

// openSideOn opens the SMS bearer over the modem at the pty path.
func openSideOn(t *testing.T, pty, own, peer, dir string) *side {
	t.Helper()
	return newSideOn(t, pty, own, peer, params(5*time.Second), dir)
}
