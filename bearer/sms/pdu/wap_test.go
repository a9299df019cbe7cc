package pdu

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// appendixLCoAP is the CoAP POST /1/0/8 of LwM2M 1.1 Core Appendix L.
var appendixLCoAP = []byte{0x44, 0x02, 0xb6, 0x0b, 0x21, 0x61, 0xfb, 0x63, 0xb1, 0x31, 0x01, 0x30, 0x01, 0x38}

func TestWAPPushAppendixL(t *testing.T) {
	body := BuildWAPPush(0x01, appendixLCoAP)
	want := append([]byte{0x01, 0x06, 0x03, 0xC4, 0xAF, 0x9A}, appendixLCoAP...)
	if !bytes.Equal(body, want) {
		t.Fatalf("WSP % X\nwant % X", body, want)
	}
	// The whole SMS user data of Appendix L: UDH 06 05 04 0B 84 C0 02.
	segs, err := new(Encoder).Encode("+4915112345678", body, WAPPushOptions(0xC002))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := ParseSubmit(segs[0].TPDU)
	if err != nil {
		t.Fatal(err)
	}
	ud := segs[0].TPDU[len(segs[0].TPDU)-7-len(body):]
	if !bytes.Equal(ud[:7], []byte{0x06, 0x05, 0x04, 0x0B, 0x84, 0xC0, 0x02}) {
		t.Fatalf("UDH % X", ud[:7])
	}
	tr, err := ParseTrigger(sub.UDH.Ports, sub.Data)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Form != FormWAPPush || !bytes.Equal(tr.CoAP, appendixLCoAP) || tr.TID != 1 || tr.ContentType != 0x44 || tr.AppID != LwM2MAppID {
		t.Fatalf("trigger %+v", tr)
	}
	// Raw CoAP: no port IE, or another port.
	for _, p := range []Ports{{}, {Present: true, Wide: true, Dst: 5683}} {
		t.Run(fmt.Sprintf("%+v", p), func(t *testing.T) {
			tr, err := ParseTrigger(p, appendixLCoAP)
			if err != nil || tr.Form != FormCoAP || !bytes.Equal(tr.CoAP, appendixLCoAP) {
				t.Fatalf("raw %+v %v", tr, err)
			}
		})
	}
}

func TestParseWAPPushForms(t *testing.T) {
	coap := appendixLCoAP
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, tc := range []struct {
		name string
		b    []byte
		err  bool
		ct   int
		ctt  string
	}{
		{name: "app id as URI, text content type",
			b: cat([]byte{0x07, 0x06, 42}, []byte("application/x\x00"), []byte{0xAF}, []byte(LwM2MAppURI+"\x00"), coap), ct: -1, ctt: "application/x"},
		{name: "app id as long integer", b: cat([]byte{0x01, 0x06, 0x04, 0xC4, 0xAF, 0x01, 0x1A}, coap), ct: 0x44},
		{name: "general content type form + extra header",
			b: cat([]byte{0x01, 0x06, 0x08, 0x03, 0xC4, 0x81, 0xEA, 0x8D, 0x85, 0xAF, 0x9A}, coap), ct: 0x44},
		{name: "uintvar headers length", b: cat([]byte{0x01, 0x06, 0x80, 0x03, 0xC4, 0xAF, 0x9A}, coap), ct: 0x44},
		{name: "other application", b: cat([]byte{0x01, 0x06, 0x03, 0xC4, 0xAF, 0x84}, coap), err: true},
		{name: "no app id", b: cat([]byte{0x01, 0x06, 0x01, 0xC4}, coap), err: true},
		{name: "not a push", b: cat([]byte{0x01, 0x07, 0x03, 0xC4, 0xAF, 0x9A}, coap), err: true},
		{name: "headers past end", b: []byte{0x01, 0x06, 0x09, 0xC4, 0xAF, 0x9A}, err: true},
		{name: "unterminated text", b: []byte{0x01, 0x06, 0x02, 'a', 'b'}, err: true},
		{name: "uintvar too long", b: []byte{0x01, 0x06, 0x81, 0x81, 0x81, 0x81, 0x81, 0x01}, err: true},
		{name: "short", b: []byte{0x01, 0x06}, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := ParseTrigger(Ports{Present: true, Wide: true, Dst: WAPPushPort}, tc.b)
			if tc.err {
				if !errors.Is(err, ErrWAPPush) {
					t.Fatalf("err %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(tr.CoAP, coap) || tr.ContentType != tc.ct || tr.ContentTypeText != tc.ctt {
				t.Fatalf("%+v", tr)
			}
		})
	}
}
