package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/gateway"
)

// parseInterspersed parses flags placed before, between or after the
// positional arguments ("fw upload FILE -version 2.0") and returns the
// positional ones.
//
// "--" ends the flags: what follows is positional even if it starts with
// '-' (smsgw write EP PATH -- -5).
func parseInterspersed(fs *flag.FlagSet, args []string) (pos []string, err error) {
	var after []string
	for i, a := range args {
		if a == "--" {
			args, after = args[:i], args[i+1:]
			break
		}
	}
	defer func() { pos = append(pos, after...) }()
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// apiFlags are the API client's common flags.
type apiFlags struct {
	api, tokenFile, data *string
	timeout              *time.Duration
	// pending202 makes an HTTP 202 answer a *pendingError (exit code 5):
	// for device requests, 202 means the device has not answered yet.
	pending202 bool
}

func addAPIFlags(fs *flag.FlagSet) apiFlags {
	f := apiFlags{
		api:       fs.String("api", envOr("SMSGW_API", "http://127.0.0.1:8080"), "API base URL"),
		tokenFile: fs.String("token-file", "", "file holding the API token (default: $SMSGW_TOKEN, else the api-token file of -data)"),
		data:      fs.String("data", defaultDataDir(), "data dir holding the generated api-token"),
		timeout:   fs.Duration("timeout", 5*time.Minute, "how long to wait for the API"),
	}
	removedTokenFlag(fs)
	return f
}

// errTokenFlag: a token on the command line shows in the process list.
var errTokenFlag = errors.New("-token was removed: a token on the command line shows in the process list; set SMSGW_TOKEN or use -token-file FILE")

// removedTokenFlag defines -token so that using it says what replaced it.
func removedTokenFlag(fs *flag.FlagSet) {
	fs.Func("token", "removed: use $SMSGW_TOKEN or -token-file", func(string) error { return errTokenFlag })
}

// apiToken is the client's token: $SMSGW_TOKEN, else the token file, else
// the data dir's api-token.
func apiToken(tokenFile, data string) (string, error) {
	if t := strings.TrimSpace(os.Getenv("SMSGW_TOKEN")); t != "" {
		return t, nil
	}
	file := tokenFile
	if file == "" {
		file = filepath.Join(data, gateway.TokenFileName)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("no API token: set SMSGW_TOKEN, pass -token-file, or give the daemon's -data (%v)", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("no API token: %s is empty", file)
	}
	return t, nil
}

// call sends one API request and copies the answer to stdout.
func (f apiFlags) call(stdout io.Writer, method, path string, body io.Reader, ctype string) error {
	token, err := apiToken(*f.tokenFile, *f.data)
	if err != nil {
		return &authError{err}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *f.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(*f.api, "/")+"/api/v1"+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return &unreachableError{api: *f.api, err: err}
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return &unreachableError{api: *f.api, err: err}
	}
	stdout.Write(out)
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		json.Unmarshal(out, &e)
		return &apiError{status: resp.StatusCode, text: http.StatusText(resp.StatusCode), msg: e.Error}
	}
	if resp.StatusCode == http.StatusAccepted && f.pending202 {
		return &pendingError{"no answer yet (HTTP 202): the request stays queued until the device wakes up; follow it with smsgw jobs"}
	}
	return nil
}

func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}

