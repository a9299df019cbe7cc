// Package docs holds the user documentation (Markdown) and its tests: the
// generated references (api.md from the OpenAPI document; configuration.md
// is generated in cmd/smsgw/internal/config) and the tutorial, whose sh
// blocks TestTutorial runs against the simulator.
package docs

//go:generate sh -c "M2M_UPDATE_DOCS=1 go test -count=1 -run ^TestAPIReference$ ."
