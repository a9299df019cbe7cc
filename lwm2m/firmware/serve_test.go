package firmware_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/udp"
	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
)

func coapServer(t *testing.T, blockSize int) (*firmware.Store, *bearer.Endpoint, *atomic.Int64) {
	t.Helper()
	s, err := firmware.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := udp.Listen("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := bearer.NewServeMux()
	served := new(atomic.Int64)
	mux.Handle("/fw/", firmware.NewCoAPHandler(s, "/fw/", blockSize, func(n int) { served.Add(int64(n)) }))
	ep, err := bearer.NewEndpoint(b, bearer.WithHandler(mux), bearer.WithBlockSize(blockSize))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	return s, ep, served
}

func TestCoAPHandlerBlock2(t *testing.T) {
	for _, tc := range []struct {
		name             string
		server, client   int
		size, wantBlocks int
		early            bool // Block2 in the first request (RFC 7959 §2.4)
	}{
		{"one block", 1024, 1024, 1000, 1, false},
		{"exact block", 64, 64, 128, 2, false},
		{"server 64", 64, 1024, 1000, 16, false},
		{"client asks smaller", 1024, 32, 1000, 32, true},
		{"1 KiB blocks", 1024, 1024, 50000, 49, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, sep, served := coapServer(t, tc.server)
			data := make([]byte, tc.size)
			for i := range data {
				data[i] = byte(i * 7)
			}
			info, err := s.PutBytes(context.Background(), "x", "1", data)
			if err != nil {
				t.Fatal(err)
			}
			cb, _ := udp.Listen("udp", "127.0.0.1:0")
			cep, err := bearer.NewEndpoint(cb, bearer.WithBlockSize(tc.client))
			if err != nil {
				t.Fatal(err)
			}
			defer cep.Close()
			ctx := ctxT(t, 20*time.Second)
			var opts []message.Option
			if tc.early {
				opts = append(opts, bearer.UintOption(message.Block2, 1)) // NUM 0, SZX 1: 32 bytes
			}
			resp, err := cep.Get(ctx, sep.LocalAddr(), "/fw/"+info.ID, opts...)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Code != codes.Content || !bytes.Equal(resp.Payload, data) {
				t.Fatalf("%v: %d bytes", resp.Code, len(resp.Payload))
			}
			if served.Load() != int64(tc.wantBlocks) {
				t.Fatalf("served %d blocks, want %d", served.Load(), tc.wantBlocks)
			}
		})
	}
	_, sep, _ := coapServer(t, 64)
	cb, _ := udp.Listen("udp", "127.0.0.1:0")
	cep, _ := bearer.NewEndpoint(cb)
	defer cep.Close()
	ctx := ctxT(t, 20*time.Second)
	for _, tc := range []struct {
		code codes.Code
		path string
		opts []message.Option
	}{
		{codes.NotFound, "/fw/nope", nil},
		{codes.NotFound, "/fw/", nil},
		{codes.NotFound, "/fw/a/b", nil},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, err := cep.Get(ctx, sep.LocalAddr(), tc.path, tc.opts...)
			if err != nil || resp.Code != tc.code {
				t.Fatalf("%s: %v %v", tc.path, resp, err)
			}
		})
	}
	resp, err := cep.Post(ctx, sep.LocalAddr(), "/fw/x", message.AppOctets, nil)
	if err != nil || resp.Code != codes.MethodNotAllowed {
		t.Fatalf("POST: %v %v", resp, err)
	}
}

// libcoap's coap-client fetches an image block by block from our handler
// (RFC 7959 interoperability).
func TestCoAPHandlerLibcoap(t *testing.T) {
	bin, err := exec.LookPath("coap-client-notls")
	if err != nil {
		t.Skip("coap-client-notls not installed")
	}
	s, sep, served := coapServer(t, 256)
	data := bytes.Repeat([]byte("libcoap block2 "), 300)
	info, err := s.PutBytes(context.Background(), "x", "1", data)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir() + "/img"
	port := sep.LocalAddr().(interface{ String() string }).String()
	_, p, _ := cutLast(port, ":")
	if _, err := strconv.Atoi(p); err != nil {
		t.Fatal(port)
	}
	ctx := ctxT(t, 30*time.Second)
	cmd := exec.CommandContext(ctx, bin, "-m", "get", "-b", "64", "-o", out, "coap://127.0.0.1:"+p+"/fw/"+info.ID)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	got, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("libcoap got %d bytes (%v), want %d", len(got), err, len(data))
	}
	if served.Load() < int64(len(data)/64) {
		t.Fatalf("served %d blocks", served.Load())
	}
}

func cutLast(s, sep string) (string, string, bool) {
	i := bytes.LastIndex([]byte(s), []byte(sep))
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}
