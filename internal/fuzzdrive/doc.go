// Package fuzzdrive runs every fuzz target of the repository for a while:
// TestFuzzTargets, skipped unless M2M_FUZZTIME is set.
//
// The normal suite runs each target's seed corpus only (go test does that
// for every Fuzz function); this driver fuzzes for real.
//
// # Usage
//
//	M2M_FUZZTIME=5s go test -run TestFuzzTargets -v -timeout 2h ./internal/fuzzdrive
//	M2M_FUZZTIME=30s M2M_FUZZ='bearer/sms/pdu/.*' go test -run TestFuzzTargets -v ./internal/fuzzdrive
//
// # Design
//
// Each package with fuzz targets is built once with coverage
// instrumentation (go test -c -fuzz), then each of its targets runs for
// M2M_FUZZTIME in the package directory, so its testdata/fuzz corpus is
// read and a new failing input is written there (the test then fails and
// names the file). Other knobs:
//
//   - M2M_FUZZBUDGET bounds the whole run (e.g. 100s, what .ci/run gives
//     it): packages that no longer fit are left for another run and
//     listed; the run starts at a package that changes every day, so
//     successive CI runs cover every target.
//   - M2M_FUZZ is a regular expression on "package/FuzzName" to run a
//     subset.
//
// The targets are found by reading the *_test.go files (func FuzzX(f
// *testing.F)), not by building every package.
package fuzzdrive
