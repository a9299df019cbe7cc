// Command smsgw is the m2mbearer gateway daemon: an LwM2M server reachable
// over CoAP/UDP, DTLS and binary SMS (AT modems or an SMSC), with queue
// mode, firmware updates, an HTTP JSON API, server-sent events and
// Prometheus metrics.
//
// With no arguments it runs the embedded default: a simulated SMS network
// whose server SIMs are virtual modems on pseudo-terminals driven by the
// real modem driver, and a demo fleet of streetlights (UDP, UDP in queue
// mode woken by SMS, SMS only).
//
// # Usage
//
//	smsgw [run] [-config FILE] [-data DIR] [-api ADDR] [-udp ADDR] [-token-file F]
//	smsgw sim                      run only the simulator, print the pty paths
//	smsgw state check|backup DIR|reset NAME   check, back up or reset the state files
//	smsgw check-config FILE        validate a configuration file
//	smsgw default-config           print the embedded default configuration
//	smsgw devices                  list devices (API client)
//	smsgw read  EP PATH            read a path
//	smsgw write EP PATH VALUE      write a resource
//	smsgw exec  EP PATH [ARGS]     execute a resource
//	smsgw jobs                     list pending jobs
//	smsgw cluster                  nodes, devices and modems by node, leases
//	smsgw fw upload FILE -version V           store a firmware image
//	smsgw fw update EP IMAGE [-dry-run]       update one device
//	smsgw campaign create -image ID -prefix P update a group
//
// smsgw --help lists every subcommand (discover, attrs, the composite
// operations, values, objects, fw, campaign, state), smsgw CMD --help its
// flags. The API client subcommands take -api URL (default
// http://127.0.0.1:8080, or $SMSGW_API) and the token from $SMSGW_TOKEN,
// else -token-file, else the api-token file of the data dir, before or
// after the command name, and -o table (default) or json; the exit codes
// are the constants of cli.go (docs/cli.md). The daemon takes its token from $SMSGW_TOKEN, api.token,
// api.token_file (-token-file) or the data dir's api-token (generated
// once); it prints the file's path, never the token.
//
// A start-up error is one line on stderr naming the option to change
// ("smsgw: api.listen 127.0.0.1:8080: address already in use") and exit
// code 1; a second daemon on the same data dir refuses at once and touches
// nothing.
//
// # Design
//
// The daemon itself is cmd/smsgw/internal/gateway, configured by
// cmd/smsgw/internal/config; this package is flag handling over the
// standard library and the API client. Ctrl-C or SIGTERM stops the daemon
// gracefully; queued work and unsent SMS resume at the next start.
package main
