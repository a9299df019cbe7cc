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
	"runtime/debug"
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
		// A daemon's error is one line naming the option to change.
		if err := runDaemon(args, stdout, stderr); err != nil {
			var hr *helpRequest
			if errors.As(err, &hr) {
				printCommandHelp(stdout, hr.name, hr.fs)
				return exitOK
			}
			fmt.Fprintf(stderr, "smsgw: %v\n", err)
			var ue usageError
			if errors.As(err, &ue) {
				return exitUsage
			}
			return exitFailed
		}
		return exitOK
	case "state":
		err = runState(args, stdout)
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

// loadConfig reads the configuration file (the embedded default for "").
func loadConfig(file string) (*config.Config, error) {
	if file == "" {
		return config.Default(), nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("-config: %w", err)
	}
	cfg, err := config.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return cfg, nil
}

func runDaemon(args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("smsgw run", flag.ContinueOnError)
	cfgFile := fs.String("config", "", "YAML configuration file (default: the embedded demo configuration)")
	dataDir := fs.String("data", "", "state directory (default: data_dir of the config, else "+defaultDataDir()+")")
	apiAddr := fs.String("api", "", "HTTP API listen address (overrides api.listen)")
	udpAddr := fs.String("udp", "", "LwM2M CoAP/UDP listen address (overrides lwm2m.udp)")
	dtlsAddr := fs.String("dtls", "", "LwM2M CoAP/DTLS listen address (overrides lwm2m.dtls)")
	tokenFile := fs.String("token-file", "", "file holding the API token (overrides api.token_file; $SMSGW_TOKEN overrides both)")
	removedTokenFlag(fs)
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
	cfg, err := loadConfig(*cfgFile)
	if err != nil {
		return err
	}
	for dst, v := range map[*string]string{&cfg.DataDir: *dataDir, &cfg.API.Listen: *apiAddr, &cfg.LwM2M.UDP: *udpAddr, &cfg.LwM2M.DTLS: *dtlsAddr,
		&cfg.API.TokenFile: *tokenFile, &cfg.Log.Level: *logLevel, &cfg.Log.Format: *logFormat} {
		if v != "" {
			*dst = v
		}
	}
	fromEnv := false
	if t := strings.TrimSpace(os.Getenv("SMSGW_TOKEN")); t != "" {
		cfg.API.Token, fromEnv = t, true
	}
	if cfg.DataDir == "" {
		cfg.DataDir = defaultDataDir()
	}
	if abs, err := filepath.Abs(cfg.DataDir); err == nil {
		cfg.DataDir = abs // messages name the files unambiguously
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := newLogger(cfg.Log.Level, cfg.Log.Format, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A panic while starting is a bug; it still ends as one error line
	// (and the stack for the report), never as a half-started daemon.
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "%s\n", debug.Stack())
			err = fmt.Errorf("internal error while starting (a bug; please report it with the stack above): %v", r)
		}
	}()
	g, err := gateway.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	in := g.Info()
	if fromEnv {
		in.TokenSource = "SMSGW_TOKEN"
	}
	printInfo(stdout, in)
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

// printInfo prints where to look. It never prints the API token: a
// daemon's output ends up in journals.
func printInfo(w io.Writer, in gateway.Info) {
	fmt.Fprintf(w, "smsgw is running\n")
	fmt.Fprintf(w, "  HTTP API:   %s   (Authorization: Bearer <token>)\n", in.API)
	auth := "Authorization: Bearer $SMSGW_TOKEN"
	switch {
	case in.TokenFile != "":
		how := map[string]string{"generated": "generated now, kept", "data dir": "kept from an earlier start"}[in.TokenSource]
		if how == "" {
			how = in.TokenSource
		}
		fmt.Fprintf(w, "  API token:  in %s (%s; never printed)\n", in.TokenFile, how)
		auth = "Authorization: Bearer $(cat " + in.TokenFile + ")"
	case in.TokenSource == "SMSGW_TOKEN":
		fmt.Fprintf(w, "  API token:  from $SMSGW_TOKEN\n")
	default:
		fmt.Fprintf(w, "  API token:  from %s of the configuration\n", in.TokenSource)
	}
	base := strings.TrimSuffix(in.API, "/api/v1")
	fmt.Fprintf(w, "  Web UI:     %s/ui/ (asks for the token)\n", base)
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
	fmt.Fprintf(w, "Try: curl -H \"%s\" %s/devices\n", auth, in.API)
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
	net, err := sim.NewNetwork(sim.WithConditions(sim.Conditions{Latency: sim.Fixed(*latency)}), sim.WithLogger(slog.Default()))
	if err != nil {
		return err
	}
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
