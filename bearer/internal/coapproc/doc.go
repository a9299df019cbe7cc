// Package coapproc starts and stops libcoap's command-line programs
// (coap-server-notls, coap-client-notls, and their -openssl variants) for
// interoperability tests.
//
// # Usage
//
//	bin := coapproc.LookPath(t, "coap-server-notls") // skips the test when absent
//	srv := coapproc.StartServer(t, bin, "127.0.0.1")  // answers a CoAP ping; killed at the end
//	out, log, err := coapproc.Run(ctx, 10*time.Second, client, "-m", "get", uri)
//
// # Design
//
// Test support, hand-written: it finds a program with exec.LookPath (the
// test is skipped only when the program is absent), picks a free loopback
// port ([FreeUDPPort]), starts the server and waits until it answers a
// CoAP ping (RFC 7252 §4.3: an empty CON is answered with RST), keeps the
// last bytes of the program's output for the failure message ([Log]), and
// kills the process when the test ends. Every wait is bounded by a
// deadline ([StartTimeout]).
package coapproc
