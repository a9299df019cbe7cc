package main

import (
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"
)

// runClient implements the API client subcommands devices, read, write,
// exec and jobs.
func runClient(cmd string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("smsgw "+cmd, flag.ContinueOnError)
	af := addAPIFlags(fs)
	wait := fs.Duration("wait", 60*time.Second, "for queue-mode devices: how long to wait for the device to wake up and answer")
	limit := fs.Int("limit", 0, "devices, jobs: items per page (default 100, at most 1000)")
	cursor := fs.String("cursor", "", "devices, jobs: the next_cursor of the previous page")
	if err := fs.Parse(args); err != nil {
		return err
	}
	a := fs.Args() // flags first: a VALUE may start with '-'
	need := func(n int, u string) error {
		if len(a) < n {
			return usageError{"usage: smsgw " + cmd + " " + u}
		}
		return nil
	}
	page := url.Values{}
	if *limit > 0 {
		page.Set("limit", fmt.Sprint(*limit))
	}
	if *cursor != "" {
		page.Set("cursor", *cursor)
	}
	w := "?wait=" + wait.String()
	*af.timeout = max(*af.timeout, *wait+30*time.Second)
	switch cmd {
	case "devices", "jobs":
		p := "/" + cmd
		if len(page) > 0 {
			p += "?" + page.Encode()
		}
		return af.call(stdout, "GET", p, nil, "")
	case "read":
		if err := need(2, "EP PATH"); err != nil {
			return err
		}
		return af.call(stdout, "GET", "/devices/"+url.PathEscape(a[0])+"/data/"+strings.TrimPrefix(a[1], "/")+w, nil, "")
	case "write":
		if err := need(3, "EP PATH VALUE"); err != nil {
			return err
		}
		return af.call(stdout, "PUT", "/devices/"+url.PathEscape(a[0])+"/data/"+strings.TrimPrefix(a[1], "/")+w,
			jsonBody(map[string]any{"value": a[2]}), "application/json")
	case "exec":
		if err := need(2, "EP PATH [ARGS]"); err != nil {
			return err
		}
		args := ""
		if len(a) > 2 {
			args = a[2]
		}
		return af.call(stdout, "POST", "/devices/"+url.PathEscape(a[0])+"/execute/"+strings.TrimPrefix(a[1], "/")+w,
			jsonBody(map[string]any{"args": args}), "application/json")
	}
	return usageError{fmt.Sprintf("unknown command %q", cmd)}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
