package secure_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/bearer/pipe"
	"github.com/m2mbearer/m2mbearer/bearer/secure"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// Example runs a CoAP server over DTLS (PSK) and a device that dials it,
// over an in-memory pipe; with UDP or SMS bearers the code is the same.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	serverSide, deviceSide, err := pipe.New(pipe.WithNames("server", "device"))
	if err != nil {
		panic(err)
	}

	// Server: keys by PSK identity; the handler sees who is calling.
	keys := map[string][]byte{"urn:imei:490154203237518": []byte("0123456789abcdef")}
	srv, err := secure.NewServer(serverSide, &secure.Config{
		PSKLookup: func(identity []byte) ([]byte, error) { return keys[string(identity)], nil },
	})
	if err != nil {
		panic(err)
	}
	mux := bearer.NewServeMux()
	mux.HandleFunc("/hello", func(w bearer.ResponseWriter, r *bearer.Request) {
		_ = w.WriteResponse(codes.Content, []byte("hello "+r.Identity.String()))
	})
	se, err := bearer.NewEndpoint(srv, bearer.WithHandler(mux))
	if err != nil {
		panic(err)
	}
	defer se.Close()

	// Device: dial, then use the session as any bearer.
	conn, err := secure.Dial(ctx, deviceSide, pipe.Addr("server"), &secure.Config{
		PSKIdentity: []byte("urn:imei:490154203237518"),
		PSKKey:      []byte("0123456789abcdef"),
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(conn.Params().Name, conn.CipherSuite())
	ce, err := bearer.NewEndpoint(conn)
	if err != nil {
		panic(err)
	}
	defer ce.Close()
	resp, err := ce.Get(ctx, pipe.Addr("server"), "/hello")
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.Code, string(resp.Payload))
	// Output:
	// dtls+pipe TLS_PSK_WITH_AES_128_CCM_8
	// Content hello psk:urn:imei:490154203237518
}

// ExampleNewRawKeyCertificate sets up raw-public-key credentials: each
// side wraps its P-256 key and pins the other's SubjectPublicKeyInfo (the
// form an LwM2M Security object stores).
func ExampleNewRawKeyCertificate() {
	serverKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	deviceKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serverSPKI, _ := secure.PublicKeyInfo(serverKey.Public())
	deviceSPKI, _ := secure.PublicKeyInfo(deviceKey.Public())

	serverCert, _ := secure.NewRawKeyCertificate(serverKey)
	deviceCert, _ := secure.NewRawKeyCertificate(deviceKey)
	serverCfg := &secure.Config{Certificate: &serverCert, VerifyRawKey: secure.TrustKeys(deviceSPKI)}
	deviceCfg := &secure.Config{Certificate: &deviceCert, VerifyRawKey: secure.TrustKeys(serverSPKI)}

	fmt.Println(len(serverSPKI), secure.Overhead(serverCfg, true), secure.Overhead(deviceCfg, false))
	// Output: 91 36 36
}
