package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"text/tabwriter"
)

// Exit codes of smsgw, the same for every command (docs/cli.md).
const (
	exitOK          = 0 // done
	exitFailed      = 1 // the server, the device or the configuration refused or failed
	exitUsage       = 2 // the command line is wrong: unknown command or flag, missing argument
	exitUnreachable = 3 // the API could not be reached (daemon not running, wrong -api, timeout)
	exitAuth        = 4 // no API token, or the token was refused (HTTP 401/403)
	exitPending     = 5 // the device did not answer in time: the request stays queued (HTTP 202) or timed out (504)
)

const exitCodesHelp = `Exit codes:
  0  done
  1  the server, the device or the configuration refused or failed (an HTTP error answer, an invalid config)
  2  usage: unknown command or flag, missing or extra argument
  3  the API could not be reached (daemon not running, wrong -api URL, network timeout)
  4  no API token, or the token was refused (HTTP 401/403)
  5  the device did not answer within -wait: the request stays queued for a sleeping device (HTTP 202,
     see "smsgw jobs") or timed out (HTTP 504)
`

// command is one smsgw command as the help lists it.
type command struct {
	name    string // "devices", "fw upload"
	args    string // what follows the name
	summary string
	group   string
	client  bool // an API client: takes the global flags and -o
}

var commands = []command{
	{"run", "[-config FILE] [-data DIR] [-api ADDR] [-udp ADDR] [-dtls ADDR] [-log-level L] [-log-format F]", "run the daemon (the default command; no config: the embedded demo)", "Daemon", false},
	{"sim", "[-modems N] [-latency D] [-msisdn N]", "run only the simulated SMS network, print the pty paths", "Daemon", false},
	{"state check", "[-data DIR] [-config FILE]", "check every state file (through the daemon when it runs)", "State files", false},
	{"state backup", "DIR [-data DIR]", "consistent copies of the state files (also while the daemon runs)", "State files", false},
	{"state reset", "NAME [-data DIR]", "set a damaged state file aside (daemon stopped); it starts empty", "State files", false},
	{"check-config", "FILE", "validate a configuration file (every problem, by line); the daemon runs the same checks at start", "Configuration", false},
	{"default-config", "", "print the embedded default configuration (every option)", "Configuration", false},
	{"devices", "", "list registered devices", "Devices", true},
	{"read", "EP PATH [TYPE]", "read, e.g. smsgw read light-udp-1 /3/0 (TYPE: read a resource outside the object model as that type)", "Devices", true},
	{"write", "EP PATH VALUE [TYPE]", "write a resource, e.g. smsgw write light-udp-1 /3311/0/5851 40", "Devices", true},
	{"exec", "EP PATH [ARGS]", "execute a resource", "Devices", true},
	{"discover", "EP PATH", "Discover: the attributes and resources under a path", "Devices", true},
	{"attrs", "EP PATH NAME=VALUE|NAME...", "Write-Attributes, e.g. pmin=10 pmax=60 (a bare name removes it)", "Devices", true},
	{"read-composite", "EP PATH...", "Read-Composite", "Devices", true},
	{"write-composite", "EP PATH=VALUE[:TYPE]...", "Write-Composite", "Devices", true},
	{"observe-composite", "EP PATH...", "Observe-Composite (notifications on the event stream)", "Devices", true},
	{"values", "EP", "last known values (also of a sleeping device)", "Devices", true},
	{"objects", "", "the object model (built-in and lwm2m.models)", "Devices", true},
	{"jobs", "", "list pending jobs (requests queued for sleeping devices)", "Devices", true},
	{"cluster", "", "cluster mode: nodes and their health, which node holds which device and modem, leases", "Cluster", true},
	{"fw upload", "FILE -version V [-name N]", "store a firmware image (SHA-256 computed and checked)", "Firmware", true},
	{"fw list", "", "list firmware images", "Firmware", true},
	{"fw show", "ID", "one firmware image", "Firmware", true},
	{"fw delete", "ID", "delete a firmware image", "Firmware", true},
	{"fw update", "EP IMAGE [-sms] [-dry-run] [-method push|pull]", "update one device (-dry-run: the plan and its SMS cost)", "Firmware", true},
	{"fw job", "ID", "a single-device update's progress", "Firmware", true},
	{"campaign create", "-image ID (-prefix P | -endpoints A,B | -filter K=V,...) [-concurrency N] [-retries N] [-sms-budget N] [-sms]", "update many devices", "Campaigns", true},
	{"campaign list", "", "list campaigns", "Campaigns", true},
	{"campaign status", "ID [-devices]", "a campaign's progress (-devices: every device's state)", "Campaigns", true},
	{"campaign pause", "ID", "pause a campaign", "Campaigns", true},
	{"campaign resume", "ID", "resume a paused campaign", "Campaigns", true},
	{"campaign cancel", "ID", "cancel a campaign", "Campaigns", true},
	{"help", "[COMMAND]", "this help, or a command's", "", false},
}

