package server_test

import (
	"testing"

	"github.com/m2mbearer/m2mbearer/lwm2m/server"
	"github.com/m2mbearer/m2mbearer/lwm2m/server/bindingstest"
)

// TestBindingStoreConformance runs the BindingStore suite against
// StaticSecurity (redisstore runs it against Redis).
func TestBindingStoreConformance(t *testing.T) {
	bindingstest.Run(t, bindingstest.Factory{
		New: func(_ *testing.T, max int) server.BindingStore { return server.NewStaticSecurity(max) },
	})
}
