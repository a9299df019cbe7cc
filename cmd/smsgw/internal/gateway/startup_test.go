package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/gwtest"
	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/state"
)

func quietConfig(dir string) *config.Config {
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.API.Listen, cfg.LwM2M.UDP, cfg.LwM2M.DTLS = "127.0.0.1:0", "127.0.0.1:0", ""
	cfg.Simulator.Enabled = false
	return cfg
}

func newQuiet(cfg *config.Config) (*Gateway, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// TestStartupErrors: each start-up failure is an error (never a panic)
// naming the option to change, and leaves nothing running.
func TestStartupErrors(t *testing.T) {
	tcp, udp := gwtest.BusyPorts(t)
	tests := []struct {
		name   string
		edit   func(c *config.Config, dir string)
		option string
		is     error
		want   string
	}{
		{"API port in use", func(c *config.Config, _ string) { c.API.Listen = tcp }, "api.listen", syscall.EADDRINUSE,
			"api.listen " + tcp + ": address already in use"},
		{"UDP port in use", func(c *config.Config, _ string) { c.LwM2M.UDP = udp }, "lwm2m.udp", syscall.EADDRINUSE,
			"lwm2m.udp " + udp + ": address already in use"},
		{"DTLS port in use", func(c *config.Config, _ string) { c.LwM2M.DTLS = udp }, "lwm2m.dtls", syscall.EADDRINUSE, "address already in use"},
		{"API host unknown", func(c *config.Config, _ string) { c.API.Listen = "no-such-host.invalid:8080" }, "api.listen", nil, "api.listen no-such-host.invalid:8080: "},
		{"token file absent", func(c *config.Config, dir string) { c.API.TokenFile = filepath.Join(dir, "nope") }, "api.token_file", os.ErrNotExist, "no such file"},
		{"token file readable by all", func(c *config.Config, dir string) {
			p := filepath.Join(dir, "tok")
			os.WriteFile(p, []byte("0123456789abcdef0123\n"), 0o644)
			c.API.TokenFile = p
		}, "api.token_file", nil, "readable by every user (mode 0644): chmod 600"},
		{"token too short", func(c *config.Config, dir string) {
			p := filepath.Join(dir, "tok")
			os.WriteFile(p, []byte("short\n"), 0o600)
			c.API.TokenFile = p
		}, "api.token_file", nil, "at least 16"},
		{"modem device absent", func(c *config.Config, _ string) {
			c.Modems = []config.Modem{{Device: "/dev/no-such-modem", MSISDN: "+491710000001"}}
		}, "modems.0.device", os.ErrNotExist, "modems.0.device /dev/no-such-modem: no such file or directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := quietConfig(dir)
			tc.edit(cfg, dir)
			g, err := newQuiet(cfg)
			if err == nil {
				g.Shutdown(context.Background())
				t.Fatal("started")
			}
			var se *StartError
			if !errors.As(err, &se) || se.Option != tc.option || tc.is != nil && !errors.Is(err, tc.is) ||
				!strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err %q, want a one-line *StartError for %s containing %q", err, tc.option, tc.want)
			}
			// Nothing is left holding the data dir.
			l, err := state.Acquire(dir)
			if err != nil {
				t.Fatalf("data dir still locked: %v", err)
			}
			l.Release()
		})
	}
}

// TestSecondGateway: a second gateway on a data dir in use refuses at
// once and changes nothing (the token file least of all).
func TestSecondGateway(t *testing.T) {
	dir := t.TempDir()
	g, err := newQuiet(quietConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Shutdown(context.Background())
	tokenPath := filepath.Join(dir, TokenFileName)
	before := snapshotDir(t, dir)
	start := time.Now()
	_, err = newQuiet(quietConfig(dir))
	if !errors.Is(err, state.ErrLocked) || !strings.Contains(err.Error(), "data_dir "+dir+" is in use by another smsgw (pid ") {
		t.Fatalf("second gateway: %v", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("refused after %v, not at once", el)
	}
	if after := snapshotDir(t, dir); after != before {
		t.Fatalf("the refused gateway changed the data dir:\n%s\n---\n%s", before, after)
	}
	if st, err := os.Stat(tokenPath); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", st.Mode(), err)
	}
}

// snapshotDir lists every file of dir with its size, mode, mtime and
// (small files) content.
func snapshotDir(t *testing.T, dir string) string {
	var b strings.Builder
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		b.WriteString(p + " " + fi.Mode().String() + " " + fi.ModTime().String())
		if !fi.IsDir() {
			data, _ := os.ReadFile(p)
			b.WriteString(" " + string(rune(len(data))))
			if len(data) < 256 {
				b.WriteString(" " + string(data))
			}
		}
		b.WriteString("\n")
		return nil
	})
	return b.String()
}

// TestTokenKept: the generated token is written once (0600), kept across
// starts, never in Info; a broader mode on it is narrowed back.
func TestTokenKept(t *testing.T) {
	dir := t.TempDir()
	start := func() *Gateway {
		g, err := newQuiet(quietConfig(dir))
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	g := start()
	first := g.token
	in := g.Info()
	g.Shutdown(context.Background())
	if in.TokenFile != filepath.Join(dir, TokenFileName) || in.TokenSource != "generated" || len(first) != 32 {
		t.Fatalf("info %+v", in)
	}
	os.Chmod(in.TokenFile, 0o644)
	g = start()
	defer g.Shutdown(context.Background())
	if g.token != first || g.Info().TokenSource != "data dir" {
		t.Fatal("the token changed at the second start")
	}
	if st, _ := os.Stat(in.TokenFile); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v not narrowed", st.Mode())
	}
}

// TestDamagedStateRefused: a truncated or emptied state file of an
// initialised data dir stops the start with an error naming it; nothing
// is replaced.
func TestDamagedStateRefused(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		damage     func(path string)
		want       string
	}{
		{"truncated registrations", "registrations.db", func(p string) { os.Truncate(p, 4096) }, "is truncated"},
		{"zero-length queue", "queue.db", func(p string) { os.Truncate(p, 0) }, "is empty (0 bytes)"},
		{"damaged campaigns", "campaigns.db", func(p string) {
			st, _ := os.Stat(p) // every page after the two header pages
			f, _ := os.OpenFile(p, os.O_RDWR, 0)
			f.WriteAt([]byte(strings.Repeat("\xff", int(st.Size())-2*4096)), 2*4096)
			f.Close()
		}, "is damaged"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			g, err := newQuiet(quietConfig(dir))
			if err != nil {
				t.Fatal(err)
			}
			g.Shutdown(context.Background())
			path := filepath.Join(dir, tc.file)
			tc.damage(path)
			before, _ := os.ReadFile(path)
			_, err = newQuiet(quietConfig(dir))
			var fe *state.FileError
			if !errors.As(err, &fe) || fe.Path() != path || !strings.Contains(err.Error(), path+" "+tc.want) ||
				!strings.Contains(err.Error(), "smsgw state reset") {
				t.Fatalf("err %v", err)
			}
			if after, _ := os.ReadFile(path); string(after) != string(before) {
				t.Fatal("the damaged file was changed")
			}
		})
	}
}
