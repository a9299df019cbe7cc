package gateway

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// browser is headless Chromium driven over the DevTools protocol on a pipe
// (--remote-debugging-pipe: commands go to its fd 3, answers and events
// come from its fd 4, each a JSON object ended by a NUL byte), with one
// page attached. It clicks and types through the page's own JavaScript,
// so the UI's handlers run as they do for a user; uncaught exceptions and
// console errors of the page are collected and fail the test.
type browser struct {
	t       *testing.T
	cmd     *exec.Cmd
	w       *os.File // our end of fd 3
	session string

	mu      sync.Mutex
	nextID  int
	pending map[int]chan cdpAnswer
	jsErrs  []string
	readErr error
	done    chan struct{} // closed when the reader ends
}

type cdpAnswer struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// cdpTimeout bounds one DevTools command (waits in the page included).
const cdpTimeout = 45 * time.Second

func startBrowser(t *testing.T) *browser {
	t.Helper()
	if _, err := os.Stat(chromium); err != nil {
		t.Skip("no " + chromium + " (Debian package chromium)")
	}
	cmdR, cmdW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	evR, evW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, w: cmdW, pending: map[int]chan cdpAnswer{}, done: make(chan struct{})}
	b.cmd = exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--no-first-run", "--hide-scrollbars", "--window-size=1280,900", "--user-data-dir="+t.TempDir(), "--remote-debugging-pipe", "about:blank")
	b.cmd.ExtraFiles = []*os.File{cmdR, evW} // fd 3, fd 4
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	cmdR.Close()
	evW.Close()
	go b.read(evR)
	t.Cleanup(b.close)

	var target struct {
		TargetID string `json:"targetId"`
	}
	b.must(b.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &target))
	var att struct {
		SessionID string `json:"sessionId"`
	}
	b.must(b.call("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att))
	b.session = att.SessionID
	b.must(b.call(b.session, "Runtime.enable", nil, nil))
	b.must(b.call(b.session, "Page.enable", nil, nil))
	b.must(b.call(b.session, "Emulation.setDeviceMetricsOverride", map[string]any{"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}, nil))
	return b
}

func (b *browser) must(err error) {
	b.t.Helper()
	if err != nil {
		b.t.Fatal(err)
	}
}

// read delivers answers to their callers and keeps the page's errors.
func (b *browser) read(r *os.File) {
	defer close(b.done)
	defer r.Close()
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		msg, err := br.ReadBytes(0)
		if err != nil {
			b.mu.Lock()
			b.readErr = err
			for id, c := range b.pending {
				close(c)
				delete(b.pending, id)
			}
			b.mu.Unlock()
			return
		}
		var m struct {
			ID     int             `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
			cdpAnswer
		}
		if json.Unmarshal(bytes.TrimSuffix(msg, []byte{0}), &m) != nil {
			continue
		}
		b.mu.Lock()
		switch {
		case m.ID != 0:
			if c, ok := b.pending[m.ID]; ok {
				c <- m.cdpAnswer
				delete(b.pending, m.ID)
			}
		case m.Method == "Runtime.exceptionThrown":
			b.jsErrs = append(b.jsErrs, "exception: "+string(m.Params))
		case m.Method == "Runtime.consoleAPICalled" && bytes.Contains(m.Params, []byte(`"type":"error"`)):
			b.jsErrs = append(b.jsErrs, "console.error: "+string(m.Params))
		}
		b.mu.Unlock()
	}
}

// call sends one command (to the page's session, or to the browser when
// session is "") and decodes its result into out.
func (b *browser) call(session, method string, params any, out any) error {
	b.mu.Lock()
	if b.readErr != nil {
		b.mu.Unlock()
		return fmt.Errorf("%s: browser gone: %v", method, b.readErr)
	}
	b.nextID++
	id := b.nextID
	c := make(chan cdpAnswer, 1)
	b.pending[id] = c
	b.mu.Unlock()
	req := map[string]any{"id": id, "method": method}
	if params != nil {
		req["params"] = params
	}
	if session != "" {
		req["sessionId"] = session
	}
	data, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if _, err := b.w.Write(append(data, 0)); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case a, ok := <-c:
		if !ok {
			return fmt.Errorf("%s: browser gone", method)
		}
		if a.Error != nil {
			return fmt.Errorf("%s: %s", method, a.Error.Message)
		}
		if out != nil {
			return json.Unmarshal(a.Result, out)
		}
		return nil
	case <-time.After(cdpTimeout):
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
		return fmt.Errorf("%s: no answer within %v", method, cdpTimeout)
	}
}

// eval runs JavaScript in the page (awaiting a promise) and returns its
// value; an exception is an error.
func (b *browser) eval(js string) (any, error) {
	var r struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := b.call(b.session, "Runtime.evaluate", map[string]any{"expression": js, "awaitPromise": true, "returnByValue": true}, &r); err != nil {
		return nil, err
	}
	if e := r.ExceptionDetails; e != nil {
		return nil, fmt.Errorf("%s %s", e.Text, e.Exception.Description)
	}
	return r.Result.Value, nil
}

// do runs JavaScript for its effect (setting inputs, clicking).
func (b *browser) do(js string) {
	b.t.Helper()
	if _, err := b.eval("(() => {" + js + "})()"); err != nil {
		b.t.Fatalf("page: %v\nscript: %s", err, js)
	}
}

// waitText waits until the text of the first element matching selector
// contains want, and returns that text.
func (b *browser) waitText(selector, want string, within time.Duration) string {
	b.t.Helper()
	return b.waitFor(selector, want, false, within)
}

// waitExact waits until the text of the first element matching selector
// is want.
func (b *browser) waitExact(selector, want string, within time.Duration) string {
	b.t.Helper()
	return b.waitFor(selector, want, true, within)
}

func (b *browser) waitFor(selector, want string, exact bool, within time.Duration) string {
	b.t.Helper()
	sel, _ := json.Marshal(selector)
	w, _ := json.Marshal(want)
	js := fmt.Sprintf(`(async () => {
		const end = Date.now() + %d;
		for (;;) {
			const e = document.querySelector(%s);
			const text = e ? e.textContent : null;
			if (text !== null && (%v ? text === %s : text.includes(%s))) return text;
			if (Date.now() > end) return "TIMEOUT: " + (text === null ? "no element" : JSON.stringify(text));
			await new Promise(r => setTimeout(r, 25));
		}
	})()`, within.Milliseconds(), sel, exact, w, w)
	v, err := b.eval(js)
	if err != nil {
		b.t.Fatalf("waiting for %s: %v", selector, err)
	}
	s, _ := v.(string)
	if strings.HasPrefix(s, "TIMEOUT: ") {
		b.t.Fatalf("%s never read %q (exact %v): %s", selector, want, exact, strings.TrimPrefix(s, "TIMEOUT: "))
	}
	return s
}

// open loads url and waits until the UI says it rendered (an evaluation
// that meets the navigation fails and is retried).
func (b *browser) open(url string) {
	b.t.Helper()
	// Through about:blank: a URL that differs only in its fragment would
	// not load the page again.
	b.must(b.call(b.session, "Page.navigate", map[string]any{"url": "about:blank"}, nil))
	b.must(b.call(b.session, "Page.navigate", map[string]any{"url": url}, nil))
	u, _ := json.Marshal(url)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(25 * time.Millisecond) {
		v, err := b.eval(fmt.Sprintf(`location.href === %s && document.body && document.body.dataset.ready === "1"`, u))
		if err == nil && v == true {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("page %s not ready: %v %v", url, v, err)
		}
	}
}

// screenshot writes the element selector ("" for the whole page) as
// name.png into t's artifact directory (kept under -outputdir with go
// test -artifacts).
func (b *browser) screenshot(t *testing.T, name, selector string) {
	t.Helper()
	params := map[string]any{"format": "png", "captureBeyondViewport": true}
	if selector != "" {
		sel, _ := json.Marshal(selector)
		v, err := b.eval(fmt.Sprintf(`(() => { const e = document.querySelector(%s); if (!e) return null;
			const r = e.getBoundingClientRect();
			return {x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height, scale: 1}; })()`, sel))
		if err != nil || v == nil {
			t.Fatalf("screenshot of %s: no element (%v)", selector, err)
		}
		params["clip"] = v
	}
	var r struct {
		Data string `json:"data"`
	}
	if err := b.call(b.session, "Page.captureScreenshot", params, &r); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	png, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	file := filepath.Join(t.ArtifactDir(), name+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s (%d bytes)", file, len(png))
}

// errors returns the page's uncaught exceptions and console errors so far.
func (b *browser) errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.jsErrs...)
}

func (b *browser) close() {
	_ = b.call("", "Browser.close", nil, nil)
	exited := make(chan struct{})
	go func() { _ = b.cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = b.cmd.Process.Kill()
		<-exited
	}
	b.w.Close()
	<-b.done
}
