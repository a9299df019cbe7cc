package registry_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/m2mbearer/m2mbearer/lwm2m/registry"
)

func ExampleParseRegister() {
	p, err := registry.ParseRegister(
		[]string{"ep=streetlight-17", "lt=300", "lwm2m=1.1", "b=U", "Q"},
		[]byte(`</>;rt="oma.lwm2m";ct="110 11542",</1/0>,</3/0>,</3311>;ver=1.1,</3311/0>`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p.Endpoint, p.Lifetime, p.Version, p.Binding, p.Queue, p.Formats.Numbers())
	fmt.Println(p.Objects)
	_, err = registry.ParseRegister([]string{"ep=x", "lwm2m=1.0", "b=T"}, nil)
	fmt.Println(err)
	// Output:
	// streetlight-17 300 1.1 U true [110 11542]
	// [</1/0> </3/0> </3311>;ver=1.1 </3311/0>]
	// lwm2m registration: bad request: b: LwM2M 1.0 binding "T" is not one of U, UQ, S, SQ, US, UQS
}

func ExampleMemory() {
	ctx := context.Background()
	s, err := registry.NewMemory(registry.Options{Grace: 2 * time.Second})
	if err != nil {
		panic(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := &registry.Registration{Endpoint: "dev-1", Lifetime: 60, Version: registry.V1_1,
		Binding: registry.BindingU, Registered: now.UnixNano(), Updated: now.UnixNano()}
	s.Add(ctx, r)
	// The location carries 64 random bits, e.g. /rd/3il2e9136ed4b.
	fmt.Println(strings.HasPrefix(r.Location(), "/rd/"), len(r.Location()) > len("/rd/"))
	gone, _ := s.Expire(ctx, now.Add(61*time.Second), 100)
	fmt.Println(len(gone))
	gone, _ = s.Expire(ctx, now.Add(62*time.Second), 100)
	fmt.Println(len(gone), gone[0].Endpoint)
	// Output:
	// true true
	// 0
	// 1 dev-1
}
