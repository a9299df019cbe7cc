package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/m2mbearer/m2mbearer/cmd/smsgw/internal/config"
)

// BenchmarkAPIRead measures an HTTP API Read of /3/0/0 answered by a demo
// light: API → LwM2M server → CoAP over UDP (or SMS through the simulated
// network and the pty modems) → client → back.
func BenchmarkAPIRead(b *testing.B) {
	for _, c := range []struct{ name, ep string }{{"udp", "light-udp-1"}, {"sms", "light-sms-1"}} {
		b.Run(c.name, func(b *testing.B) {
			cfg := config.Default()
			cfg.DataDir = b.TempDir()
			cfg.API.Listen, cfg.LwM2M.UDP, cfg.LwM2M.DTLS, cfg.API.Token = "127.0.0.1:0", "127.0.0.1:0", "", testToken
			cfg.Simulator.Fleet = config.Fleet{UDP: 1, SMS: 1, Awake: 3 * time.Second}
			cfg.Simulator.Latency, cfg.Simulator.SendTime = 0, 0
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			g, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				b.Fatal(err)
			}
			defer g.Shutdown(context.Background())
			url := g.Info().API + "/devices/" + c.ep + "/data/3/0/0"
			deadline := time.Now().Add(30 * time.Second)
			get := func() int {
				req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
				req.Header.Set("Authorization", "Bearer "+testToken)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp.StatusCode
			}
			for get() != 200 {
				if time.Now().After(deadline) {
					b.Fatal("light not registered")
				}
				time.Sleep(100 * time.Millisecond)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if code := get(); code != 200 {
					b.Fatalf("HTTP %d", code)
				}
			}
		})
	}
}
