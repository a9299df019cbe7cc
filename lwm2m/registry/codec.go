package registry

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// ErrCorrupt is wrapped by UnmarshalRegistration errors.
var ErrCorrupt = errors.New("lwm2m registry: corrupt record")

const codecVersion = 1

// StoredAddr is a non-UDP peer address restored from a durable store when
// no AddrDecoder was configured: it keeps the network and string forms.
type StoredAddr struct{ Net, Addr string }

// Network implements net.Addr.
func (a StoredAddr) Network() string { return a.Net }

// String implements net.Addr.
func (a StoredAddr) String() string { return a.Addr }

// AddrDecoder rebuilds a non-UDP net.Addr (an sms.Addr) from its network
// and string forms when a durable store loads registrations.
type AddrDecoder func(network, addr string) (net.Addr, error)

// MarshalRegistration appends the binary form of r to b. The format is
// private to this package (version byte, varints, length-prefixed strings).
func MarshalRegistration(b []byte, r *Registration) []byte {
	b = append(b, codecVersion)
	b = binary.AppendUvarint(b, r.ID)
	b = appendString(b, r.Endpoint)
	b = binary.AppendUvarint(b, uint64(r.Lifetime))
	b = append(b, byte(r.Version), byte(r.Binding), boolByte(r.Queue))
	b = binary.AppendUvarint(b, uint64(r.Formats))
	b = appendString(b, r.SMS)
	ap := r.AltPath()
	if ap == "/" {
		ap = ""
	}
	b = appendString(b, ap)
	b = appendString(b, r.Transport())
	switch {
	case r.Other != nil:
		b = append(b, 2)
		b = appendString(b, r.Other.Network())
		b = appendString(b, r.Other.String())
	case r.Addr.IsValid():
		b = append(b, 1)
		ab, _ := r.Addr.MarshalBinary()
		b = appendString(b, string(ab))
	default:
		b = append(b, 0)
	}
	b = appendString(b, r.Identity)
	b = binary.AppendVarint(b, r.Registered)
	b = binary.AppendVarint(b, r.Updated)
	b = binary.AppendUvarint(b, uint64(len(r.Objects)))
	for _, l := range r.Objects {
		b = binary.BigEndian.AppendUint16(b, l.Object)
		b = binary.BigEndian.AppendUint16(b, l.Instance)
		b = append(b, l.VerMajor, l.VerMinor)
	}
	return b
}

// UnmarshalRegistration decodes a record written by MarshalRegistration.
// dec rebuilds non-UDP addresses; nil keeps them as StoredAddr.
func UnmarshalRegistration(data []byte, dec AddrDecoder) (*Registration, error) {
	d := decoder{b: data}
	if v := d.byte(); v != codecVersion {
		return nil, fmt.Errorf("%w: version %d", ErrCorrupt, v)
	}
	r := &Registration{}
	r.ID = d.uvarint()
	r.Endpoint = d.string()
	lt := d.uvarint()
	if lt > 1<<32-1 {
		d.fail("lifetime")
	}
	r.Lifetime = uint32(lt)
	r.Version, r.Binding, r.Queue = Version(d.byte()), Binding(d.byte()), d.byte() == 1
	f := d.uvarint()
	if f > 0xFFFF {
		d.fail("formats")
	}
	r.Formats = Formats(f)
	r.SMS = d.string()
	r.SetAltPath(d.string())
	r.SetTransport(d.string())
	switch d.byte() {
	case 0:
	case 1:
		var ap netip.AddrPort
		if err := ap.UnmarshalBinary([]byte(d.string())); err != nil {
			d.fail("address")
		}
		r.Addr = ap
	case 2:
		network, s := d.string(), d.string()
		if d.err == nil {
			if dec != nil {
				a, err := dec(network, s)
				if err != nil {
					return nil, fmt.Errorf("%w: address %s %q: %w", ErrCorrupt, network, s, err)
				}
				r.Other = a
			} else {
				r.Other = StoredAddr{network, s}
			}
		}
	default:
		d.fail("address kind")
	}
	r.Identity = d.string()
	r.Registered = d.varint()
	r.Updated = d.varint()
	n := d.uvarint()
	if n > MaxObjectLinks || n*6 > uint64(len(d.b)) {
		d.fail("object count")
		n = 0
	}
	if n > 0 {
		r.Objects = make([]ObjectLink, n)
		for i := range r.Objects {
			ob := d.take(6)
			if ob == nil {
				break
			}
			r.Objects[i] = ObjectLink{
				Object:   binary.BigEndian.Uint16(ob),
				Instance: binary.BigEndian.Uint16(ob[2:]),
				VerMajor: ob[4], VerMinor: ob[5],
			}
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return nil, d.err
	}
	if r.Version < V1_0 || r.Version > V1_2 || r.Endpoint == "" || r.ID == 0 {
		return nil, fmt.Errorf("%w: invalid fields", ErrCorrupt)
	}
	return r, nil
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorrupt, what)
	}
	d.b = nil
}

func (d *decoder) take(n int) []byte {
	if d.err != nil || n < 0 || n > len(d.b) {
		d.fail("short record")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	v := d.take(1)
	if v == nil {
		return 0
	}
	return v[0]
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("string length")
		return ""
	}
	return string(d.take(int(n)))
}
