package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/gateway"
	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/state"
)

// runState implements "smsgw state check | backup DIR | reset NAME".
//
// With the daemon stopped they take the data dir's lock themselves (so a
// daemon cannot start meanwhile) and read the files. While the daemon runs
// (its lock is held), check and backup go through its API: it streams a
// consistent snapshot of each file (bbolt Tx.WriteTo) and the command
// checks the copy; reset refuses.
func runState(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"usage: smsgw state check | backup DIR | reset NAME  [-data DIR] [-config FILE]"}
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("smsgw state "+sub, flag.ContinueOnError)
	dataDir := fs.String("data", "", "data dir (default: data_dir of -config, else "+defaultDataDir()+")")
	cfgFile := fs.String("config", "", "the daemon's configuration file (for data_dir and the API token)")
	apiURL := fs.String("api", "", "the running daemon's API (default: from the data dir's lock file)")
	tokenFile := fs.String("token-file", "", "file holding the API token (default: $SMSGW_TOKEN, api.token of -config, else the data dir's api-token)")
	a, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgFile)
	if err != nil {
		return err
	}
	dir := *dataDir
	if dir == "" {
		dir = cfg.DataDir
	}
	if dir == "" {
		dir = defaultDataDir()
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if *tokenFile == "" {
		*tokenFile = cfg.API.TokenFile
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("data dir %s: not a directory (give -data DIR)", dir)
	}
	switch sub {
	case "check":
		if len(a) != 0 {
			return usageError{"usage: smsgw state check [-data DIR]"}
		}
	case "backup":
		if len(a) != 1 {
			return usageError{"usage: smsgw state backup [-data DIR] DIR"}
		}
	case "reset":
		if len(a) != 1 {
			return usageError{"usage: smsgw state reset [-data DIR] NAME   (NAME as smsgw state check lists it, e.g. queue.db)"}
		}
	default:
		return usageError{fmt.Sprintf("unknown state command %q; use check, backup or reset", sub)}
	}

	lock, err := state.Acquire(dir)
	var locked *state.LockedError
	switch {
	case errors.As(err, &locked):
		if sub == "reset" {
			return fmt.Errorf("%w; stop it first: reset changes files the daemon has open", err)
		}
		api := *apiURL
		if api == "" {
			api = locked.Owner.API
		}
		if api == "" {
			return fmt.Errorf("%w, and its lock file names no API; pass -api URL", err)
		}
		token := strings.TrimSpace(os.Getenv("SMSGW_TOKEN"))
		if token == "" && *cfgFile != "" {
			token = cfg.API.Token
		}
		if token == "" {
			if token, err = apiToken(*tokenFile, dir); err != nil {
				return err
			}
		}
		d := daemonState{api: strings.TrimRight(api, "/"), token: token}
		fmt.Fprintf(stdout, "data dir %s: smsgw runs (pid %d); reading consistent snapshots through its API %s\n", dir, locked.Owner.PID, d.api)
		if sub == "check" {
			return d.check(stdout)
		}
		return d.backup(stdout, a[0])
	case err != nil:
		return err
	}
	defer lock.Release()
	switch sub {
	case "reset":
		aside, err := state.Reset(dir, a[0])
		if err != nil {
			return err
		}
		if aside == "" {
			fmt.Fprintf(stdout, "%s was absent; the next start creates it empty\n", filepath.Join(dir, a[0]))
		} else {
			fmt.Fprintf(stdout, "set aside as %s; the next start creates %s empty\n", aside, a[0])
		}
		return nil
	case "check":
		fmt.Fprintf(stdout, "data dir %s: smsgw is not running; checking the files\n", dir)
		files, fresh, err := state.Report(dir)
		if err != nil {
			return err
		}
		if fresh {
			fmt.Fprintln(stdout, "  (a fresh data dir: no state yet)")
		}
		return printStatuses(stdout, files)
	}
	// backup, offline
	fmt.Fprintf(stdout, "data dir %s: smsgw is not running; copying the files\n", dir)
	files, _, err := state.Report(dir)
	if err != nil {
		return err
	}
	var bad int
	for _, f := range files {
		if f.Status == "new" || f.Status == "absent" {
			continue
		}
		if f.Err != nil {
			fmt.Fprintf(stdout, "  %-10s %s\n", f.Status, f.Err)
			bad++
			continue
		}
		src := filepath.Join(dir, f.Name)
		n, err := state.WriteCopy(filepath.Join(a[0], f.Name), func(w io.Writer) (int64, error) { return state.SnapshotFile(src, w) })
		bad += printCopy(stdout, f.Name, n, err)
	}
	return backupResult(stdout, a[0], bad)
}

