package gateway

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
	"github.com/m2mbearer/m2mbearer/lwm2m/firmware"
	"github.com/m2mbearer/m2mbearer/lwm2m/model"
)

// bodyTypes are the API's JSON request bodies, by route.
func bodyTypes() map[string]func() any {
	return map[string]func() any{
		"operation":       func() any { return new(OpBody) },
		"firmware update": func() any { return new(UpdateBody) },
		"campaign":        func() any { return new(CampaignBody) },
		"attributes":      func() any { return new(AttributesBody) },
		"composite":       func() any { return new(CompositeBody) },
	}
}

// FuzzJSONBodies feeds every API request body decoder: a body is accepted
// only when it is one valid UTF-8 JSON object of known fields with nothing
// after it, within maxBody; what is accepted decodes the same way again
// after encoding; everything else is a 400 or a 413, never a panic.
func FuzzJSONBodies(f *testing.F) {
	for _, s := range []string{
		`{"value": 40}`, `{"values": {"5850": true, "5851": "7"}}`, `{"args": "0='on',1"}`, `{"instance": 3, "values": {"5850": 1}}`,
		`{"image":"0123456789abcdef","allow_sms_push":true,"dry_run":true,"max_sms":5,"method":"pull"}`,
		`{"image":"x","endpoints":["a","b"],"filter":{"transport":"udp"},"concurrency":5,"retries":0,"sms_budget":-1,"backoff":"10s"}`,
		`{"value": 1} trailing`, `{"value": 1}{"value": 2}`, `{"colour": "red"}`, "{\"value\": \"\xff\"}", `[1,2]`, `null`, ``, `   `,
		`{"set": {"pmin": 10, "gt": 2.5}, "unset": ["lt"]}`, `{"paths": ["/3/0", "/3311/0/5851"], "values": {"/3311/0/5851": 40}, "types": {"/31024/10/1": "Integer"}}`,
		`{"value": 1e400}`, `{"vAlues":{}}`, `{"values": {"5850": {"deep": [[[[[]]]]]}}}`, "\xef\xbb\xbf{}", `{"value":"\ud800"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for name, mk := range bodyTypes() {
			v := mk()
			p := decodeJSONBytes(data, v, true)
			if p != nil {
				if p.code != http.StatusBadRequest && p.code != http.StatusRequestEntityTooLarge || p.msg == "" {
					t.Fatalf("%s: refusal %d %q", name, p.code, p.msg)
				}
				continue
			}
			trimmed := bytes.TrimSpace(data)
			if len(data) > maxBody || !utf8.Valid(data) || !json.Valid(data) || len(trimmed) == 0 || trimmed[0] != '{' {
				t.Fatalf("%s: accepted %q", name, data)
			}
			again, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			w := mk()
			if p := decodeJSONBytes(again, w, true); p != nil {
				t.Fatalf("%s: its own encoding %s is refused: %s", name, again, p.msg)
			}
			if third, _ := json.Marshal(w); !bytes.Equal(third, again) {
				t.Fatalf("%s: %s decodes again as %s", name, again, third)
			}
		}
	})
}

// FuzzPageQuery: limit and cursor are accepted only within their bounds,
// and every cursor the API gives is read back as the key it holds.
func FuzzPageQuery(f *testing.F) {
	f.Add("100", cursorOf("light-00042"), "light-7")
	f.Add("0", "!!", "")
	f.Add("1001", "", "x")
	f.Add("-5", "bGlnaHQ", "\xff")
	f.Add("1e3", strings.Repeat("A", 2000), "")
	f.Fuzz(func(t *testing.T, limit, cursor, key string) {
		p, err := parsePage(url.Values{"limit": {limit}, "cursor": {cursor}})
		if err == nil && (p.limit < 1 || p.limit > maxPageLimit || len(p.after) > maxCursorBytes || !utf8.ValidString(p.after)) {
			t.Fatalf("accepted %+v", p)
		}
		if key != "" && len(key) <= maxCursorBytes && utf8.ValidString(key) {
			p, err := parsePage(url.Values{"cursor": {cursorOf(key)}})
			if err != nil || p.after != key {
				t.Fatalf("cursor of %q reads back as %q, %v", key, p.after, err)
			}
		}
	})
}

// uploadGateway is just enough gateway for the upload route: the handler
// with its guard, an image store in dir.
func uploadGateway(t testing.TB, dir string, maxImage int64) *Gateway {
	cfg := config.Default()
	cfg.DataDir, cfg.API.Token = dir, testToken
	cfg.Firmware.MaxImageBytes = maxImage
	s, err := firmware.OpenStore(filepath.Join(dir, "firmware"), firmware.WithMaxBytes(1<<30), firmware.WithMaxImageBytes(maxImage),
		firmware.WithMaxImages(100000))
	if err != nil {
		t.Fatal(err)
	}
	return &Gateway{cfg: cfg, log: slog.New(slog.DiscardHandler), model: model.DefaultRegistry(), metrics: newMetrics(),
		hub: newHub(1), token: testToken, fw: &fw{store: s, mgr: &firmware.Manager{}, plans: map[string]*PlanJSON{}}}
}

// FuzzUploadImage drives POST /api/v1/firmware (through the guard) with
// arbitrary bodies, multipart framings and parameters: the answer is a
// stored image whose bytes have the declared SHA-256, or a JSON 400, 408,
// 413 or 507, never a 500 or a panic, and no partial file is left.
func FuzzUploadImage(f *testing.F) {
	img := []byte("firmware image bytes")
	sum := func(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	mw.SetBoundary("fuzzboundary")
	mw.WriteField("version", "2.0")
	mw.WriteField("sha256", sum(img))
	fw, _ := mw.CreateFormFile("file", "fw.bin")
	fw.Write(img)
	mw.Close()
	f.Add(uint8(0), "1.0", sum(img), img)
	f.Add(uint8(1), "1.0", sum(img), img)
	f.Add(uint8(2), "", "", mp.Bytes())
	f.Add(uint8(2), "", "", bytes.ReplaceAll(mp.Bytes(), []byte("file"), []byte("fil")))
	f.Add(uint8(0), "1.0", sum(img[1:]), img)
	f.Add(uint8(1), "1.0", "zz", img)
	f.Add(uint8(0), "", sum(nil), []byte{})
	f.Add(uint8(1), "1.0", sum(bytes.Repeat(img, 100)), bytes.Repeat(img, 100))
	f.Add(uint8(2), "3", sum(img), []byte("--fuzzboundary\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n"+string(img)))
	dir := f.TempDir()
	g := uploadGateway(f, dir, 1024)
	h := g.Handler()
	f.Fuzz(func(t *testing.T, mode uint8, version, sha string, body []byte) {
		q := url.Values{}
		if version != "" {
			q.Set("version", version)
		}
		if sha != "" {
			q.Set("sha256", sha)
		}
		req := httptest.NewRequest("POST", "/api/v1/firmware?"+q.Encode(), bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		switch mode % 3 {
		case 0:
			req.Header.Set("Content-Type", "application/octet-stream")
		case 1:
			req.ContentLength = -1
			req.Body = io.NopCloser(struct{ io.Reader }{bytes.NewReader(body)})
		case 2:
			req.Header.Set("Content-Type", "multipart/form-data; boundary=fuzzboundary")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusCreated:
			var info firmware.ImageInfo
			if err := json.Unmarshal(rec.Body.Bytes(), &info); err != nil {
				t.Fatal(err)
			}
			stored, err := os.ReadFile(filepath.Join(dir, "firmware", info.ID+".bin"))
			if err != nil || sum(stored) != info.SHA256 || int64(len(stored)) != info.Size || info.Size > 1024 {
				t.Fatalf("stored %d bytes for %+v: %v", len(stored), info, err)
			}
			if err := g.fw.store.Delete(info.ID); err != nil {
				t.Fatal(err)
			}
		case http.StatusBadRequest, http.StatusRequestTimeout, http.StatusRequestEntityTooLarge, http.StatusInsufficientStorage:
			var e APIError
			if json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error == "" {
				t.Fatalf("HTTP %d without a JSON error: %q", rec.Code, rec.Body.String())
			}
		default:
			t.Fatalf("HTTP %d: %s", rec.Code, rec.Body.String())
		}
		if tmp, _ := filepath.Glob(filepath.Join(dir, "firmware", "*.tmp")); len(tmp) > 0 {
			t.Fatalf("partial files left: %v", tmp)
		}
		if n, _ := g.fw.store.Usage(); n != 0 {
			t.Fatal(fmt.Sprint(n, " images left"))
		}
	})
}
