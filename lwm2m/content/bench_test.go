package content

import (
	"testing"

	"github.com/m2mbearer/m2mbearer/lwm2m/path"
)

// Benchmarks encode and decode the Device object instance of the
// specification examples (16 values, 13 resources) in each format.

func benchEncode(b *testing.B, f Format) {
	recs := deviceRecords()
	base := path.Instance(3, 0)
	data, err := Encode(f, base, recs)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(f, base, recs); err != nil {
			b.Fatal(err)
		}
	}
}

func benchDecode(b *testing.B, f Format) {
	base := path.Instance(3, 0)
	data, err := Encode(f, base, deviceRecords())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(f, base, data, reg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeDeviceTLV(b *testing.B)       { benchEncode(b, TLV) }
func BenchmarkDecodeDeviceTLV(b *testing.B)       { benchDecode(b, TLV) }
func BenchmarkEncodeDeviceSenMLJSON(b *testing.B) { benchEncode(b, SenMLJSON) }
func BenchmarkDecodeDeviceSenMLJSON(b *testing.B) { benchDecode(b, SenMLJSON) }
func BenchmarkEncodeDeviceSenMLCBOR(b *testing.B) { benchEncode(b, SenMLCBOR) }
func BenchmarkDecodeDeviceSenMLCBOR(b *testing.B) { benchDecode(b, SenMLCBOR) }
func BenchmarkEncodeDeviceLwM2MCBOR(b *testing.B) { benchEncode(b, LwM2MCBOR) }
func BenchmarkDecodeDeviceLwM2MCBOR(b *testing.B) { benchDecode(b, LwM2MCBOR) }