func printStatuses(stdout io.Writer, files []state.FileStatus) error {
	bad := 0
	for _, f := range files {
		if f.Err != nil {
			fmt.Fprintf(stdout, "  %-10s %s\n", f.Status, f.Err)
			bad++
			continue
		}
		fmt.Fprintf(stdout, "  %-10s %-20s %d bytes\n", f.Status, f.Name, f.Size)
	}
	if bad > 0 {
		return fmt.Errorf("%d state file(s) need attention (see above)", bad)
	}
	fmt.Fprintln(stdout, "all state files check")
	return nil
}

func printCopy(stdout io.Writer, name string, n int64, err error) int {
	if err != nil {
		fmt.Fprintf(stdout, "  %-10s %s: %v\n", "failed", name, err)
		return 1
	}
	fmt.Fprintf(stdout, "  %-10s %-20s %d bytes\n", "copied", name, n)
	return 0
}

func backupResult(stdout io.Writer, dst string, bad int) error {
	if bad > 0 {
		return fmt.Errorf("backup in %s is incomplete: %d file(s) not copied (see above)", dst, bad)
	}
	fmt.Fprintf(stdout, "backup in %s (each file checked); restore: stop smsgw, copy the files back into the data dir\n", dst)
	return nil
}

// daemonState reads state snapshots from a running daemon.
type daemonState struct {
	api, token string
}

func (d daemonState) get(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", d.api+"/api/v1"+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+d.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, fmt.Errorf("%s: HTTP %d %s", path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return resp, nil
}

// files lists the state files the daemon has open.
func (d daemonState) files(ctx context.Context) ([]gateway.StateFileJSON, error) {
	resp, err := d.get(ctx, "/state")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var v struct {
		Files []gateway.StateFileJSON `json:"files"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&v); err != nil {
		return nil, fmt.Errorf("/state: %w", err)
	}
	return v.Files, nil
}

// copyTo writes the daemon's snapshot of f to dst and checks the copy.
func (d daemonState) copyTo(ctx context.Context, f gateway.StateFileJSON, dst string) (int64, error) {
	return state.WriteCopy(dst, func(w io.Writer) (int64, error) {
		resp, err := d.get(ctx, "/state/"+f.Name)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		n, err := io.Copy(w, resp.Body)
		if err != nil {
			return n, err
		}
		if st := resp.Trailer.Get(gateway.SnapshotTrailer); st != "ok" {
			return n, fmt.Errorf("the daemon's snapshot is incomplete: %s", st)
		}
		return n, nil
	})
}

func (d daemonState) check(stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	files, err := d.files(ctx)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "smsgw-state-check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bad := 0
	for _, f := range files {
		n, err := d.copyTo(ctx, f, filepath.Join(tmp, f.Name))
		if err != nil {
			fmt.Fprintf(stdout, "  %-10s %s: %v\n", "damaged", f.Name, err)
			bad++
			continue
		}
		fmt.Fprintf(stdout, "  %-10s %-20s %d bytes (snapshot)\n", "ok", f.Name, n)
		os.Remove(filepath.Join(tmp, f.Name))
	}
	if bad > 0 {
		return fmt.Errorf("%d state file(s) need attention (see above)", bad)
	}
	fmt.Fprintln(stdout, "all state files check")
	return nil
}

func (d daemonState) backup(stdout io.Writer, dst string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 24*time.Hour)
	defer cancel()
	files, err := d.files(ctx)
	if err != nil {
		return err
	}
	bad := 0
	for _, f := range files {
		n, err := d.copyTo(ctx, f, filepath.Join(dst, f.Name))
		bad += printCopy(stdout, f.Name, n, err)
	}
	return backupResult(stdout, dst, bad)
}
