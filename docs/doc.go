// Package docs holds the user documentation (Markdown) and the tests that
// keep it true.
//
// # Usage
//
//	go test ./docs                       # links, drift, tutorial, import rules
//	M2M_UPDATE_DOCS=1 go test ./docs     # rewrite the generated api.md
//
// # Design
//
// The references are generated and checked for drift: api.md from the
// gateway's OpenAPI document (here), configuration.md from the config's own
// definitions (in cmd/smsgw/internal/config). The tutorial's sh blocks are
// run one by one against the simulator by TestTutorial; architecture.md's
// dependency rules are checked against the real imports by
// TestImportRules; every relative link and anchor is checked by TestLinks;
// README.md keeps the two set-up commands first and stays short.
package docs

//go:generate sh -c "M2M_UPDATE_DOCS=1 go test -count=1 -run ^TestAPIReference$ ."
