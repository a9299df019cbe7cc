package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// runClient implements the API client subcommands (devices, read, write,
// exec, jobs, and the device management ones).
func runClient(cmd string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("smsgw "+cmd, flag.ContinueOnError)
	af := addAPIFlags(fs)
	af.pending202 = true
	wait := fs.Duration("wait", 60*time.Second, "for queue-mode devices: how long to wait for the device to wake up and answer")
	limit := fs.Int("limit", 0, "devices, jobs: items per page (default 100, at most 1000)")
	cursor := fs.String("cursor", "", "devices, jobs: the next_cursor of the previous page")
	a, err := parseInterspersed(fs, args) // a VALUE starting with '-' goes after "--"
	if err != nil {
		return err
	}
	if n, ok := wantArgs[cmd]; ok && len(a) > n {
		return usageError{fmt.Sprintf("unexpected arguments %q", a[n:])}
	}
	need := func(n int, u string) error {
		if len(a) < n {
			return usageError{"usage: smsgw " + cmd + " " + u}
		}
		return nil
	}
	page := url.Values{}
	if *limit > 0 {
		page.Set("limit", strconv.Itoa(*limit))
	}
	if *cursor != "" {
		page.Set("cursor", *cursor)
	}
	pageQuery := ""
	if len(page) > 0 {
		pageQuery = "?" + page.Encode()
	}
	w := "?wait=" + wait.String()
	*af.timeout = max(*af.timeout, *wait+30*time.Second)
	var method, u string
	var body any
	switch cmd {
	case "devices":
		method, u = "GET", "/devices"+pageQuery
	case "jobs":
		method, u = "GET", "/jobs"+pageQuery
	case "cluster":
		method, u = "GET", "/cluster"
	case "read":
		if err := need(2, "EP PATH [TYPE]"); err != nil {
			return err
		}
		method, u = "GET", "/devices/"+url.PathEscape(a[0])+"/data/"+strings.TrimPrefix(a[1], "/")+w
		if len(a) > 2 {
			u += "&type=" + url.QueryEscape(a[2]) // a resource outside the object model, read as this type
		}
	case "write":
		if err := need(3, "EP PATH VALUE [TYPE]"); err != nil {
			return err
		}
		wb := map[string]any{"value": a[2]}
		if len(a) > 3 {
			wb["type"] = a[3] // a resource outside the object model: written raw as this type
		}
		method, u, body = "PUT", "/devices/"+url.PathEscape(a[0])+"/data/"+strings.TrimPrefix(a[1], "/")+w, wb
	case "discover":
		if err := need(2, "EP PATH"); err != nil {
			return err
		}
		method, u = "GET", "/devices/"+url.PathEscape(a[0])+"/discover/"+strings.TrimPrefix(a[1], "/")+w
	case "attrs":
		if err := need(3, "EP PATH NAME=VALUE|NAME ..."); err != nil {
			return err
		}
		set, unset := map[string]json.Number{}, []string{}
		for _, kv := range a[2:] {
			if k, v, ok := strings.Cut(kv, "="); ok {
				set[k] = json.Number(v)
			} else {
				unset = append(unset, kv)
			}
		}
		method, u, body = "PUT", "/devices/"+url.PathEscape(a[0])+"/attributes/"+strings.TrimPrefix(a[1], "/")+w, map[string]any{"set": set, "unset": unset}
	case "read-composite", "observe-composite":
		if err := need(2, "EP PATH..."); err != nil {
			return err
		}
		op := strings.TrimSuffix(cmd, "-composite")
		method, u, body = "POST", "/devices/"+url.PathEscape(a[0])+"/composite/"+op+w, map[string]any{"paths": a[1:]}
	case "write-composite":
		if err := need(2, "EP PATH=VALUE[:TYPE]..."); err != nil {
			return err
		}
		vals, types := map[string]any{}, map[string]string{}
		for _, kv := range a[1:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return usageError{"usage: smsgw write-composite EP PATH=VALUE[:TYPE]..., e.g. /3311/0/5851=40 /31024/10/1=7:Integer"}
			}
			if i := strings.LastIndexByte(v, ':'); i > 0 && isTypeName(v[i+1:]) {
				v, types[k] = v[:i], v[i+1:]
			}
			vals[k] = v
		}
		method, u, body = "POST", "/devices/"+url.PathEscape(a[0])+"/composite/write"+w, map[string]any{"values": vals, "types": types}
	case "values":
		if err := need(1, "EP"); err != nil {
			return err
		}
		method, u = "GET", "/devices/"+url.PathEscape(a[0])+"/values"
	case "objects":
		method, u = "GET", "/objects"
	case "exec":
		if err := need(2, "EP PATH [ARGS]"); err != nil {
			return err
		}
		args := ""
		if len(a) > 2 {
			args = a[2]
		}
		method, u, body = "POST", "/devices/"+url.PathEscape(a[0])+"/execute/"+strings.TrimPrefix(a[1], "/")+w, map[string]any{"args": args}
	}
	if method == "" {
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
	if body == nil {
		return af.call(stdout, method, u, nil, "")
	}
	return af.call(stdout, method, u, jsonBody(body), "application/json")
}

// wantArgs is the most positional arguments a command takes (absent: no
// limit).
var wantArgs = map[string]int{"devices": 0, "jobs": 0, "cluster": 0, "objects": 0, "values": 1, "discover": 2, "exec": 3, "read": 3, "write": 4}

// isTypeName reports an LwM2M data type name as write-composite takes it.
func isTypeName(s string) bool {
	switch strings.ToLower(s) {
	case "string", "integer", "unsigned", "float", "boolean", "opaque", "time", "objlnk", "corelnk":
		return true
	}
	return false
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
