package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/state"
)

// TestStateFilesOfEveryPart: the state files of the parts that keep one
// beside the stores (the DTLS session cache, an SMPP link's correlation
// state) are listed by GET /api/v1/state with a consistent snapshot that
// checks, and a damaged one refuses the next start naming it.
func TestStateFilesOfEveryPart(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.API.Listen, cfg.LwM2M.UDP, cfg.LwM2M.DTLS, cfg.API.Token = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", testToken
	cfg.Simulator.Fleet = config.Fleet{Awake: time.Second}
	cfg.Simulator.SMPP = true
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	a := apiClient{t, g.Info().API}
	code, v := a.do("GET", "/state", "")
	if code != 200 {
		t.Fatalf("GET /state: %d %v", code, v)
	}
	var names []string
	for _, f := range v["files"].([]any) {
		names = append(names, f.(map[string]any)["name"].(string))
	}
	for _, want := range []string{"dtls-sessions.db", "sms/smpp-simulator.db", "sms/outbox.db", "registrations.db"} {
		t.Run(want, func(t *testing.T) {
			if !slices.Contains(names, want) {
				t.Errorf("GET /state lists %v, not %s", names, want)
			}
		})
	}
	copies := t.TempDir()
	for _, n := range names {
		t.Run(n, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(ctx, "GET", g.Info().API+"/state/"+n, nil)
			req.Header.Set("Authorization", "Bearer "+testToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			dst := filepath.Join(copies, strings.ReplaceAll(n, "/", "-"))
			f, err := os.Create(dst)
			if err != nil {
				t.Fatal(err)
			}
			_, err = io.Copy(f, resp.Body)
			f.Close()
			if err != nil || resp.StatusCode != 200 || resp.Trailer.Get(SnapshotTrailer) != "ok" {
				t.Fatalf("snapshot: %d %v, trailer %q", resp.StatusCode, err, resp.Trailer.Get(SnapshotTrailer))
			}
			if err := state.CheckFile(dst); err != nil {
				t.Fatalf("the snapshot does not check: %v", err)
			}
		})
	}
	g.Shutdown(context.Background())

	for _, name := range []string{"dtls-sessions.db", "sms/smpp-simulator.db"} {
		t.Run("truncated "+name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			orig, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			defer os.WriteFile(path, orig, 0o600)
			if err := os.Truncate(path, 4096); err != nil {
				t.Fatal(err)
			}
			g, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil {
				g.Shutdown(context.Background())
				t.Fatal("started with a truncated state file")
			}
			var fe *state.FileError
			if !errors.As(err, &fe) || fe.Path() != path || !errors.Is(err, state.ErrTruncated) {
				t.Fatalf("err %v", err)
			}
		})
	}
}
