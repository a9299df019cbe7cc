package config

// docs/configuration.md is generated from this package's definitions by
// TestConfigurationReference, which fails when the file drifts from them.
//go:generate sh -c "M2M_UPDATE_DOCS=1 go test -count=1 -run ^TestConfigurationReference$ ."
