// Package sim simulates AT-command cellular modems and the SMS network
// behind them, so that the modem driver, the SMS bearer and the LwM2M stack
// run without hardware.
//
// The tests, hwtest's simulated runs and smsgw's demo fleet use it.
//
// # Usage
//
//	net, err := sim.NewNetwork(sim.WithSeed(1), sim.WithConditions(sim.Conditions{
//		Latency: sim.Uniform(10*time.Millisecond, 50*time.Millisecond),
//	}))
//	defer net.Close()
//	sim800, _ := sim.ProfileByName("sim800")
//	a, _ := net.AddModem("+4915110000001", sim.WithProfile(sim800))
//	conn, _ := a.Pipe() // an io.ReadWriteCloser speaking AT
//	// or: path, _ := a.OpenPTY(), a serial path for gammu, smsd or modem.Open
//
//	dev, _ := net.AddEndpoint("+4917000000042", func(m sim.EndpointMessage) bool {
//		... // a device without a modem
//		return true
//	})
//
// # Design
//
// A [Network] is a simulated SMS centre (SMSC): it stores and forwards
// SMS-SUBMIT TPDUs by MSISDN, with seeded, configurable latency, loss,
// duplication and reordering ([Conditions]), TP-SRR status reports,
// store-and-forward for detached subscribers with a validity period, and an
// injectable [Clock] ([ManualClock]) so that tests step time
// deterministically. All randomness comes from one seeded generator.
//
// An [Endpoint] is a number without a modem: it sends and receives TPDUs
// directly and costs no goroutine, for fleets of thousands of simulated
// devices beside a few AT modems.
//
// A [Modem] is a virtual modem attached to a Network under one MSISDN. It
// speaks the TS 27.005 PDU-mode SMS commands (+CMGF, +CSMS, +CPMS, +CNMI,
// +CMGS, +CMGR, +CMGL, +CMGD, +CMGW, +CNMA, +CSCA) and the TS 27.007
// basics (+CGMI, +CGMM, +CGMR, +CGSN, +CIMI, +CNUM, +CSQ, +CREG, +CEREG,
// +CPIN, +CMEE, +CFUN, E, V, Z, I, +CSCS, +CGATT) with the answers of a
// vendor [Profile]: the TS 27.005 ones (generic, SIMCom SIM800/SIM7600,
// Quectel EC25/BG96, u-blox SARA-R4/U2, see [StandardProfiles]) and the
// vendor dialects ([DialectProfiles]: Huawei, ZTE, Wavecom, Telit,
// Cinterion, Nordic nRF91: line ends, URCs inside answers, final result
// codes of their own, +CPIN? without OK, two-memory +CPMS, status reports
// in SR with an empty <stat>, direct-only delivery).
//
// Served over an in-memory pipe ([Modem.Pipe]) for unit tests or over a
// pseudo-terminal ([Modem.OpenPTY], on Linux, macOS and FreeBSD), it is
// driven by real serial code and third-party tools unchanged: gammu,
// gammu-smsd, smsd (smstools) and gsmsendsms (gsm-utils) (ESC CR answers
// OK, +CSCS=? lists HEX, a NUL after AT+CMGS=<n> is ignored).
//
// Faults: +CMS ERROR injection ([Modem.InjectCMSError]), a modem that
// hangs mid-command ([Modem.Hang]), unplug and replug (the driver sees EOF
// or EIO), full message storage, a configurable time per +CMGS, and for
// the driver's loss paths raw storage entries ([Modem.StoreRaw]), lines put
// inside answers ([Modem.Interleave]), wrong <length>s, output in small
// pieces, stuck echo.
//
// Cost. The network runs no goroutine of its own: pending deliveries sit in one
// timer heap behind a single Clock timer, and a delivered message leaves
// nothing behind. A plugged-in modem runs two goroutines (reader and
// session), stopped by [Modem.Unplug] or [Network.Close]; an unplugged modem and an
// Endpoint run none. Every queue is bounded: the SMSC store ([WithMaxStored],
// [NetworkStats].Stored), a modem's pending offers (256, then the SMSC
// retries: ModemStats.Refused), the +CNMI mode 0 buffer (256,
// ModemStats.URCsDropped), the command line (560 bytes) and the PDU after a
// prompt (400 hex digits).
//
// # Hand-written versus library
//
// TPDU decoding and encoding (SMS-SUBMIT in, SMS-DELIVER and
// SMS-STATUS-REPORT out, the SMSC address prefix of PDU mode) use
// github.com/warthog618/sms (encoding/tpdu, encoding/pdumode), the same
// library the driver side uses, so both sides agree on TS 23.040. Pseudo
// terminals come from github.com/creack/pty. The AT command parser, the
// command interpreter, the SMSC scheduler and the fault model are
// hand-written: no Go library simulates a modem, and the point of the
// simulator is to reproduce the exact byte-level dialect (echo, prompts,
// unsolicited result codes, error formats) a driver meets on real hardware.
package sim
