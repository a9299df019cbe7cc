package firmware

import (
	"errors"
	"fmt"

	"github.com/m2mbearer/m2mbearer/internal/cfgcheck"
)

// Sentinel errors callers branch on.
var (
	// ErrNotFound: no image with that id.
	ErrNotFound = errors.New("firmware: image not found")
	// ErrChecksum: the uploaded bytes do not match the declared SHA-256.
	ErrChecksum = errors.New("firmware: checksum mismatch")
	// ErrSize: the uploaded bytes do not match the declared size.
	ErrSize = errors.New("firmware: size mismatch")
	// ErrStoreFull: the store's byte or image bound would be exceeded.
	ErrStoreFull = errors.New("firmware: store full")
	// ErrTooLarge: an image over the store's per-image bound
	// (WithMaxImageBytes), known from its declared size or while it
	// streams in.
	ErrTooLarge = errors.New("firmware: image too large")
	// ErrInvalid: a bad argument (empty version, bad checksum text, ...).
	ErrInvalid = errors.New("firmware: invalid argument")
	// ErrInvalidOption is wrapped by the error of a constructor (OpenStore,
	// NewManager, NewUpdater) given an option or Config field out of its
	// range, and of an update given Options out of theirs. It is a kind of
	// ErrInvalid: errors.Is(err, ErrInvalid) holds for it too.
	ErrInvalidOption = cfgcheck.Refines("firmware: invalid option", ErrInvalid)
	// ErrUnsupported: the device supports no delivery method usable on its
	// bearer with the given options (for example an SMS-only device when
	// SMS push is not allowed).
	ErrUnsupported = errors.New("firmware: no usable delivery method")
	// ErrBudget: the SMS cost exceeds the allowed budget.
	ErrBudget = errors.New("firmware: SMS budget exceeded")
	// ErrVersionMismatch: after the update the device reports another
	// /3/0/3 firmware version than the image's.
	ErrVersionMismatch = errors.New("firmware: device reports another version after update")
	// ErrTimeout: the device did not reach the expected state in time.
	ErrTimeout = errors.New("firmware: timed out waiting for the device")
	// ErrCancelled: the campaign was cancelled.
	ErrCancelled = errors.New("firmware: cancelled")
	// ErrBadPackage: a demo package does not parse.
	ErrBadPackage = errors.New("firmware: bad package")
	// ErrIntegrity: a demo package's payload does not match its checksum.
	ErrIntegrity = errors.New("firmware: package integrity check failed")
	// ErrNotCreated: a zero Manager, Updater or Store (not made by
	// NewManager, NewUpdater or OpenStore) refuses everything.
	ErrNotCreated = errors.New("firmware: zero value, not made by NewManager, NewUpdater or OpenStore")
)

// Update Result values of /5/0/5 (LwM2M 1.1 Core, Object 5 definition).
const (
	ResultInitial          = 0 // initial value, or update in progress
	ResultSuccess          = 1 // firmware updated successfully
	ResultNoStorage        = 2 // not enough flash memory for the new package
	ResultOutOfRAM         = 3 // out of RAM during downloading
	ResultConnectionLost   = 4 // connection lost during downloading
	ResultIntegrity        = 5 // integrity check failure for the new package
	ResultUnsupportedType  = 6 // unsupported package type
	ResultInvalidURI       = 7 // invalid URI
	ResultUpdateFailed     = 8 // firmware update failed
	ResultUnsupportedProto = 9 // unsupported protocol
)

// State values of /5/0/3.
const (
	StateIdle        = 0
	StateDownloading = 1
	StateDownloaded  = 2
	StateUpdating    = 3
)

var resultText = map[int64]string{
	ResultInitial:          "initial",
	ResultSuccess:          "success",
	ResultNoStorage:        "not enough flash memory",
	ResultOutOfRAM:         "out of RAM during download",
	ResultConnectionLost:   "connection lost during download",
	ResultIntegrity:        "integrity check failure",
	ResultUnsupportedType:  "unsupported package type",
	ResultInvalidURI:       "invalid URI",
	ResultUpdateFailed:     "firmware update failed",
	ResultUnsupportedProto: "unsupported protocol",
}

// ResultError is a failure the device reported in /5/0/5 Update Result.
// Callers branch on Result (ResultIntegrity, ResultInvalidURI, ...).
type ResultError struct {
	Endpoint string
	Result   int64
}

func (e *ResultError) Error() string {
	t, ok := resultText[e.Result]
	if !ok {
		t = "unknown"
	}
	return fmt.Sprintf("firmware: device %s reports update result %d (%s)", e.Endpoint, e.Result, t)
}
