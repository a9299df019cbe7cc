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

	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
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
	o, a, err := parseStateFlags(sub, args)
	if err != nil {
		return err
	}
	if err := checkStateArgs(sub, a); err != nil {
		return err
	}
	lock, err := state.Acquire(o.dir)
	var locked *state.LockedError
	switch {
	case errors.As(err, &locked):
		if sub == "reset" {
			return fmt.Errorf("%w; stop it first: reset changes files the daemon has open", err)
		}
		d, err := o.daemon(locked, err)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "data dir %s: smsgw runs (pid %d); reading consistent snapshots through its API %s\n", o.dir, locked.Owner.PID, d.api)
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
		return stateReset(stdout, o.dir, a[0])
	case "check":
		return stateCheck(stdout, o.dir)
	}
	return stateBackup(stdout, o.dir, a[0])
}

// stateOptions are the flags of a state command, resolved: the data dir
// (absolute, a directory) and the configuration.
type stateOptions struct {
	dir       string
	cfg       *config.Config
	cfgFile   string // -config as given ("": the embedded default)
	api       string // -api
	tokenFile string // -token-file, else api.token_file of cfg
}

// parseStateFlags parses the flags of "smsgw state SUB" and resolves the
// data dir: -data, else data_dir of -config, else the default.
func parseStateFlags(sub string, args []string) (stateOptions, []string, error) {
	fs := flag.NewFlagSet("smsgw state "+sub, flag.ContinueOnError)
	dataDir := fs.String("data", "", "data dir (default: data_dir of -config, else "+defaultDataDir()+")")
	cfgFile := fs.String("config", "", "the daemon's configuration file (for data_dir and the API token)")
	apiURL := fs.String("api", "", "the running daemon's API (default: from the data dir's lock file)")
	tokenFile := fs.String("token-file", "", "file holding the API token (default: $SMSGW_TOKEN, api.token of -config, else the data dir's api-token)")
	a, err := parseInterspersed(fs, args)
	if err != nil {
		return stateOptions{}, nil, err
	}
	cfg, err := loadConfig(*cfgFile)
	if err != nil {
		return stateOptions{}, nil, err
	}
	o := stateOptions{dir: *dataDir, cfg: cfg, cfgFile: *cfgFile, api: *apiURL, tokenFile: *tokenFile}
	if o.dir == "" {
		o.dir = cfg.DataDir
	}
	if o.dir == "" {
		o.dir = defaultDataDir()
	}
	if abs, err := filepath.Abs(o.dir); err == nil {
		o.dir = abs
	}
	if o.tokenFile == "" {
		o.tokenFile = cfg.API.TokenFile
	}
	if st, err := os.Stat(o.dir); err != nil || !st.IsDir() {
		return stateOptions{}, nil, fmt.Errorf("data dir %s: not a directory (give -data DIR)", o.dir)
	}
	return o, a, nil
}

// checkStateArgs checks the sub-command and its positional arguments.
func checkStateArgs(sub string, a []string) error {
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
	return nil
}

// daemon is the running daemon that holds the data dir's lock (lockErr):
// its API (-api, else the lock file's) and the token to call it with
// ($SMSGW_TOKEN, else api.token of -config, else the token file).
func (o stateOptions) daemon(locked *state.LockedError, lockErr error) (daemonState, error) {
	api := o.api
	if api == "" {
		api = locked.Owner.API
	}
	if api == "" {
		return daemonState{}, fmt.Errorf("%w, and its lock file names no API; pass -api URL", lockErr)
	}
	token := strings.TrimSpace(os.Getenv("SMSGW_TOKEN"))
	if token == "" && o.cfgFile != "" {
		token = o.cfg.API.Token
	}
	if token == "" {
		var err error
		if token, err = apiToken(o.tokenFile, o.dir); err != nil {
			return daemonState{}, err
		}
	}
	return daemonState{api: strings.TrimRight(api, "/"), token: token}, nil
}

// stateReset sets the state file name aside, the daemon stopped.
func stateReset(stdout io.Writer, dir, name string) error {
	aside, err := state.Reset(dir, name)
	if err != nil {
		return err
	}
	if aside == "" {
		fmt.Fprintf(stdout, "%s was absent; the next start creates it empty\n", filepath.Join(dir, name))
	} else {
		fmt.Fprintf(stdout, "set aside as %s; the next start creates %s empty\n", aside, name)
	}
	return nil
}

// stateCheck checks the state files, the daemon stopped.
func stateCheck(stdout io.Writer, dir string) error {
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

// stateBackup copies the state files to dst and checks the copies, the
// daemon stopped.
func stateBackup(stdout io.Writer, dir, dst string) error {
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
		n, err := state.WriteCopy(filepath.Join(dst, f.Name), func(w io.Writer) (int64, error) { return state.SnapshotFile(src, w) })
		bad += printCopy(stdout, f.Name, n, err)
	}
	return backupResult(stdout, dst, bad)
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