// groups are the commands that take a subcommand ("fw upload").
var groups = map[string]bool{"fw": true, "campaign": true, "state": true}

func findCommand(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// known reports whether name is a command or a group.
func known(name string) bool {
	_, ok := findCommand(name)
	return ok || groups[name]
}

const globalFlagsHelp = `Global flags of the API client commands (before or after the command name):
  -api URL         the daemon's API (default $SMSGW_API, else http://127.0.0.1:8080)
  -token-file F    file holding the API token (default $SMSGW_TOKEN, else the api-token file of -data);
                   there is no -token: a token on the command line shows in the process list
  -data DIR        the daemon's data dir, where it keeps the generated api-token
  -o FORMAT        table (default: human-readable) or json (the API's answer as it is, for scripts)
  -wait D          device commands: how long to wait for a sleeping device to wake up and answer (default 1m)
  -timeout D       fw and campaign commands: how long to wait for the API (default 5m)
`

// printHelp prints the list of commands.
func printHelp(w io.Writer) {
	fmt.Fprint(w, `smsgw: an LwM2M server over UDP and SMS (AT modems, SMPP), with queue mode for sleeping devices.

Usage:
  smsgw [run] [flags]             run the daemon (no flags: the embedded demo with simulated modems)
  smsgw COMMAND [flags] [args]    an API client command against a running daemon
  smsgw COMMAND --help            a command's arguments and flags
`)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	group := "-"
	for _, c := range commands {
		if c.group == "" {
			continue
		}
		if c.group != group {
			group = c.group
			fmt.Fprintf(tw, "\n%s:\n", group)
		}
		fmt.Fprintf(tw, "  %s %s\t%s\n", c.name, shortArgs(c.args), c.summary)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%s\n%s\nEnvironment: SMSGW_API, SMSGW_TOKEN. More: docs/cli.md.\n", globalFlagsHelp, exitCodesHelp)
}

// shortArgs keeps the positional part of a synopsis for the command list.
func shortArgs(a string) string {
	if len(a) > 30 {
		if i := strings.IndexAny(a, "[("); i > 0 {
			return a[:i] + "..."
		}
	}
	return a
}

// printCommandHelp prints one command's usage, its flags (from fs when the
// command has flags) and the global flags of API clients.
func printCommandHelp(w io.Writer, name string, fs *flag.FlagSet) {
	c, ok := findCommand(name)
	if !ok && groups[name] {
		fmt.Fprintf(w, "Usage: smsgw %s SUBCOMMAND [flags] [args]\n\n", name)
		tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
		for _, c := range commands {
			if strings.HasPrefix(c.name, name+" ") {
				fmt.Fprintf(tw, "  smsgw %s %s\t%s\n", c.name, shortArgs(c.args), c.summary)
			}
		}
		tw.Flush()
		fmt.Fprintf(w, "\n%s\n%s", globalFlagsHelp, exitCodesHelp)
		return
	}
	fmt.Fprintf(w, "Usage: smsgw %s %s\n\n%s\n", c.name, c.args, c.summary)
	if fs != nil {
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintf(w, "\nFlags:\n")
			fs.SetOutput(w)
			fs.PrintDefaults()
		}
	}
	if c.client {
		fmt.Fprintf(w, "  -o FORMAT\n    \ttable (default) or json\n\nThe flags may come before or after the command name (smsgw -api URL %s ...).\n", strings.Fields(c.name)[0])
	}
	fmt.Fprintf(w, "\n%s", exitCodesHelp)
}

// helpRequest is returned by a command whose flags asked for -h/--help: run
// prints the command's help to stdout and exits 0.
type helpRequest struct {
	name string
	fs   *flag.FlagSet
}

func (h *helpRequest) Error() string { return "help requested" }

// parseFlags parses a command's flags; -h/--help becomes a *helpRequest,
// another error a usageError (exit 2). Flag errors are not printed by the
// flag package: run prints them once, with a pointer to --help.
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &helpRequest{name: strings.TrimPrefix(fs.Name(), "smsgw "), fs: fs}
		}
		return usageError{err.Error()}
	}
	return nil
}