// runFW implements "smsgw fw upload|list|show|delete|update|job".
func runFW(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"usage: smsgw fw upload|list|show|delete|update|job ..."}
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("smsgw fw "+sub, flag.ContinueOnError)
	af := addAPIFlags(fs)
	version := fs.String("version", "", "upload: the firmware version devices report in /3/0/3 after the update")
	name := fs.String("name", "", "upload: a label")
	allowSMS := fs.Bool("sms", false, "update: allow pushing the package over SMS to an SMS-only device")
	dry := fs.Bool("dry-run", false, "update: show the plan (method, blocks, SMS segments) without starting")
	method := fs.String("method", "", "update: push or pull (default: the device's and bearer's choice)")
	a, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	need := func(n int, u string) error {
		if len(a) < n {
			return usageError{"usage: smsgw fw " + sub + " " + u}
		}
		return nil
	}
	switch sub {
	case "upload":
		if err := need(1, "FILE -version V [-name N]"); err != nil {
			return err
		}
		if *version == "" {
			return usageError{"usage: smsgw fw upload FILE -version V [-name N]: -version is required"}
		}
		fh, err := os.Open(a[0])
		if err != nil {
			return err
		}
		defer fh.Close()
		h := sha256.New()
		size, err := io.Copy(h, fh)
		if err != nil {
			return fmt.Errorf("reading %s: %w", a[0], err)
		}
		if _, err := fh.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if *name == "" {
			*name = filepath.Base(a[0])
		}
		q := url.Values{"name": {*name}, "version": {*version}, "sha256": {hex.EncodeToString(h.Sum(nil))},
			"size": {fmt.Sprint(size)}}
		return af.call(stdout, "POST", "/firmware?"+q.Encode(), fh, "application/octet-stream")
	case "list":
		return af.call(stdout, "GET", "/firmware", nil, "")
	case "show", "delete":
		if err := need(1, "ID"); err != nil {
			return err
		}
		m := "GET"
		if sub == "delete" {
			m = "DELETE"
		}
		return af.call(stdout, m, "/firmware/"+url.PathEscape(a[0]), nil, "")
	case "update":
		if err := need(2, "EP IMAGE [-sms] [-dry-run] [-method push|pull]"); err != nil {
			return err
		}
		body := map[string]any{"image": a[1], "allow_sms_push": *allowSMS, "dry_run": *dry, "method": *method}
		return af.call(stdout, "POST", "/devices/"+url.PathEscape(a[0])+"/firmware", jsonBody(body), "application/json")
	case "job":
		if err := need(1, "ID"); err != nil {
			return err
		}
		return af.call(stdout, "GET", "/firmware-jobs/"+url.PathEscape(a[0]), nil, "")
	}
	return usageError{fmt.Sprintf("unknown fw command %q; use upload, list, show, delete, update or job", sub)}
}

// runCampaign implements "smsgw campaign create|list|status|pause|resume|cancel".
func runCampaign(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"usage: smsgw campaign create|list|status|pause|resume|cancel ..."}
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("smsgw campaign "+sub, flag.ContinueOnError)
	af := addAPIFlags(fs)
	image := fs.String("image", "", "create: image id")
	name := fs.String("name", "", "create: campaign name")
	prefix := fs.String("prefix", "", "create: target registered endpoints whose name starts with this")
	eps := fs.String("endpoints", "", "create: target these endpoints (comma-separated)")
	filter := fs.String("filter", "", "create: target by attribute, e.g. transport=udp,queue=true")
	conc := fs.Int("concurrency", 0, "create: devices updated at once (0: firmware.concurrency)")
	retries := fs.Int("retries", -1, "create: retries per device (-1: firmware.retries)")
	budget := fs.Int("sms-budget", -2, "create: SMS the campaign may send, -1 no limit (default: firmware.sms_budget)")
	allowSMS := fs.Bool("sms", false, "create: allow pushing over SMS to SMS-only devices")
	devices := fs.Bool("devices", false, "status: list every device's state")
	a, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	switch sub {
	case "create":
		if *image == "" {
			return usageError{"usage: smsgw campaign create -image ID (-prefix P | -endpoints A,B | -filter K=V,...) [-concurrency N] [-retries N] [-sms-budget N] [-sms]"}
		}
		body := map[string]any{"image": *image, "name": *name, "prefix": *prefix, "concurrency": *conc}
		if *eps != "" {
			body["endpoints"] = strings.Split(*eps, ",")
		}
		if *filter != "" {
			m := map[string]string{}
			for _, kv := range strings.Split(*filter, ",") {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return usageError{fmt.Sprintf("-filter %q: use key=value pairs separated by commas", *filter)}
				}
				m[k] = v
			}
			body["filter"] = m
		}
		if *retries >= 0 {
			body["retries"] = *retries
		}
		if *budget >= -1 {
			body["sms_budget"] = *budget
		}
		if *allowSMS {
			body["allow_sms_push"] = true
		}
		return af.call(stdout, "POST", "/campaigns", jsonBody(body), "application/json")
	case "list":
		return af.call(stdout, "GET", "/campaigns", nil, "")
	case "status", "pause", "resume", "cancel":
		if len(a) < 1 {
			return usageError{"usage: smsgw campaign " + sub + " ID"}
		}
		if sub == "status" {
			q := ""
			if *devices {
				q = "?devices=1"
			}
			return af.call(stdout, "GET", "/campaigns/"+url.PathEscape(a[0])+q, nil, "")
		}
		return af.call(stdout, "POST", "/campaigns/"+url.PathEscape(a[0])+"/"+sub, nil, "")
	}
	return usageError{fmt.Sprintf("unknown campaign command %q; use create, list, status, pause, resume or cancel", sub)}
}
