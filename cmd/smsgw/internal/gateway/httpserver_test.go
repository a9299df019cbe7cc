package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/gwtest"
)

// quietGateway starts a gateway without the simulator (UDP listener only,
// no fleet), with cfg changed by edit, and returns it with the API's root
// URL ("http://127.0.0.1:port").
func quietGateway(t *testing.T, dir string, edit func(*config.Config)) (*Gateway, string) {
	t.Helper()
	cfg := quietConfig(dir)
	cfg.API.Token = testToken
	if edit != nil {
		edit(cfg)
	}
	g := runGateway(t, cfg)
	return g, strings.TrimSuffix(g.Info().API, "/api/v1")
}

// runGateway starts a gateway with cfg and shuts it down when the test
// ends.
func runGateway(t *testing.T, cfg *config.Config) *Gateway {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	g, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, c := context.WithTimeout(context.Background(), 30*time.Second)
		defer c()
		if err := g.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return g
}

// rawRequest sends bytes on a new connection and returns the status line's
// code, the headers and the body of the first answer.
func rawRequest(t *testing.T, root, req string) (int, http.Header, []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(root, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func isJSONError(h http.Header, body []byte) bool {
	var e APIError
	return strings.HasPrefix(h.Get("Content-Type"), "application/json") && json.Unmarshal(body, &e) == nil && e.Error != ""
}

// TestHTTPRefusals: every refusal of the API is a JSON error with the
// right status, before or while the body is read.
func TestHTTPRefusals(t *testing.T) {
	_, root := quietGateway(t, t.TempDir(), nil)
	auth := "Authorization: Bearer " + testToken + "\r\n"
	big := strings.Repeat("x", maxBody+10)
	chunked := func(body string) string {
		return fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body)
	}
	tests := []struct {
		name, req string
		code      int
		want      string
	}{
		{"trailing data", "POST /api/v1/campaigns HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: 34\r\n\r\n" + `{"image":"x","prefix":"p"} {"a":1}`, 400, "data after the JSON object"},
		{"invalid UTF-8", "POST /api/v1/campaigns HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: 16\r\n\r\n{\"image\":\"\xff\xfe\"}  ", 400, "not valid UTF-8"},
		{"unknown field", "POST /api/v1/campaigns HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: 15\r\n\r\n{\"imagex\":\"x\"} ", 400, "unknown field"},
		{"not an object", "POST /api/v1/campaigns HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: 7\r\n\r\n[1,2,3]", 400, "JSON object"},
		{"empty body", "POST /api/v1/campaigns HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: 0\r\n\r\n", 400, "body is required"},
		{"declared body over its bound", "POST /api/v1/campaigns HTTP/1.1\r\nHost: x\r\n" + auth + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(big)), 413, "request body of"},
		{"chunked body over its bound", "POST /api/v1/campaigns HTTP/1.1\r\nHost: x\r\n" + auth + "Transfer-Encoding: chunked\r\n\r\n" + chunked(big), 413, "request body over"},
		{"declared upload over its bound", "POST /api/v1/firmware?version=1&sha256=00 HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: 999999999999\r\n\r\n", 413, "request body of"},
		{"headers over their bound", "GET /api/v1/devices HTTP/1.1\r\nHost: x\r\n" + auth + "X-Junk: " + strings.Repeat("j", 20000) + "\r\n\r\n", 431, "max_header_bytes"},
		{"no route", "GET /api/v1/nothing HTTP/1.1\r\nHost: x\r\n\r\n", 404, "no route"},
		{"wrong method", "PATCH /api/v1/devices HTTP/1.1\r\nHost: x\r\n\r\n", 405, "not allowed"},
		{"bad limit", "GET /api/v1/devices?limit=0 HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n", 400, "limit"},
		{"bad cursor", "GET /api/v1/devices?cursor=!!!! HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n", 400, "cursor"},
		{"no token", "GET /api/v1/devices HTTP/1.1\r\nHost: x\r\n\r\n", 401, "bearer token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, h, body := rawRequest(t, root, tc.req)
			if code != tc.code || !isJSONError(h, body) || !strings.Contains(string(body), tc.want) {
				t.Fatalf("HTTP %d %s %q, want %d with a JSON error containing %q", code, h.Get("Content-Type"), body, tc.code, tc.want)
			}
		})
	}
	// The refusals are counted.
	resp, err := http.Get(root + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, reason := range []string{"body_too_large", "header_too_large", "not_found", "method_not_allowed"} {
		t.Run(reason, func(t *testing.T) {
			if !strings.Contains(string(m), `smsgw_api_refused_total{reason="`+reason+`"}`) {
				t.Errorf("no smsgw_api_refused_total for %s", reason)
			}
		})
	}
}

