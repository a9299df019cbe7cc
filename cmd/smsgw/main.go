// Command smsgw is the m2mbearer gateway daemon: an LwM2M server reachable
// over CoAP/UDP and over binary SMS through AT modems, with queue mode (SMS
// wake-ups of sleeping devices), an HTTP JSON API, server-sent events and
// Prometheus metrics.
//
// With no arguments it runs the embedded default: a simulated SMS network
// whose server SIMs are virtual modems on pseudo-terminals driven by the real
// modem driver, and a demo fleet of streetlights (UDP, UDP in queue mode
// woken by SMS, SMS only).
//
// Usage:
//
//	smsgw [run] [-config FILE] [-data DIR] [-api ADDR] [-udp ADDR] [-token T]
//	smsgw sim                      run only the simulator, print the pty paths
//	smsgw check-config FILE        validate a configuration file
//	smsgw default-config           print the embedded default configuration
//	smsgw devices                  list devices (API client)
//	smsgw read  EP PATH            read a path
//	smsgw write EP PATH VALUE      write a resource
//	smsgw exec  EP PATH [ARGS]     execute a resource
//	smsgw jobs                     list pending jobs
//	smsgw cluster                  nodes, devices and modems by node, leases
//
// The API client subcommands take -api URL (default http://127.0.0.1:8080,
// or $SMSGW_API) and -token (default $SMSGW_TOKEN, else the api-token file
// of the default data dir), before or after the command name, and -o table
// (default) or json. "smsgw --help" lists every command, "smsgw CMD --help"
// its flags; the exit codes are the constants of cli.go (docs/cli.md).
//
// Everything here is hand-written flag handling over the standard library;
// the daemon itself is cmd/smsgw/internal/gateway.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/gateway"
	"github.com/m2mbearer/m2mbearer/modem/sim"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd, args, help := splitCommand(args)
	if help {
		printHelp(stdout)
		return exitOK
	}
	if groups[cmd] && (len(args) == 0 || isHelpFlag(args[0])) {
		if len(args) == 0 {
			printCommandHelp(stderr, cmd, nil)
			return exitUsage
		}
		printCommandHelp(stdout, cmd, nil)
		return exitOK
	}
	var err error
	switch cmd {
	case "run":
		err = runDaemon(args, stdout, stderr)
	case "sim":
		err = runSim(args, stdout)
	case "check-config":
		err = checkConfig(args, stdout)
	case "default-config":
		if err = parseFlags(flag.NewFlagSet("smsgw default-config", flag.ContinueOnError), args); err == nil {
			_, err = stdout.Write(config.DefaultYAML)
		}
	case "fw":
		err = apiCommand(args, stdout, runFW)
	case "campaign":
		err = apiCommand(args, stdout, runCampaign)
	case "help":
		if len(args) > 0 && known(args[0]) {
			return run(append(args, "--help"), stdout, stderr)
		}
		printHelp(stdout)
		return exitOK
	default:
		// The device commands of runClient: every client command of the
		// table that is not a group's.
		if c, ok := findCommand(cmd); !ok || !c.client {
			fmt.Fprintf(stderr, "smsgw: unknown command %q; the commands are listed by smsgw --help\n", cmd)
			return exitUsage
		}
		err = apiCommand(args, stdout, func(args []string, w io.Writer) error { return runClient(cmd, args, w) })
	}
	if err != nil {
		var hr *helpRequest
		if errors.As(err, &hr) {
			printCommandHelp(stdout, hr.name, hr.fs)
			return exitOK
		}
		fmt.Fprintf(stderr, "smsgw %s: %v\n", cmd, err)
		code := exitCode(err)
		if code == exitUsage {
			fmt.Fprintf(stderr, "Run 'smsgw %s --help' for usage.\n", cmd)
		}
		return code
	}
	return exitOK
}

// apiCommand runs an API client command with -o: its answer is copied as
// it is (json) or shown as tables (table, the default; an error answer then
// goes to stderr only, as the error's message).
func apiCommand(args []string, stdout io.Writer, f func([]string, io.Writer) error) error {
	format, args, err := takeOutput(args)
	if err != nil {
		return err
	}
	var body bytes.Buffer
	err = f(args, &body)
	var ae *apiError
	switch {
	case body.Len() == 0:
	case format == "json":
		stdout.Write(body.Bytes())
	case !errors.As(err, &ae):
		if rerr := renderTable(stdout, body.Bytes()); err == nil {
			err = rerr
		}
	}
	return err
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// defaultDataDir is a per-user state directory.
func defaultDataDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "smsgw")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "smsgw")
	}
	return filepath.Join(os.TempDir(), "smsgw")
}

func newLogger(level, format string, w io.Writer) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		lv = slog.LevelInfo
	}
	o := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

