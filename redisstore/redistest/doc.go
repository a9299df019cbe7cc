// Package redistest starts a real redis-server for tests: on a loopback
// port, with its own temporary directory, stopped when the test ends.
//
// # Usage
//
//	srv := redistest.Start(t, redistest.Options{})
//	db, err := redisstore.Open(ctx, srv.URL(), redisstore.Options{})
//
// # Design
//
// A test can SIGKILL the server and start it again on the same port and
// directory; with AOF on, what was acknowledged survives. The port stays
// reserved for the Server's whole life (a bound socket that never listens,
// with SO_REUSEADDR), so no other test's server or client takes it while the
// server is down, and every start checks that the server answering is the
// process it started (INFO server's process_id). Tests skip when
// redis-server is not installed (exec.LookPath fails); .ci/run installs
// Debian's redis-server.
package redistest