// TestConnectionLimits: a client address holds at most
// max_conns_per_client connections; the next gets a JSON 429 at once, and
// a slot frees when a connection closes.
func TestConnectionLimits(t *testing.T) {
	_, root := quietGateway(t, t.TempDir(), func(c *config.Config) { c.API.Limits.MaxConnsPerClient = 4 })
	addr := strings.TrimPrefix(root, "http://")
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := 0; i < 4; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	// The fifth is refused before it sends anything.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("fifth connection: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	c.Close()
	if resp.StatusCode != http.StatusTooManyRequests || !isJSONError(resp.Header, body) || !strings.Contains(string(body), "max_conns_per_client") {
		t.Fatalf("fifth connection: %d %q", resp.StatusCode, body)
	}
	// One closes: a new one is served.
	held[0].Close()
	held = held[1:]
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		code, _, _ := rawRequest(t, root, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no slot freed: %d", code)
		}
	}
}

func TestClientKey(t *testing.T) {
	for _, c := range []struct{ addr, want string }{
		{"192.0.2.7:4000", "192.0.2.7/32"},
		{"[2001:db8:1:2:aaaa::1]:4000", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:bbbb::9]:80", "2001:db8:1:2::/64"},
		{"[::ffff:192.0.2.7]:1", "192.0.2.7/32"},
	} {
		t.Run(c.addr, func(t *testing.T) {
			a, _ := net.ResolveTCPAddr("tcp", c.addr)
			if got := clientKey(a); got != netip.MustParsePrefix(c.want) {
				t.Errorf("%s: %v, want %s", c.addr, got, c.want)
			}
		})
	}
}

// TestStalledBodies: a JSON body that stalls is cut at body_timeout; an
// upload that trickles below upload_min_rate is cut once body_timeout has
// passed, with a JSON 408 and nothing stored.
func TestStalledBodies(t *testing.T) {
	dir := t.TempDir()
	g, root := quietGateway(t, dir, func(c *config.Config) {
		c.API.Limits.BodyTimeout = 400 * time.Millisecond
		c.API.Limits.UploadMinRate = 10000
	})
	addr := strings.TrimPrefix(root, "http://")
	auth := "Authorization: Bearer " + testToken + "\r\n"
	t.Run("stalled JSON body", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		io.WriteString(c, "POST /api/v1/campaigns HTTP/1.1\r\nHost: x\r\n"+auth+"Content-Length: 100\r\n\r\n{\"image\":")
		c.SetDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		if el := time.Since(start); resp.StatusCode != http.StatusRequestTimeout || !isJSONError(resp.Header, body) || el > 5*time.Second {
			t.Fatalf("after %v: %d %q", el, resp.StatusCode, body)
		}
	})
	t.Run("trickling upload", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "POST /api/v1/firmware?version=1&sha256="+strings.Repeat("0", 64)+" HTTP/1.1\r\nHost: x\r\n"+auth+"Content-Length: 100000\r\n\r\n")
		done := make(chan struct{})
		go func() { // one byte every 50 ms: under the pause bound, far under the rate
			defer close(done)
			for i := 0; i < 200; i++ {
				if _, err := c.Write([]byte{'x'}); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		c.Close()
		<-done
		if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "upload_min_rate") {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
		if n, _ := g.fw.store.Usage(); n != 0 {
			t.Fatal("an image was stored")
		}
		if tmp, _ := filepath.Glob(filepath.Join(dir, "firmware", "*.tmp")); len(tmp) > 0 {
			t.Fatalf("partial files left: %v", tmp)
		}
	})
}

