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
// directory; with AOF on, what was acknowledged survives. Tests skip when
// redis-server is not installed (exec.LookPath fails); .ci/run installs
// Debian's redis-server.
package redistest
