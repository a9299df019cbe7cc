package oscore_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/oscore"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
)

// libcoapOSCORE returns the directory of a libcoap build whose coap-client
// and coap-server speak OSCORE (-E), or "" when there is none. Debian's
// libcoap3-bin 4.3.1 is built without OSCORE; a build from source can be
// named by M2M_LIBCOAP_OSCORE (a directory with coap-client and
// coap-server), or be on PATH as coap-client and coap-server.
func libcoapOSCORE(t *testing.T) string {
	t.Helper()
	var dirs []string
	if d := os.Getenv("M2M_LIBCOAP_OSCORE"); d != "" {
		dirs = append(dirs, d)
	}
	if p, err := exec.LookPath("coap-client"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, d := range dirs {
		cli, srv := filepath.Join(d, "coap-client"), filepath.Join(d, "coap-server")
		if _, err := os.Stat(srv); err != nil {
			continue
		}
		out, _ := exec.Command(cli, "-h").CombinedOutput()
		if bytes.Contains(out, []byte("oscore_conf_file")) {
			return d
		}
	}
	return ""
}

// libcoapConf writes a libcoap OSCORE configuration (coap-oscore-conf(5))
// with Appendix B.2 enabled.
func libcoapConf(t *testing.T, sender, recipient string, b12 bool) string {
	t.Helper()
	conf := "master_secret,hex,\"0102030405060708090a0b0c0d0e0f10\"\n" +
		"master_salt,hex,\"9e7ca92223786340\"\n" +
		"sender_id,hex,\"" + sender + "\"\n" +
		"recipient_id,hex,\"" + recipient + "\"\n" +
		"replay_window,integer,32\n" +
		"aead_alg,integer,10\n" +
		"hkdf_alg,integer,-10\n" +
		"rfc8613_b_2,bool,true\n"
	if !b12 {
		conf += "rfc8613_b_1_2,bool,false\n"
	}
	// Not t.TempDir: its name has the subtest's commas, and -E splits the
	// argument at a comma (file,seq_file).
	d, err := os.MkdirTemp("", "m2m-oscore")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	f := filepath.Join(d, "oscore.conf")
	if err := os.WriteFile(f, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func interopParams(sender, recipient byte) oscore.Params {
	return oscore.Params{MasterSecret: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		MasterSalt: []byte{0x9e, 0x7c, 0xa9, 0x22, 0x23, 0x78, 0x63, 0x40},
		SenderID:   []byte{sender}, RecipientID: []byte{recipient}}
}

// TestInteropLibcoapAppendixB2 runs Appendix B.2 against libcoap, an
// independent implementation, over loopback UDP, in both roles: libcoap's
// coap-client (which starts a run on every session) against our server,
// and our client with no established state against libcoap's
// coap-server. Skipped when no OSCORE-capable libcoap is installed.
func TestInteropLibcoapAppendixB2(t *testing.T) {
	dir := libcoapOSCORE(t)
	if dir == "" {
		t.Skip("no libcoap with OSCORE (coap-client -E); set M2M_LIBCOAP_OSCORE to a build directory")
	}
	t.Run("libcoap client starts the run, our server answers", func(t *testing.T) {
		x, err := oscore.NewContext(interopParams(0x02, 0x01), oscore.NewMemoryStore(), oscore.WithRederivation())
		if err != nil {
			t.Fatal(err)
		}
		u, err := udp.Listen("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		conn, err := oscore.New(u, oscore.WithContext(x))
		if err != nil {
			t.Fatal(err)
		}
		mux := bearer.NewServeMux()
		runs := 0
		mux.HandleFunc("/hello", func(rw bearer.ResponseWriter, r *bearer.Request) {
			runs++
			_ = rw.WriteResponse(codes.Content, []byte("hello from m2mbearer"))
		})
		ep, err := bearer.NewEndpoint(conn, bearer.WithHandler(mux))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ep.Close() })
		conf := libcoapConf(t, "01", "02", true)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, filepath.Join(dir, "coap-client"), "-E", conf, "-B", "10", "-v", "8",
			"coap://"+u.LocalAddr().String()+"/hello").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "hello from m2mbearer") {
			t.Fatalf("coap-client: %v\n%s", err, out)
		}
		st := conn.Stats()
		t.Logf("our server: %v", st)
		if st["b2_response1"] < 1 || st["b2_established"] != 1 || runs != 1 {
			t.Fatalf("B.2 run not seen as expected (handler ran %d times): %v", runs, st)
		}
	})
	t.Run("our client starts the run, libcoap server answers", func(t *testing.T) {
		port := freeUDPPort(t)
		conf := libcoapConf(t, "02", "01", false)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv := exec.CommandContext(ctx, filepath.Join(dir, "coap-server"), "-E", conf, "-A", "127.0.0.1", "-p", port, "-v", "8")
		var log bytes.Buffer
		srv.Stdout, srv.Stderr = &log, &log
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
		x, err := oscore.NewContext(interopParams(0x01, 0x02), oscore.NewMemoryStore(), oscore.WithRederivation())
		if err != nil {
			t.Fatal(err)
		}
		u, err := udp.Listen("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		conn, err := oscore.New(u, oscore.WithDefault(x))
		if err != nil {
			t.Fatal(err)
		}
		ep, err := bearer.NewEndpoint(conn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ep.Close() })
		addr, _ := net.ResolveUDPAddr("udp", "127.0.0.1:"+port)
		var resp *bearer.Response
		for i := 0; i < 50; i++ { // the server binds its port after it started
			rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
			resp, err = ep.Get(rctx, addr, "/")
			rcancel()
			if err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("GET / from libcoap's coap-server: %v\n%s", err, log.String())
		}
		t.Logf("coap-server answered %v %q; our client: %v", resp.Code, resp.Payload, conn.Stats())
		if resp.Code != codes.Content || x.CurrentIDContext() == nil {
			t.Fatalf("answer %v, ID context %x", resp.Code, x.CurrentIDContext())
		}
		st := conn.Stats()
		if st["b2_started"] != 1 || st["b2_request2"] != 1 || st["b2_established"] != 1 {
			t.Fatalf("B.2 counters: %v\n%s", st, log.String())
		}
		// The established context carries on without a new run.
		if resp, err := ep.Get(ctx, addr, "/"); err != nil || resp.Code != codes.Content {
			t.Fatalf("second GET: %v %v", resp, err)
		}
	})
}

func freeUDPPort(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, port, _ := net.SplitHostPort(c.LocalAddr().String())
	return port
}
