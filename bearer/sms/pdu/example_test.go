package pdu_test

import (
	"fmt"
	"time"

	"github.com/m2mbearer/m2mbearer/bearer/sms/pdu"
)

func ExampleEncoder_Encode() {
	e, err := pdu.NewEncoder(pdu.WithRefSeed(func() uint16 { return 0x42 }))
	if err != nil {
		panic(err)
	}
	coap := make([]byte, 300) // a CoAP datagram
	segs, err := e.Encode("+4915112345678", coap, pdu.WithStatusReport(true))
	if err != nil {
		panic(err)
	}
	for _, s := range segs {
		// Send with AT+CMGS=<Length>, then the PDU and Ctrl-Z.
		fmt.Printf("AT+CMGS=%d  %s...  part %d/%d ref %d\n", s.Length, s.PDU[:24], s.Concat.Seq, s.Concat.Total, s.Concat.Ref)
	}
	_, err = e.Encode("+4915112345678", make([]byte, 40000))
	fmt.Println(err)
	// Output:
	// AT+CMGS=155  0071000D91945111325476F8...  part 1/3 ref 66
	// AT+CMGS=155  0071000D91945111325476F8...  part 2/3 ref 66
	// AT+CMGS=53  0071000D91945111325476F8...  part 3/3 ref 66
	// pdu: datagram does not fit in 255 SMS segments: 40000 bytes > 34170
}

func ExampleDecodeModemHex() {
	// +CDS: 25 followed by the PDU, as a modem prints a status report.
	in, err := pdu.DecodeModemHex("07915391131213F406030C91539133131316218030612015402180306120654000", 25)
	if err != nil {
		panic(err)
	}
	sr := in.StatusReport
	fmt.Println(in.SMSC, sr.MR, sr.Recipient, sr.Outcome(), sr.Discharge.Format(time.RFC3339))
	// Output: +35193121314 3 +351933313161 delivered 2012-08-03T16:02:56+01:00
}

func ExampleReassembler() {
	r, err := pdu.NewReassembler(pdu.ReassemblerConfig{
		Timeout: 5 * time.Minute,
		OnDrop:  func(d pdu.Dropped) { fmt.Println("dropped", d.Key, d.Reason) },
	})
	if err != nil {
		panic(err)
	}
	segs, _ := new(pdu.Encoder).Encode("+4930123456", make([]byte, 200))
	for i := len(segs) - 1; i >= 0; i-- { // out of order
		sub, _ := pdu.ParseSubmit(segs[i].TPDU)
		// What the far end receives: an SMS-DELIVER from our number.
		d := pdu.DeliverOf(sub, pdu.Address{TON: pdu.TONInternational, NPI: pdu.NPIISDN, Value: "4915112345678"}, time.Now())
		p, err := pdu.PartOf(d)
		if err != nil {
			panic(err)
		}
		if dg, _ := r.Add(p); dg != nil {
			fmt.Println(dg.Originator, len(dg.Data), "bytes in", dg.Segments, "SMS")
		}
	}
	// Output: +4915112345678 200 bytes in 2 SMS
}

func ExampleParseTrigger() {
	coap := []byte{0x44, 0x02, 0xb6, 0x0b, 0x21, 0x61, 0xfb, 0x63, 0xb1, 0x31, 0x01, 0x30, 0x01, 0x38}
	body := pdu.BuildWAPPush(1, coap) // LwM2M 1.1 Core Appendix L
	segs, _ := new(pdu.Encoder).Encode("+4915112345678", body, pdu.WAPPushOptions(pdu.WAPPushSourcePort))
	sub, _ := pdu.ParseSubmit(segs[0].TPDU)
	tr, err := pdu.ParseTrigger(sub.UDH.Ports, sub.Data)
	fmt.Println(tr.Form, len(tr.CoAP), err)
	// Output: wap-push 14 <nil>
}
