package firmware

import (
	"bytes"
	"crypto/sha256"
	"fmt"
)

// Demo package format, used by the demo devices (Device) and by tests.
// LwM2M leaves the package format to the manufacturer; a real device
// checks a signature. This one carries what the device needs to check its
// integrity and to know its new version:
//
//	"M2FW" | version length (1 byte) | version | SHA-256 of payload (32) | payload
const pkgMagic = "M2FW"

// BuildPackage returns a demo firmware package for version with payload.
func BuildPackage(version string, payload []byte) ([]byte, error) {
	if version == "" || len(version) > 255 {
		return nil, fmt.Errorf("%w: version must be 1..255 bytes", ErrInvalid)
	}
	sum := sha256.Sum256(payload)
	out := make([]byte, 0, len(pkgMagic)+1+len(version)+sha256.Size+len(payload))
	out = append(out, pkgMagic...)
	out = append(out, byte(len(version)))
	out = append(out, version...)
	out = append(out, sum[:]...)
	return append(out, payload...), nil
}

// ParsePackage checks a demo package and returns its version and payload.
// A malformed package gives an error wrapping ErrBadPackage (Update Result
// 6, unsupported package type); a payload that does not match its
// checksum gives ErrIntegrity (Update Result 5).
func ParsePackage(pkg []byte) (version string, payload []byte, err error) {
	if len(pkg) < len(pkgMagic)+1 || !bytes.HasPrefix(pkg, []byte(pkgMagic)) {
		return "", nil, fmt.Errorf("%w: no M2FW header", ErrBadPackage)
	}
	n := int(pkg[len(pkgMagic)])
	rest := pkg[len(pkgMagic)+1:]
	if n == 0 || len(rest) < n+sha256.Size {
		return "", nil, fmt.Errorf("%w: truncated header", ErrBadPackage)
	}
	version = string(rest[:n])
	sum := rest[n : n+sha256.Size]
	payload = rest[n+sha256.Size:]
	got := sha256.Sum256(payload)
	if !bytes.Equal(got[:], sum) {
		return "", nil, fmt.Errorf("%w: payload checksum mismatch", ErrIntegrity)
	}
	return version, payload, nil
}