// boolFlags are the flags that take no value (for finding the command name
// after flags given before it).
var boolFlags = map[string]bool{"sms": true, "dry-run": true, "devices": true, "h": true, "help": true}

func isHelpFlag(a string) bool { return a == "-h" || a == "-help" || a == "--help" || a == "--h" }

// splitCommand finds the command in args: global flags may come before it
// ("smsgw -api URL devices"); they are moved after it (after the
// subcommand of fw and campaign), where the command's flag set reads them.
// No command name (only flags, or nothing) is "run", the daemon.
func splitCommand(args []string) (cmd string, rest []string, help bool) {
	i := 0
	for i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "-" && args[i] != "--" {
		if isHelpFlag(args[i]) {
			return "", nil, true
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if hasValue || boolFlags[name] {
			i++
		} else {
			i += 2
		}
	}
	if i >= len(args) {
		return "run", args, false
	}
	if !known(args[i]) {
		return args[i], nil, false // run says it is unknown
	}
	lead, cmd, rest := args[:i], args[i], args[i+1:]
	if groups[cmd] && len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		return cmd, append(append([]string{rest[0]}, lead...), rest[1:]...), false
	}
	return cmd, append(append([]string{}, lead...), rest...), false
}

// takeOutput removes -o FORMAT (also -o=FORMAT, -output, --output) from the
// arguments of an API client command, wherever it is before "--".
func takeOutput(args []string) (format string, rest []string, err error) {
	format = "table"
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return format, append(rest, args[i:]...), nil
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "o" && name != "output" {
			rest = append(rest, a)
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				return "", nil, usageError{"-o needs a format: table or json"}
			}
			i++
			val = args[i]
		}
		if val != "table" && val != "json" {
			return "", nil, usageError{fmt.Sprintf("-o %q: use table or json", val)}
		}
		format = val
	}
	return format, rest, nil
}

// apiError is an error answer of the API: its status and message.
type apiError struct {
	status int
	text   string // the status text, e.g. "Not Found"
	msg    string // the answer's "error", or ""
}

func (e *apiError) Error() string {
	s := fmt.Sprintf("HTTP %d %s", e.status, e.text)
	if e.msg != "" {
		s += ": " + e.msg
	}
	return s
}

// pendingError is a device request that got no answer within -wait.
type pendingError struct{ msg string }

func (e *pendingError) Error() string { return e.msg }

// authError is a missing API token.
type authError struct{ err error }

func (e *authError) Error() string { return e.err.Error() }
func (e *authError) Unwrap() error { return e.err }

// unreachableError is an API that could not be reached.
type unreachableError struct {
	api string
	err error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach the API at %s (is the daemon running? set -api or $SMSGW_API): %v", e.api, e.err)
}
func (e *unreachableError) Unwrap() error { return e.err }

// exitCode maps a command's error to the documented exit codes.
func exitCode(err error) int {
	var (
		ue usageError
		ae *apiError
		pe *pendingError
		au *authError
		un *unreachableError
		ne net.Error
		ur *url.Error
	)
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &au):
		return exitAuth
	case errors.As(err, &ae):
		if ae.status == 401 || ae.status == 403 {
			return exitAuth
		}
		if ae.status == 504 {
			return exitPending
		}
		return exitFailed
	case errors.As(err, &pe):
		return exitPending
	case errors.As(err, &un), errors.As(err, &ur), errors.As(err, &ne):
		return exitUnreachable
	}
	return exitFailed
}
