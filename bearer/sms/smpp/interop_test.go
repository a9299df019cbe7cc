package smpp_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer/sms"
	"github.com/m2mbearer/m2mbearer/bearer/sms/outbox"
	"github.com/m2mbearer/m2mbearer/bearer/sms/pdu"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smpp"
	"github.com/m2mbearer/m2mbearer/bearer/sms/smpp/smsc"
	"github.com/m2mbearer/m2mbearer/modem/sim"
)

// nodeSMPP returns the directory holding node_modules/smpp (the npm
// package "smpp" 0.5.1, an SMPP client and server in node.js written
// independently of us), installing it with npm into a cache directory on
// first use. It skips only when node or npm is not installed.
func nodeSMPP(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
	dir := os.Getenv("M2M_NPM_CACHE")
	if dir == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			c = os.TempDir()
		}
		dir = filepath.Join(c, "m2mbearer-npm")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "smpp", "package.json")); err == nil {
		return dir
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "npm", "install", "--prefix", dir, "--no-audit", "--no-fund", "--no-save", "smpp@0.5.1").CombinedOutput()
	if err != nil {
		t.Fatalf("npm install smpp@0.5.1: %v\n%s", err, out)
	}
	return dir
}

// node runs a script of testdata with NODE_PATH at the npm package and
// returns its JSON lines; closing stdin (at cleanup) stops it.
type nodeProc struct {
	cmd   *exec.Cmd
	lines chan map[string]any
	port  chan string
}

func startNode(t *testing.T, script string, args ...string) *nodeProc {
	t.Helper()
	dir := nodeSMPP(t)
	abs, _ := filepath.Abs(filepath.Join("testdata", script))
	cmd := exec.Command("node", append([]string{abs}, args...)...)
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &nodeProc{cmd: cmd, lines: make(chan map[string]any, 256), port: make(chan string, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			l := sc.Text()
			if port, ok := strings.CutPrefix(l, "PORT "); ok {
				p.port <- port
				continue
			}
			var v map[string]any
			if json.Unmarshal([]byte(l), &v) == nil {
				p.lines <- v
			}
		}
	}()
	t.Cleanup(func() {
		stdin.Close()
		timer := time.AfterFunc(10*time.Second, func() { cmd.Process.Kill() })
		cmd.Wait()
		timer.Stop()
		<-done
		if t.Failed() {
			t.Logf("node stderr:\n%s", stderr.String())
		}
	})
	return p
}

func (p *nodeProc) next(t *testing.T, op string) map[string]any {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case v := <-p.lines:
			if v["op"] == op {
				return v
			}
			if v["op"] == "error" {
				t.Fatalf("node: %v", v)
			}
		case <-timeout:
			t.Fatalf("node reported no %s", op)
		}
	}
}

