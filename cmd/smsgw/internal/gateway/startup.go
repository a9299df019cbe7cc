package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// StartError is a start-up failure that one configuration option can fix.
// Its message is one line: the option, its value and the cause
// ("api.listen 127.0.0.1:8080: address already in use").
type StartError struct {
	Option string // config key, e.g. "api.listen"
	Value  string
	Err    error
}

func (e *StartError) Error() string {
	if e.Value == "" {
		return e.Option + ": " + e.Err.Error()
	}
	return e.Option + " " + e.Value + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *StartError) Unwrap() error { return e.Err }

// listenError is a StartError for a listener, with the cause reduced to
// what the operator needs ("address already in use", "invalid port", "no
// such host") instead of the whole net.OpError chain.
func listenError(option, addr string, err error) error {
	return &StartError{Option: option, Value: addr, Err: netCause(err)}
}

func netCause(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	var ae *net.AddrError
	if errors.As(err, &ae) {
		return fmt.Errorf("%s", ae.Err)
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		return de
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

// TokenFileName is the generated API token's file in the data dir.
const TokenFileName = "api-token"

// setToken takes the API token from api.token (which main sets from
// SMSGW_TOKEN when given), else from api.token_file, else from
// <data_dir>/api-token, generated once (mode 0600) and kept. It never logs
// or returns the token in an error.
func (g *Gateway) setToken() error {
	api := g.cfg.API
	switch {
	case api.Token != "":
		g.token, g.tokenSource = api.Token, "api.token"
		return nil
	case api.TokenFile != "":
		t, err := readTokenFile(api.TokenFile, false)
		if err != nil {
			return &StartError{Option: "api.token_file", Value: api.TokenFile, Err: err}
		}
		g.token, g.tokenFile, g.tokenSource = t, api.TokenFile, "api.token_file"
		return nil
	}
	path := filepath.Join(g.cfg.DataDir, TokenFileName)
	t, err := readTokenFile(path, true)
	switch {
	case err == nil:
		g.token, g.tokenFile, g.tokenSource = t, path, "data dir"
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return &StartError{Option: "data_dir", Value: g.cfg.DataDir, Err: fmt.Errorf("API token file: %w", err)}
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	t = hex.EncodeToString(b)
	if err := writeSecret(path, t+"\n"); err != nil {
		return &StartError{Option: "data_dir", Value: g.cfg.DataDir, Err: fmt.Errorf("writing the API token file: %w", err)}
	}
	g.token, g.tokenFile, g.tokenSource = t, path, "generated"
	return nil
}

// readTokenFile reads a token file. own is the data dir's generated file:
// smsgw made it 0600, so broader permissions are narrowed back (and said).
// An operator's file readable by anyone is refused.
func readTokenFile(path string, own bool) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		if !own && perm&0o007 != 0 {
			return "", fmt.Errorf("%s is readable by every user (mode %04o): chmod 600 %s", path, perm, path)
		}
		if own {
			if err := f.Chmod(0o600); err != nil {
				return "", fmt.Errorf("%s has mode %04o and cannot be narrowed to 0600: %w", path, perm, err)
			}
		}
	}
	buf, err := io.ReadAll(io.LimitReader(f, 4097))
	if err != nil {
		return "", err
	}
	if len(buf) > 4096 {
		return "", fmt.Errorf("%s is over 4096 bytes: it should hold one token", path)
	}
	t := strings.TrimSpace(string(buf))
	if t == "" {
		return "", fmt.Errorf("%s is empty: write the token into it, or delete it to have one generated", path)
	}
	if strings.ContainsAny(t, " \t\r\n") {
		return "", fmt.Errorf("%s must hold one token on one line", path)
	}
	if len(t) < 16 {
		return "", fmt.Errorf("%s holds a token of %d characters; use at least 16", path, len(t))
	}
	return t, nil
}

// writeSecret creates path with mode 0600 (never replacing a file) and its
// content durably.
func writeSecret(path, content string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err = f.WriteString(content); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
