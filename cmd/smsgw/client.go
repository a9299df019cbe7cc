package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// runClient implements the API client subcommands.
func runClient(cmd string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("smsgw "+cmd, flag.ContinueOnError)
	api := fs.String("api", envOr("SMSGW_API", "http://127.0.0.1:8080"), "API base URL")
	token := fs.String("token", os.Getenv("SMSGW_TOKEN"), "API token (default: $SMSGW_TOKEN, else the api-token file of -data)")
	data := fs.String("data", defaultDataDir(), "data dir holding the generated api-token")
	wait := fs.Duration("wait", 60*time.Second, "for queue-mode devices: how long to wait for the device to wake up and answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *token == "" {
		b, err := os.ReadFile(filepath.Join(*data, "api-token"))
		if err != nil {
			return fmt.Errorf("no API token: pass -token, set SMSGW_TOKEN, or run the daemon with -data %s (%v)", *data, err)
		}
		*token = strings.TrimSpace(string(b))
	}
	a := fs.Args()
	need := func(n int, u string) error {
		if len(a) < n {
			return usageError{"usage: smsgw " + cmd + " " + u}
		}
		return nil
	}
	base := strings.TrimRight(*api, "/") + "/api/v1"
	w := "?wait=" + wait.String()
	var method, u string
	var body any
	switch cmd {
	case "devices":
		method, u = "GET", base+"/devices"
	case "jobs":
		method, u = "GET", base+"/jobs"
	case "cluster":
		method, u = "GET", base+"/cluster"
	case "read":
		if err := need(2, "EP PATH [TYPE]"); err != nil {
			return err
		}
		method, u = "GET", base+"/devices/"+url.PathEscape(a[0])+"/data/"+strings.TrimPrefix(a[1], "/")+w
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
		method, u, body = "PUT", base+"/devices/"+url.PathEscape(a[0])+"/data/"+strings.TrimPrefix(a[1], "/")+w, wb
	case "discover":
		if err := need(2, "EP PATH"); err != nil {
			return err
		}
		method, u = "GET", base+"/devices/"+url.PathEscape(a[0])+"/discover/"+strings.TrimPrefix(a[1], "/")+w
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
		method, u, body = "PUT", base+"/devices/"+url.PathEscape(a[0])+"/attributes/"+strings.TrimPrefix(a[1], "/")+w, map[string]any{"set": set, "unset": unset}
	case "read-composite", "observe-composite":
		if err := need(2, "EP PATH..."); err != nil {
			return err
		}
		op := strings.TrimSuffix(cmd, "-composite")
		method, u, body = "POST", base+"/devices/"+url.PathEscape(a[0])+"/composite/"+op+w, map[string]any{"paths": a[1:]}
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
		method, u, body = "POST", base+"/devices/"+url.PathEscape(a[0])+"/composite/write"+w, map[string]any{"values": vals, "types": types}
	case "values":
		if err := need(1, "EP"); err != nil {
			return err
		}
		method, u = "GET", base+"/devices/"+url.PathEscape(a[0])+"/values"
	case "objects":
		method, u = "GET", base+"/objects"
	case "exec":
		if err := need(2, "EP PATH [ARGS]"); err != nil {
			return err
		}
		args := ""
		if len(a) > 2 {
			args = a[2]
		}
		method, u, body = "POST", base+"/devices/"+url.PathEscape(a[0])+"/execute/"+strings.TrimPrefix(a[1], "/")+w, map[string]any{"args": args}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *wait+30*time.Second)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+*token)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	stdout.Write(out)
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("HTTP %s", strconv.Itoa(resp.StatusCode)+" "+http.StatusText(resp.StatusCode))
	}
	return nil
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