// TestEventStreamDropsStalledReader: the event stream has no overall
// deadline, but a client that stops reading is dropped once a write does
// not go through within write_timeout.
func TestEventStreamDropsStalledReader(t *testing.T) {
	g, root := quietGateway(t, t.TempDir(), func(c *config.Config) { c.API.Limits.WriteTimeout = 300 * time.Millisecond })
	c, err := net.Dial("tcp", strings.TrimPrefix(root, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(4096)
	io.WriteString(c, "GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+testToken+"\r\n\r\n")
	subs := func() int {
		g.hub.mu.Lock()
		defer g.hub.mu.Unlock()
		return len(g.hub.subs)
	}
	for deadline := time.Now().Add(5 * time.Second); subs() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no subscriber")
		}
	}
	// Never read: publish until the socket buffers are full and the
	// stream gives up.
	payload := strings.Repeat("e", 32<<10)
	for deadline := time.Now().Add(20 * time.Second); subs() > 0; time.Sleep(time.Millisecond) {
		g.hub.publish("test", map[string]string{"pad": payload})
		if time.Now().After(deadline) {
			t.Fatal("a stream nobody reads is still held after 20 s")
		}
	}
}

// TestUploadsStream: uploads of unknown size (chunked, multipart) are
// stored while they stream; over max_image_bytes they get 413 while
// streaming and leave nothing.
func TestUploadsStream(t *testing.T) {
	dir := t.TempDir()
	g, root := quietGateway(t, dir, func(c *config.Config) { c.Firmware.MaxImageBytes = 1 << 20 })
	img := bytes.Repeat([]byte("image bytes "), 50000) // 600 kB
	post := func(ctype string, body io.Reader, q string) (int, []byte) {
		req, _ := http.NewRequest("POST", root+"/api/v1/firmware?"+q, body)
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", ctype)
		req.ContentLength = -1 // chunked
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	form := func(fields [][2]string, file []byte, after [][2]string) (string, io.Reader) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		for _, f := range fields {
			mw.WriteField(f[0], f[1])
		}
		if file != nil {
			fw, _ := mw.CreateFormFile("file", "fw.bin")
			fw.Write(file)
		}
		for _, f := range after {
			mw.WriteField(f[0], f[1])
		}
		mw.Close()
		return mw.FormDataContentType(), struct{ io.Reader }{&buf} // hide the length
	}
	noPartial := func(t *testing.T) {
		if tmp, _ := filepath.Glob(filepath.Join(dir, "firmware", "*.tmp")); len(tmp) > 0 {
			t.Fatalf("partial files left: %v", tmp)
		}
	}
	tests := []struct {
		name string
		do   func() (int, []byte)
		code int
		want string
	}{
		{"chunked raw", func() (int, []byte) {
			return post("application/octet-stream", struct{ io.Reader }{bytes.NewReader(img)}, "version=1&sha256="+sum(img))
		}, 201, `"size": 600000`},
		{"multipart, fields first", func() (int, []byte) {
			ct, b := form([][2]string{{"version", "2"}, {"sha256", sum(img[1:])}}, img[1:], nil)
			return post(ct, b, "")
		}, 201, `"version": "2"`},
		{"multipart, sha256 after the file", func() (int, []byte) {
			ct, b := form([][2]string{{"version", "3"}}, img[2:], [][2]string{{"sha256", sum(img[2:])}})
			return post(ct, b, "")
		}, 400, "before the file"},
		{"multipart without file", func() (int, []byte) {
			ct, b := form([][2]string{{"version", "3"}}, nil, nil)
			return post(ct, b, "")
		}, 400, `no \"file\" part`},
		{"multipart preamble over its bound", func() (int, []byte) {
			var fields [][2]string
			for i := 0; i < 400; i++ {
				fields = append(fields, [2]string{fmt.Sprint("f", i), strings.Repeat("p", 250)})
			}
			ct, b := form(fields, img, nil)
			return post(ct, b, "version=4&sha256="+sum(img))
		}, 400, "before the \\\"file\\\" part"},
		{"chunked over max_image_bytes", func() (int, []byte) {
			huge := bytes.Repeat(img, 4)
			return post("application/octet-stream", struct{ io.Reader }{bytes.NewReader(huge)}, "version=5&sha256="+sum(huge))
		}, 413, "max_image_bytes"},
		{"multipart over max_image_bytes", func() (int, []byte) {
			huge := bytes.Repeat(img, 4)
			ct, b := form([][2]string{{"version", "6"}, {"sha256", sum(huge)}}, huge, nil)
			return post(ct, b, "")
		}, 413, "max_image_bytes"},
		{"checksum mismatch", func() (int, []byte) {
			return post("application/octet-stream", struct{ io.Reader }{bytes.NewReader(img[3:])}, "version=7&sha256="+sum(img))
		}, 400, "checksum mismatch"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := tc.do()
			if code != tc.code || !strings.Contains(string(body), tc.want) {
				t.Fatalf("HTTP %d %s, want %d with %q", code, body, tc.code, tc.want)
			}
			noPartial(t)
		})
	}
	if n, _ := g.fw.store.Usage(); n != 2 {
		t.Fatalf("%d images stored, want 2", n)
	}
	// The image list pages too.
	a := apiClient{t, root + "/api/v1"}
	_, p1 := a.do("GET", "/firmware?limit=1", "")
	if p1["count"] != float64(1) || p1["total"] != float64(2) || p1["next_cursor"] == nil {
		t.Fatalf("first page: %v", p1)
	}
	_, p2 := a.do("GET", "/firmware?limit=1&cursor="+p1["next_cursor"].(string), "")
	if p2["count"] != float64(1) || p2["next_cursor"] != nil ||
		p2["images"].([]any)[0].(map[string]any)["id"] == p1["images"].([]any)[0].(map[string]any)["id"] {
		t.Fatalf("second page: %v", p2)
	}
}

