// Package hwtest is the hardware-in-the-loop suite of m2mbearer: two real
// modems (or two simulated ones on pseudo-terminals) exchanging binary SMS
// through the real driver.
//
// # Usage
//
// On hardware, name the serial devices and their SIMs' numbers:
//
//	M2M_MODEM_A=/dev/ttyUSB2 M2M_MODEM_A_MSISDN=+4915100000001 \
//	M2M_MODEM_B=/dev/ttyUSB5 M2M_MODEM_B_MSISDN=+4915100000002 \
//	M2M_HWTEST_REPORT=lab.txt go test -v ./hwtest
//
// (M2M_MODEM_A_PIN and M2M_MODEM_B_PIN when the SIMs ask for one.) Without
// them it starts two simulated modems (modem/sim) on pseudo-terminals and
// opens them by path, so the real serial code path (the driver's
// non-blocking termios port, as for /dev/ttyUSB*) runs in CI too;
// M2M_HWTEST_SIM_A and M2M_HWTEST_SIM_B name the simulated dialects
// (modem/sim profile names: ec25 and sim800 by default; huawei, zte,
// wavecom, telit, cinterion, nrf91, ...) and the suite checks that the
// driver detects the matching profile.
//
// # Design
//
// The suite checks identity, health, a single SMS round trip, a 3-segment
// binary concatenated round trip (segmented and reassembled by
// bearer/sms/pdu), a status report correlated by TP-MR, and recovery
// after an unplug (simulator only). It prints a [Report] a lab keeps
// (modem model and firmware, signal, timings and SMS counts; [ModemInfo])
// via t.Log and, when M2M_HWTEST_REPORT names a file, into that file.
//
// Note for labs: the suite acknowledges (deletes) every message it finds
// stored on the two SIMs, including old ones. What the driver cannot read
// is not deleted unrecorded: it goes to a quarantine (a bbolt file in the
// test's temporary directory), whose entries the report lists with their
// raw lines; they show a lab the quirks of its modems.
package hwtest
