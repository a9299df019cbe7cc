package smstest

import (
	"context"
	"errors"
	"net"

	"github.com/m2mbearer/m2mbearer/bearer"
)

// GetAsking is a GET its caller asks again, up to attempts times in all,
// when it timed out: on SMS (MAX_RETRANSMIT 0) the message layer does not
// send a lost request again, only a Q-Block2 request whose answer is on
// its way (bearer.PeerActivity); asking again is the caller's decision,
// as the LwM2M server's queue or an operator makes it. It returns the
// last answer or error and the number of GETs made.
func GetAsking(ctx context.Context, ep *bearer.Endpoint, to net.Addr, path string, attempts int) (*bearer.Response, int, error) {
	for n := 1; ; n++ {
		resp, err := ep.Get(ctx, to, path)
		var te *bearer.TimeoutError
		if err == nil || n >= attempts || !errors.As(err, &te) {
			return resp, n, err
		}
	}
}