// TestInteropNodeSMSC: our ESME against an SMSC written with node-smpp. A
// short and a concatenated datagram go out in each concatenation mode; the
// SMSC's view of every submit_sm is checked (TON/NPI, data_coding 0x04,
// esm_class UDHI, sar_* TLVs, message_payload), its receipts come back as
// delivered status reports, and its echo is reassembled by our bearer.
func TestInteropNodeSMSC(t *testing.T) {
	cases := []struct {
		name   string
		concat smpp.Concat
		tls    bool
	}{{"udh", smpp.ConcatUDH, false}, {"sar", smpp.ConcatSAR, false}, {"payload", smpp.ConcatPayload, false},
		{"udh over TLS", smpp.ConcatUDH, true}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var args []string
			var tlsCfg *tls.Config
			if c.tls {
				// node's TLS server with a certificate for 127.0.0.1 from a
				// CA of this test; the link trusts that CA only.
				ca := newCA(t, "interop CA")
				_, cert, key := ca.issue(t, false, "smsc.test", "127.0.0.1")
				d := t.TempDir()
				args = []string{writeFile(t, d, "smsc.pem", cert), writeFile(t, d, "smsc.key", key)}
				var err error
				if tlsCfg, err = (smpp.TLSOptions{CAFile: writeFile(t, d, "ca.pem", ca.pem)}).Config("127.0.0.1"); err != nil {
					t.Fatal(err)
				}
			}
			node := startNode(t, "interop_smsc.js", args...)
			var port string
			select {
			case port = <-node.port:
			case <-time.After(30 * time.Second):
				t.Fatal("node SMSC did not start")
			}
			dir := t.TempDir()
			link, err := smpp.Dial(smpp.Config{Name: "node", Addr: "127.0.0.1:" + port, SystemID: "gw", Password: "pw", TLS: tlsCfg,
				Sources: []string{serverNum}, StateDir: dir, Concat: c.concat, Logger: quiet()})
			if err != nil {
				t.Fatal(err)
			}
			defer link.Close()
			results := make(chan outbox.Result, 16)
			b, err := sms.New(link, sms.Config{StateDir: dir, Submit: []pdu.Option{pdu.WithStatusReport(true)}, Logger: quiet(),
				Peers:    map[string]sms.Peer{deviceNum: {Security: sms.ModeNoSec, SIM: serverNum}},
				Worker:   outbox.WorkerConfig{Poll: 10 * time.Millisecond},
				OnResult: func(r outbox.Result) { results <- r }})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			for i, size := range []int{30, 300} {
				if !t.Run(fmt.Sprintf("%d bytes", size), func(t *testing.T) {
					out := datagram(size, byte(i))
					if _, err := b.WriteTo(out, addr(deviceNum)); err != nil {
						t.Fatal(err)
					}
					segs := 1
					if size > 140 && c.concat != smpp.ConcatPayload {
						segs = 3
					}
					var got []byte
					for s := 0; s < segs; s++ {
						v := node.next(t, "submit")
						if v["src"] != serverNum[1:] || v["src_ton"] != float64(1) || v["src_npi"] != float64(1) ||
							v["dst"] != deviceNum[1:] || v["dst_ton"] != float64(1) || v["dc"] != float64(4) || v["rd"] != float64(1) {
							t.Fatalf("submit_sm as the SMSC saw it: %v", v)
						}
						esm, _ := v["esm"].(float64)
						switch {
						case c.concat == smpp.ConcatUDH && segs > 1 && int(esm)&0x40 == 0:
							t.Fatalf("concatenated segment without UDHI: %v", v)
						case c.concat == smpp.ConcatSAR && segs > 1 && (v["sar"] == nil || int(esm)&0x40 != 0):
							t.Fatalf("sar mode: %v", v)
						case c.concat == smpp.ConcatPayload && size > 254 && v["payload"] == nil:
							t.Fatalf("payload mode without message_payload: %v", v)
						}
						h, _ := v["sm"].(string)
						if p, ok := v["payload"].(string); ok {
							h = p
						}
						raw, _ := hex.DecodeString(h)
						if int(esm)&0x40 != 0 {
							raw = raw[1+int(raw[0]):]
						}
						got = append(got, raw...)
					}
					if !bytes.Equal(got, out) {
						t.Fatalf("the SMSC got %x\nwant %x", got, out)
					}
					back, from := read(t, b)
					if !bytes.Equal(back, out) || from != deviceNum {
						t.Fatalf("echo: %d bytes from %s", len(back), from)
					}
					select {
					case r := <-results:
						if r.Outcome != outbox.DeliveredOutcome {
							t.Fatalf("outcome %v %v", r.Outcome, r.Err)
						}
					case <-time.After(30 * time.Second):
						t.Fatalf("no receipt correlated: %+v", link.Stats())
					}
				}) {
					return
				}
			}
			if st := settled(link); st.Receipts == 0 || st.ReceiptsUnknown != 0 || st.Malformed != 0 || st.AwaitingReceipt != 0 {
				t.Fatalf("link stats %+v", st)
			}
		})
	}
}

// TestInteropNodeESME: node-smpp as the ESME against our simulated SMSC: its
// two-segment binary submit reaches a device on the simulated network
// (reassembled by our bearer), the device's reply reaches it as
// deliver_sm, and so do the receipts of both segments.
func TestInteropNodeESME(t *testing.T) {
	const esmeNum = "+15550200"
	n, err := sim.NewNetwork(sim.WithConditions(sim.Conditions{Latency: sim.Fixed(5 * time.Millisecond)}), sim.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	srv, err := smsc.Start(smsc.Config{Network: n, Logger: quiet(),
		Accounts: []smsc.Account{{SystemID: "node", Password: "pw", Numbers: []string{esmeNum}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dev, err := sms.New(newEPLink(t, n, deviceNum), sms.Config{StateDir: t.TempDir(), Logger: quiet(),
		Peers: map[string]sms.Peer{esmeNum: {Security: sms.ModeNoSec}}})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	data := datagram(200, 3)
	host, port, _ := strings.Cut(srv.Addr(), ":")
	node := startNode(t, "interop_esme.js", host, port, esmeNum[1:], deviceNum[1:], hex.EncodeToString(data))
	if v := node.next(t, "bind"); v["status"] != float64(0) {
		t.Fatalf("bind: %v", v)
	}
	ids := map[string]bool{}
	for i := 0; i < 2; i++ {
		v := node.next(t, "submit_resp")
		if v["status"] != float64(0) || v["id"] == "" {
			t.Fatalf("submit: %v", v)
		}
		ids[v["id"].(string)] = true
	}
	got, from := read(t, dev)
	if !bytes.Equal(got, data) || from != esmeNum {
		t.Fatalf("device got %d bytes from %s", len(got), from)
	}
	reply := datagram(60, 9)
	if _, err := dev.WriteTo(reply, addr(esmeNum)); err != nil {
		t.Fatal(err)
	}
	receipts := 0
	var msg map[string]any
	for receipts < 2 || msg == nil {
		v := node.next(t, "deliver")
		if esm, _ := v["esm"].(float64); int(esm)&0x3c == 0x04 {
			if id, _ := v["receipted"].(string); !ids[id] || v["state"] != float64(2) {
				t.Fatalf("receipt: %v (submitted %v)", v, ids)
			}
			receipts++
			continue
		}
		msg = v
	}
	if msg["src"] != deviceNum[1:] || msg["dc"] != float64(4) || msg["data"] != hex.EncodeToString(reply) {
		t.Fatalf("reply as node saw it: %v", msg)
	}
	if st := srv.Stats(); st.Submits != 2 || st.Receipts != 2 || st.Malformed != 0 {
		t.Fatalf("smsc stats %+v", st)
	}
}