// TestListsPaginate registers many devices (in the registrations file
// before the start) and walks /api/v1/devices: every device once, in
// order, each answer under the byte bound, total and next_cursor right.
func TestListsPaginate(t *testing.T) {
	dir := t.TempDir()
	const n = 2500
	if err := gwtest.FillRegistrations(dir, n, 600); err != nil {
		t.Fatal(err)
	}
	_, root := quietGateway(t, dir, nil)
	a := apiClient{t, root + "/api/v1"}
	for _, limit := range []int{1, 333, 1000} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			seen, prev, pages, cursor := 0, "", 0, ""
			for {
				q := fmt.Sprintf("/devices?limit=%d", limit)
				if cursor != "" {
					q += "&cursor=" + cursor
				}
				code, body := a.raw("GET", q)
				if code != 200 || len(body) > maxPageBytes+16<<10 {
					t.Fatalf("page %d: HTTP %d, %d bytes", pages, code, len(body))
				}
				var v struct {
					Devices []Device `json:"devices"`
					Count   int      `json:"count"`
					Total   int      `json:"total"`
					Next    string   `json:"next_cursor"`
				}
				json.Unmarshal(body, &v)
				if v.Total != n || v.Count != len(v.Devices) || v.Count == 0 || v.Count > limit {
					t.Fatalf("page %d: count %d total %d (%d devices)", pages, v.Count, v.Total, len(v.Devices))
				}
				for _, d := range v.Devices {
					if d.Endpoint <= prev {
						t.Fatalf("page %d: %q after %q", pages, d.Endpoint, prev)
					}
					prev = d.Endpoint
					seen++
				}
				pages++
				if v.Next == "" {
					break
				}
				cursor = v.Next
				if limit == 1 && pages == 50 {
					return // the order and the cursor hold; walking 2500 pages adds nothing
				}
			}
			if seen != n {
				t.Fatalf("saw %d devices in %d pages, want %d", seen, pages, n)
			}
			if limit == 1000 && pages <= 3 {
				t.Fatalf("%d pages of limit 1000: the byte bound did not cut them", pages)
			}
			t.Logf("limit %d: %d pages", limit, pages)
		})
	}
	// Filters count in total.
	if _, v := a.do("GET", "/devices?q=light-0001&limit=5", ""); v["total"] != float64(10) || v["count"] != float64(5) || v["next_cursor"] == nil {
		t.Fatalf("filtered page: %v", v["total"])
	}
}

// raw is a GET returning the status and the raw body.
func (a apiClient) raw(method, path string) (int, []byte) {
	a.t.Helper()
	req, _ := http.NewRequest(method, a.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestUnreadBodiesBounded: a stalled body on a route that never reads it
// (unrouted, unauthorised) does not hold the connection past body_timeout.
func TestUnreadBodiesBounded(t *testing.T) {
	_, root := quietGateway(t, t.TempDir(), func(c *config.Config) { c.API.Limits.BodyTimeout = 300 * time.Millisecond })
	for _, tc := range []struct{ name, req string }{
		{"no route", "POST /api/v1/nothing HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc"},
		{"no token", "POST /api/v1/campaigns HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", strings.TrimPrefix(root, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, tc.req)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			start := time.Now()
			// The answer, then the close.
			if _, err := io.ReadAll(c); err != nil {
				t.Fatalf("connection not closed: %v", err)
			}
			if el := time.Since(start); el > 5*time.Second {
				t.Fatalf("closed after %v", el)
			}
		})
	}
}
