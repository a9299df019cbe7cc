// Package config is the smsgw configuration: the YAML schema, its embedded
// default and validation with line-numbered errors.
//
// # Usage
//
//	c, err := config.Parse(yamlBytes) // a *Error listing each problem with its line
//	if err != nil { ... }
//	c.DataDir = dir // flags override the file
//	if err := c.Validate(); err != nil { ... }
//	g, err := gateway.New(ctx, c, log)
//
// [Default] is the embedded default ([DefaultYAML], default.yaml), which
// shows every option; smsgw default-config prints it.
//
// # Design
//
// YAML decoding is go.yaml.in/yaml/v3 with KnownFields, so a misspelt key
// is an error, not silence. The validation rules and the mapping of each
// problem ([Problem]) to the yaml.Node line it came from are hand-written
// here; the [*Error] they make matches [ErrInvalid].
//
// One method per section. Validation calls one method per section of the
// file (mode and proxy, store, log, listeners, PSKs, models, security,
// modems, SMPP, simulator, OSCORE, SMS security, firmware, SMS, SMS
// devices, queue) in a fixed order, which is the order check-config lists
// the problems in; a new check goes into its section's method.
package config
