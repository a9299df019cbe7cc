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
	c, ok := clientCommands[cmd]
	if !ok {
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
	if c.most != anyArgs && len(a) > c.most {
		return usageError{fmt.Sprintf("unexpected arguments %q", a[c.most:])}
	}
	if len(a) < c.least {
		return usageError{"usage: smsgw " + cmd + " " + c.usage}
	}
	*af.timeout = max(*af.timeout, *wait+30*time.Second)
	req, err := c.build(clientArgs{cmd: cmd, a: a, wait: "?wait=" + wait.String(), page: pageQuery(*limit, *cursor)})
	if err != nil {
		return err
	}
	if req.body == nil {
		return af.call(stdout, req.method, req.path, nil, "")
	}
	return af.call(stdout, req.method, req.path, jsonBody(req.body), "application/json")
}

// pageQuery is the query of a paged list ("" for the first page of the
// default size).
func pageQuery(limit int, cursor string) string {
	page := url.Values{}
	if limit > 0 {
		page.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		page.Set("cursor", cursor)
	}
	if len(page) == 0 {
		return ""
	}
	return "?" + page.Encode()
}

// clientCommand is one device command of runClient: the positional
// arguments it takes and the API request it sends.
type clientCommand struct {
	least int    // positional arguments it needs
	most  int    // the most it takes (0 for least 0; anyArgs: no limit)
	usage string // its positional arguments, for the usage error
	build func(clientArgs) (apiRequest, error)
}

// anyArgs is clientCommand.most of a command that takes any number of
// arguments.
const anyArgs = -1

// clientArgs are what a clientCommand builds its request from.
type clientArgs struct {
	cmd  string
	a    []string // the positional arguments, at least clientCommand.least
	wait string   // "?wait=DURATION", for requests that wait for a device
	page string   // the paged list's query, or ""
}

// apiRequest is one API request: path under /api/v1, and a JSON body
// (nil: none).
type apiRequest struct {
	method, path string
	body         any
}

// devicePath is /devices/EP/KIND/PATH of a device request.
func (c clientArgs) devicePath(kind string) string {
	return "/devices/" + url.PathEscape(c.a[0]) + "/" + kind + "/" + strings.TrimPrefix(c.a[1], "/")
}

// clientCommands are the device commands of runClient, by name.
var clientCommands = map[string]clientCommand{
	"devices": {build: getList("/devices")},
	"jobs":    {build: getList("/jobs")},
	"cluster": {build: get("/cluster")},
	"objects": {build: get("/objects")},
	"values": {least: 1, most: 1, usage: "EP", build: func(c clientArgs) (apiRequest, error) {
		return apiRequest{method: "GET", path: "/devices/" + url.PathEscape(c.a[0]) + "/values"}, nil
	}},
	"read": {least: 2, most: 3, usage: "EP PATH [TYPE]", build: func(c clientArgs) (apiRequest, error) {
		u := c.devicePath("data") + c.wait
		if len(c.a) > 2 {
			u += "&type=" + url.QueryEscape(c.a[2]) // a resource outside the object model, read as this type
		}
		return apiRequest{method: "GET", path: u}, nil
	}},
	"write": {least: 3, most: 4, usage: "EP PATH VALUE [TYPE]", build: func(c clientArgs) (apiRequest, error) {
		wb := map[string]any{"value": c.a[2]}
		if len(c.a) > 3 {
			wb["type"] = c.a[3] // a resource outside the object model: written raw as this type
		}
		return apiRequest{method: "PUT", path: c.devicePath("data") + c.wait, body: wb}, nil
	}},
	"discover": {least: 2, most: 2, usage: "EP PATH", build: func(c clientArgs) (apiRequest, error) {
		return apiRequest{method: "GET", path: c.devicePath("discover") + c.wait}, nil
	}},
	"attrs":             {least: 3, most: anyArgs, usage: "EP PATH NAME=VALUE|NAME ...", build: attrsRequest},
	"read-composite":    {least: 2, most: anyArgs, usage: "EP PATH...", build: compositeRequest},
	"observe-composite": {least: 2, most: anyArgs, usage: "EP PATH...", build: compositeRequest},
	"write-composite":   {least: 2, most: anyArgs, usage: "EP PATH=VALUE[:TYPE]...", build: writeCompositeRequest},
	"exec": {least: 2, most: 3, usage: "EP PATH [ARGS]", build: func(c clientArgs) (apiRequest, error) {
		args := ""
		if len(c.a) > 2 {
			args = c.a[2]
		}
		return apiRequest{method: "POST", path: c.devicePath("execute") + c.wait, body: map[string]any{"args": args}}, nil
	}},
}

// getList is the request of a command that GETs a paged list.
func getList(path string) func(clientArgs) (apiRequest, error) {
	return func(c clientArgs) (apiRequest, error) { return apiRequest{method: "GET", path: path + c.page}, nil }
}

// get is the request of a command that GETs one path.
func get(path string) func(clientArgs) (apiRequest, error) {
	return func(clientArgs) (apiRequest, error) { return apiRequest{method: "GET", path: path}, nil }
}

// attrsRequest is Write-Attributes: NAME=VALUE sets an attribute, NAME
// alone removes it.
func attrsRequest(c clientArgs) (apiRequest, error) {
	set, unset := map[string]json.Number{}, []string{}
	for _, kv := range c.a[2:] {
		if k, v, ok := strings.Cut(kv, "="); ok {
			set[k] = json.Number(v)
		} else {
			unset = append(unset, kv)
		}
	}
	return apiRequest{method: "PUT", path: c.devicePath("attributes") + c.wait, body: map[string]any{"set": set, "unset": unset}}, nil
}

// compositeRequest is Read-Composite or Observe-Composite of the paths.
func compositeRequest(c clientArgs) (apiRequest, error) {
	op := strings.TrimSuffix(c.cmd, "-composite")
	return apiRequest{method: "POST", path: "/devices/" + url.PathEscape(c.a[0]) + "/composite/" + op + c.wait, body: map[string]any{"paths": c.a[1:]}}, nil
}

// writeCompositeRequest is Write-Composite of PATH=VALUE[:TYPE] pairs.
func writeCompositeRequest(c clientArgs) (apiRequest, error) {
	vals, types := map[string]any{}, map[string]string{}
	for _, kv := range c.a[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return apiRequest{}, usageError{"usage: smsgw write-composite EP PATH=VALUE[:TYPE]..., e.g. /3311/0/5851=40 /31024/10/1=7:Integer"}
		}
		if i := strings.LastIndexByte(v, ':'); i > 0 && isTypeName(v[i+1:]) {
			v, types[k] = v[:i], v[i+1:]
		}
		vals[k] = v
	}
	return apiRequest{method: "POST", path: "/devices/" + url.PathEscape(c.a[0]) + "/composite/write" + c.wait, body: map[string]any{"values": vals, "types": types}}, nil
}

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
