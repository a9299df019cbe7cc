package registry

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/m2mbearer/m2mbearer/internal/record"
)

// ErrCorrupt is wrapped by UnmarshalRegistration errors.
var ErrCorrupt = errors.New("lwm2m registry: corrupt record")

// Record versions: 1, and 2 which appends the node (written only when
// Registration.Node is set, so single-node records stay as they were).
const (
	codecVersion     = 1
	codecVersionNode = 2
)

// StoredAddr is a non-UDP peer address restored from a durable store when
// no AddrDecoder was configured: it keeps the network and string forms.
//
// The zero StoredAddr has empty network and string forms.
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
	node := r.Node()
	if node == "" {
		b = append(b, codecVersion)
	} else {
		b = append(b, codecVersionNode)
	}
	b = binary.AppendUvarint(b, r.ID)
	b = record.AppendString(b, r.Endpoint)
	b = binary.AppendUvarint(b, uint64(r.Lifetime))
	b = append(b, byte(r.Version), byte(r.Binding), boolByte(r.Queue))
	b = binary.AppendUvarint(b, uint64(r.Formats))
	b = record.AppendString(b, r.SMS)
	ap := r.AltPath()
	if ap == "/" {
		ap = ""
	}
	b = record.AppendString(b, ap)
	b = record.AppendString(b, r.Transport())
	switch {
	case r.Other != nil:
		b = append(b, 2)
		b = record.AppendString(b, r.Other.Network())
		b = record.AppendString(b, r.Other.String())
	case r.Addr.IsValid():
		b = append(b, 1)
		ab, _ := r.Addr.MarshalBinary()
		b = record.AppendString(b, string(ab))
	default:
		b = append(b, 0)
	}
	b = record.AppendString(b, r.Identity)
	b = binary.AppendVarint(b, r.Registered)
	b = binary.AppendVarint(b, r.Updated)
	b = binary.AppendUvarint(b, uint64(len(r.Objects)))
	for _, l := range r.Objects {
		b = binary.BigEndian.AppendUint16(b, l.Object)
		b = binary.BigEndian.AppendUint16(b, l.Instance)
		b = append(b, l.VerMajor, l.VerMinor)
	}
	if node != "" {
		b = record.AppendString(b, node)
	}
	return b
}

// UnmarshalRegistration decodes a record written by MarshalRegistration.
// dec rebuilds non-UDP addresses; nil keeps them as StoredAddr.
func UnmarshalRegistration(data []byte, dec AddrDecoder) (*Registration, error) {
	d := record.NewDecoder(data, ErrCorrupt)
	v := d.Byte()
	if v != codecVersion && v != codecVersionNode {
		return nil, fmt.Errorf("%w: version %d", ErrCorrupt, v)
	}
	r := &Registration{}
	r.ID = d.Uvarint()
	r.Endpoint = d.String(record.NoLimit)
	lt := d.Uvarint()
	if lt > 1<<32-1 {
		d.Fail("lifetime")
	}
	r.Lifetime = uint32(lt)
	r.Version, r.Binding, r.Queue = Version(d.Byte()), Binding(d.Byte()), d.Byte() == 1
	f := d.Uvarint()
	if f > 0xFFFF {
		d.Fail("formats")
	}
	r.Formats = Formats(f)
	r.SMS = d.String(record.NoLimit)
	r.SetAltPath(d.String(record.NoLimit))
	r.SetTransport(d.String(record.NoLimit))
	switch d.Byte() {
	case 0:
	case 1:
		var ap netip.AddrPort
		if err := ap.UnmarshalBinary([]byte(d.String(record.NoLimit))); err != nil {
			d.Fail("address")
		}
		r.Addr = ap
	case 2:
		network, s := d.String(record.NoLimit), d.String(record.NoLimit)
		if d.Err() == nil {
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
		d.Fail("address kind")
	}
	r.Identity = d.String(record.NoLimit)
	r.Registered = d.Varint()
	r.Updated = d.Varint()
	n := d.Uvarint()
	if n > MaxObjectLinks || n*6 > uint64(d.Remaining()) {
		d.Fail("object count")
		n = 0
	}
	if n > 0 {
		r.Objects = make([]ObjectLink, n)
		for i := range r.Objects {
			ob := d.Take(6)
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
	if v == codecVersionNode {
		r.SetNode(d.String(MaxNodeLen))
	}
	if err := d.Finish(); err != nil {
		return nil, err
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