func runDaemon(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("smsgw run", flag.ContinueOnError)
	cfgFile := fs.String("config", "", "YAML configuration file (default: the embedded demo configuration)")
	dataDir := fs.String("data", "", "state directory (default: data_dir of the config, else "+defaultDataDir()+")")
	apiAddr := fs.String("api", "", "HTTP API listen address (overrides api.listen)")
	udpAddr := fs.String("udp", "", "LwM2M CoAP/UDP listen address (overrides lwm2m.udp)")
	dtlsAddr := fs.String("dtls", "", "LwM2M CoAP/DTLS listen address (overrides lwm2m.dtls)")
	token := fs.String("token", "", "API bearer token (overrides api.token)")
	logLevel := fs.String("log-level", "", "debug, info, warn, error (overrides log.level)")
	logFormat := fs.String("log-format", "", "text or json (overrides log.format)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	if strings.Contains(*apiAddr, "://") {
		// "smsgw -api http://gw:8080" without a command runs the daemon,
		// whose -api is the address it listens on.
		return usageError{fmt.Sprintf("-api %s: the daemon's -api is the host:port it listens on; an API client command takes a URL: smsgw -api %s devices", *apiAddr, *apiAddr)}
	}
	cfg := config.Default()
	if *cfgFile != "" {
		data, err := os.ReadFile(*cfgFile)
		if err != nil {
			return err
		}
		if cfg, err = config.Parse(data); err != nil {
			return fmt.Errorf("%s: %w", *cfgFile, err)
		}
	}
	for dst, v := range map[*string]string{&cfg.DataDir: *dataDir, &cfg.API.Listen: *apiAddr, &cfg.LwM2M.UDP: *udpAddr, &cfg.LwM2M.DTLS: *dtlsAddr,
		&cfg.API.Token: *token, &cfg.Log.Level: *logLevel, &cfg.Log.Format: *logFormat} {
		if v != "" {
			*dst = v
		}
	}
	if cfg.DataDir == "" {
		cfg.DataDir = defaultDataDir()
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := newLogger(cfg.Log.Level, cfg.Log.Format, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	g, err := gateway.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	printInfo(stdout, g.Info())
	log.Info("smsgw running; stop with Ctrl-C (SIGINT) or SIGTERM")
	<-ctx.Done()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped; queued requests and unsent SMS are kept in " + cfg.DataDir)
	return nil
}

func printInfo(w io.Writer, in gateway.Info) {
	fmt.Fprintf(w, "smsgw is running\n")
	fmt.Fprintf(w, "  HTTP API:   %s   (Authorization: Bearer %s)\n", in.API, in.Token)
	if in.TokenFile != "" {
		fmt.Fprintf(w, "  API token:  %s\n", in.TokenFile)
	}
	fmt.Fprintf(w, "  OpenAPI:    %s\n  Metrics:    %s\n", in.OpenAPI, in.Metrics)
	fmt.Fprintf(w, "  LwM2M UDP:  coap://%s\n", in.UDP)
	if in.DTLS != "" {
		fmt.Fprintf(w, "  LwM2M DTLS: coaps://%s (PSK)\n", in.DTLS)
	}
	fmt.Fprintf(w, "  Data dir:   %s\n", in.DataDir)
	sims := make([]string, 0, len(in.PTYs))
	for k := range in.PTYs {
		sims = append(sims, k)
	}
	sort.Strings(sims)
	for _, s := range sims {
		fmt.Fprintf(w, "  Modem %s on %s (simulated, driven by the real modem driver)\n", s, in.PTYs[s])
	}
	for _, l := range in.Lights {
		extra := ""
		if l.MSISDN != "" {
			extra = fmt.Sprintf(" sms %s via server SIM %s", l.MSISDN, l.ServerSIM)
		}
		fmt.Fprintf(w, "  Light %-18s %-5s%s\n", l.Name, l.Kind, extra)
	}
	fmt.Fprintf(w, "Try: curl -H 'Authorization: Bearer %s' %s/devices\n", in.Token, in.API)
}

// runSim runs the simulated network with virtual modems on ptys only.
func runSim(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("smsgw sim", flag.ContinueOnError)
	n := fs.Int("modems", 2, "number of virtual modems")
	latency := fs.Duration("latency", 150*time.Millisecond, "SMSC transit time")
	first := fs.String("msisdn", "+491710000001", "number of the first modem (the others count up)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *n < 1 || *n > 64 {
		return usageError{"-modems must be in 1..64"}
	}
	var base uint64
	if _, err := fmt.Sscanf(strings.TrimPrefix(*first, "+"), "%d", &base); err != nil {
		return usageError{fmt.Sprintf("-msisdn %q is not a number", *first)}
	}
	net := sim.NewNetwork(sim.WithConditions(sim.Conditions{Latency: sim.Fixed(*latency)}))
	defer net.Close()
	for i := 0; i < *n; i++ {
		m, err := net.AddModem(fmt.Sprintf("+%d", base+uint64(i)))
		if err != nil {
			return err
		}
		p, err := m.OpenPTY()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "modem %s %s\n", m.MSISDN(), p)
	}
	fmt.Fprintln(stdout, "simulated SMS network running; the modems route SMS to each other; Ctrl-C stops it")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}

func checkConfig(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("smsgw check-config", flag.ContinueOnError)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if args = fs.Args(); len(args) != 1 {
		return usageError{"usage: smsgw check-config FILE"}
	}
	data, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	if _, err := config.Parse(data); err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	fmt.Fprintf(stdout, "%s: ok\n", args[0])
	return nil
}
