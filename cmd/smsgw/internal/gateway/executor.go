package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/m2mbearer/m2mbearer/bearer"
	"github.com/m2mbearer/m2mbearer/lwm2m/path"
	"github.com/m2mbearer/m2mbearer/lwm2m/queue"
	"github.com/m2mbearer/m2mbearer/lwm2m/server"
)

// executor runs queued requests on an awake device through the LwM2M server
// (the queue.Executor edge). A device's error answer (4.04, 4.05 ...) is a
// result, not an executor failure; no answer means the device is asleep.
type executor struct {
	srv     *server.Server
	timeout time.Duration // per attempt: shorter than the device's awake window
}

func (x *executor) Execute(ctx context.Context, ep string, req *queue.Request) (*queue.Result, error) {
	if len(req.Paths) == 0 {
		return nil, fmt.Errorf("request %d has no path", req.ID)
	}
	p, err := path.Parse(req.Paths[0])
	if err != nil {
		return nil, err
	}
	if x.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, x.timeout)
		defer cancel()
	}
	c := server.Content{Format: message.MediaType(max(req.ContentFormat, 0)), Payload: req.Payload}
	res := &queue.Result{ContentFormat: queue.NoContentFormat}
	switch req.Kind {
	case queue.KindRead:
		var out server.Content
		if out, err = x.srv.Read(ctx, ep, p); err == nil {
			res.Code, res.ContentFormat, res.Payload = uint8(codes.Content), int32(out.Format), out.Payload
		}
	case queue.KindObserve:
		var out server.Content
		if _, out, err = x.srv.Observe(ctx, ep, p, nil); err == nil {
			res.Code, res.ContentFormat, res.Payload = uint8(codes.Content), int32(out.Format), out.Payload
		}
	case queue.KindWrite:
		if err = x.srv.Write(ctx, ep, p, server.Replace, c); err == nil {
			res.Code = uint8(codes.Changed)
		}
	case queue.KindWritePartial:
		if err = x.srv.Write(ctx, ep, p, server.PartialUpdate, c); err == nil {
			res.Code = uint8(codes.Changed)
		}
	case queue.KindExecute:
		if err = x.srv.Execute(ctx, ep, p, string(req.Payload)); err == nil {
			res.Code = uint8(codes.Changed)
		}
	case queue.KindCreate:
		var np path.Path
		if np, err = x.srv.Create(ctx, ep, p, c); err == nil {
			res.Code, res.Payload = uint8(codes.Created), []byte(np.String())
		}
	case queue.KindDelete:
		if err = x.srv.Delete(ctx, ep, p); err == nil {
			res.Code = uint8(codes.Deleted)
		}
	case queue.KindCancelObserve:
		if err = x.srv.CancelObservation(ctx, ep, p); err == nil || errors.Is(err, server.ErrNoObservation) {
			res.Code, err = uint8(codes.Content), nil
		}
	default:
		return nil, fmt.Errorf("operation %v is not supported by the gateway's executor", req.Kind)
	}
	if err == nil {
		return res, nil
	}
	var se *server.Error
	if errors.As(err, &se) {
		res.Code, res.ContentFormat, res.Payload = uint8(se.Code), int32(message.TextPlain), []byte(se.Message)
		return res, nil
	}
	if isTimeout(err) {
		return nil, fmt.Errorf("%w: %w", queue.ErrDeviceAsleep, err)
	}
	return nil, err
}

// isTimeout reports a request that got no answer.
func isTimeout(err error) bool {
	if errors.Is(err, bearer.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
