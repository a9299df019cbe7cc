package sim

import "strings"

// Profile describes how one modem model answers: identity strings, the
// +CNMI and +CSMS values it accepts, its message storages and its
// unsolicited result code habits. Profiles are plain values; Profiles and
// ProfileByName return fresh copies that a test may modify.
//
// The identity strings have the form real units print (a bare line for
// +CGMI/+CGMM; some vendors prefix +CGMR answers); the revision strings are
// examples of that vendor's format, not a claim about a firmware. The
// +CNMI ranges, boot texts and index bases follow the vendors' public AT
// command manuals as far as the author knows them; they have not been
// checked against hardware in this project, so hwtest on real modems is the
// authority, and a test may adjust a Profile (it is a plain value).
type Profile struct {
	// Name is the key used by ProfileByName: "generic", "sim800",
	// "sim7600", "ec25", "bg96", "sara-r4", "sara-u2".
	Name string
	// Manufacturer, Model and Revision are the +CGMI, +CGMM and +CGMR
	// answers; RevisionPrefix is printed before Revision (e.g. "+CGMR: ").
	Manufacturer, Model, Revision, RevisionPrefix string
	// CNMIModes, CNMIMT, CNMIBM, CNMIDS and CNMIBFR list the accepted values
	// of each +CNMI parameter.
	CNMIModes, CNMIMT, CNMIBM, CNMIDS, CNMIBFR []int
	// CNMIDefault is the +CNMI setting after power-up.
	CNMIDefault [5]int
	// CSMSModes lists the accepted +CSMS <service> values.
	CSMSModes []int
	// AckWithCSMS1 is true when +CSMS=1 makes +CMT and +CDS require +CNMA
	// (TS 27.005 §3.4.1 and §3.4.4: phase 2+ acknowledgement).
	AckWithCSMS1 bool
	// Storages are the message storages, the first being the default for
	// <mem1>, <mem2> and <mem3>.
	Storages []string
	// IndexBase is the first storage index (1 on most modems).
	IndexBase int
	// BootURCs are printed once the modem is plugged in (e.g. "RDY").
	BootURCs []string
	// ReadyURCs are printed when the SIM is ready: right after BootURCs
	// when the SIM has no PIN, else after a successful +CPIN=<pin> (before
	// that, "+CPIN: SIM PIN" is printed instead).
	ReadyURCs []string

	// The fields below make the dialect of a vendor; their zero values are
	// TS 27.005/27.007 behaviour.

	// LineEnd ends every line the modem writes (default "\r\n"; Huawei
	// "\r\r\n"; "\n" and "\r" for tests). Lines also start with it.
	LineEnd string
	// CPINNoOK answers AT+CPIN? without a final OK (old Wavecom firmware).
	CPINNoOK bool
	// CPINQuoted quotes the state: +CPIN: "SIM PIN".
	CPINQuoted bool
	// PadIdentity puts a space before and after the +CGMI/+CGMM answers
	// (" WAVECOM MODEM").
	PadIdentity bool
	// Unsupported is the final result code of a command the modem does not
	// know (default ERROR; Huawei: COMMAND NOT SUPPORT).
	Unsupported string
	// TooManyParams is the final result code of a command given a surplus
	// parameter (Huawei: TOO MANY PARAMETERS); empty: the command's usual
	// error.
	TooManyParams string
	// Noise are unsolicited lines the modem writes inside answers: after
	// each +CMGR/+CMGL header (between it and its PDU line) and after the
	// first line of other multi-line answers, cycling through the list
	// (Huawei ^RSSI, ^MODE).
	Noise []string
	// ReportStorage is the memory stored status reports go to (ZTE "SR");
	// empty: <mem3>.
	ReportStorage string
	// EmptyReportStat lists stored status reports with an empty <stat>
	// (ZTE: +CMGR: ,,27).
	EmptyReportStat bool
	// StorageMems is how many memories +CPMS= takes (default 3; Wavecom
	// and nRF91: 2, a third is refused).
	StorageMems int
	// NoStorage: the modem keeps no messages. +CMGR, +CMGL and +CMGD are
	// refused; a message that cannot be routed directly (+CMT/+CDS) is
	// refused to the network (nRF91).
	NoStorage bool
	// AckAlways: +CMT and +CDS must be acknowledged with +CNMA whatever
	// +CSMS says (nRF91).
	AckAlways bool

	// DriverProfile names the profile of package modem that handles this
	// dialect, the one the driver must detect from +CGMI/+CGMM.
	DriverProfile string
}

// lineEnd returns the line terminator of the profile.
func (p Profile) lineEnd() string {
	if p.LineEnd == "" {
		return "\r\n"
	}
	return p.LineEnd
}

// storageMems returns how many memories +CPMS= takes.
func (p Profile) storageMems() int {
	if p.StorageMems < 1 || p.StorageMems > 3 {
		return 3
	}
	return p.StorageMems
}

// Profiles returns every built-in profile: the TS 27.005 ones ("generic",
// "sim800", "sim7600", "ec25", "bg96", "sara-r4", "sara-u2") and the
// vendor dialects ("huawei", "zte", "wavecom", "telit", "cinterion",
// "nrf91"); see StandardProfiles for the former alone.
func Profiles() []Profile {
	return append(StandardProfiles(), DialectProfiles()...)
}

// StandardProfiles returns the built-in profiles that answer exactly as
// TS 27.005/27.007 say (CR LF, OK after every answer, no noise).
func StandardProfiles() []Profile {
	return []Profile{
		genericProfile(), sim800Profile(), sim7600Profile(),
		ec25Profile(), bg96Profile(), saraR4Profile(), saraU2Profile(),
	}
}

// DialectProfiles returns the built-in profiles of vendors whose modems
// depart from TS 27.005/27.007 (see dialects.go): each plays the quirks
// the driver's profile of the same vendor handles.
func DialectProfiles() []Profile {
	return []Profile{huaweiProfile(), zteProfile(), wavecomProfile(), telitProfile(), cinterionProfile(), nrf91Profile()}
}

// ProfileByName returns the built-in profile called name (case-insensitive).
func ProfileByName(name string) (Profile, bool) {
	for _, p := range Profiles() {
		if strings.EqualFold(p.Name, name) {
			return p, true
		}
	}
	return Profile{}, false
}

// genericProfile is a modem that implements TS 27.005/27.007 and nothing
// more: every +CNMI value of §3.4.1, +CSMS 0 and 1.
func genericProfile() Profile {
	return Profile{
		Name: "generic", Manufacturer: "m2mbearer", Model: "SIM-27005", Revision: "1.0", DriverProfile: "generic",
		CNMIModes: []int{0, 1, 2, 3}, CNMIMT: []int{0, 1, 2, 3}, CNMIBM: []int{0, 1, 2, 3},
		CNMIDS: []int{0, 1, 2}, CNMIBFR: []int{0, 1},
		CNMIDefault: [5]int{0, 0, 0, 0, 0},
		CSMSModes:   []int{0, 1}, AckWithCSMS1: true,
		Storages: []string{"SM", "ME", "MT"}, IndexBase: 1,
	}
}

// sim800Profile: SIMCom SIM800 series, after the SIM800 Series AT Command
// Manual: with a fixed baud rate the module prints "RDY", then "+CFUN: 1",
// "+CPIN: READY", "Call Ready" and "SMS Ready" at power-up; +CGMI answers
// "SIMCOM_Ltd", +CGMM "SIMCOM_SIM800", +CGMR "Revision:<version>".
func sim800Profile() Profile {
	return Profile{
		Name: "sim800", Manufacturer: "SIMCOM_Ltd", Model: "SIMCOM_SIM800", DriverProfile: "simcom-sim800",
		Revision: "1418B04SIM800L24", RevisionPrefix: "Revision:",
		CNMIModes: []int{0, 1, 2, 3}, CNMIMT: []int{0, 1, 2, 3}, CNMIBM: []int{0, 2},
		CNMIDS: []int{0, 1, 2}, CNMIBFR: []int{0, 1},
		CNMIDefault: [5]int{2, 1, 0, 0, 0},
		CSMSModes:   []int{0, 1}, AckWithCSMS1: true,
		Storages: []string{"SM", "ME", "SM_P", "ME_P", "MT"}, IndexBase: 1,
		BootURCs:  []string{"RDY", "+CFUN: 1"},
		ReadyURCs: []string{"+CPIN: READY", "Call Ready", "SMS Ready"},
	}
}

// sim7600Profile: SIMCom SIM7500/SIM7600 series, after the SIM7500/SIM7600
// AT Command Manual: power-up texts "RDY", "+CPIN: READY", "SMS DONE",
// "PB DONE"; +CGMR answers with a "+CGMR: " prefix. Index base 0 is an
// assumption.
func sim7600Profile() Profile {
	return Profile{
		Name: "sim7600", Manufacturer: "SIMCOM INCORPORATED", Model: "SIMCOM_SIM7600E-H", DriverProfile: "simcom-sim7600",
		Revision: "LE20B04SIM7600M22", RevisionPrefix: "+CGMR: ",
		CNMIModes: []int{0, 1, 2}, CNMIMT: []int{0, 1, 2, 3}, CNMIBM: []int{0, 2},
		CNMIDS: []int{0, 1, 2}, CNMIBFR: []int{0, 1},
		CNMIDefault: [5]int{2, 1, 0, 0, 0},
		CSMSModes:   []int{0, 1}, AckWithCSMS1: true,
		Storages: []string{"SM", "ME", "MT", "SR"}, IndexBase: 0,
		BootURCs:  []string{"RDY"},
		ReadyURCs: []string{"+CPIN: READY", "SMS DONE", "PB DONE"},
	}
}

// ec25Profile: Quectel EC25, after the EC2x AT Commands Manual: power-up
// texts "RDY", "+CFUN: 1", "+CPIN: READY", "+QUSIM: 1",
// "+QIND: SMS DONE", "+QIND: PB DONE". Index base 0 is an assumption.
func ec25Profile() Profile {
	return Profile{
		Name: "ec25", Manufacturer: "Quectel", Model: "EC25", DriverProfile: "quectel-ec2x",
		Revision:  "EC25EFAR06A06M4G",
		CNMIModes: []int{0, 1, 2}, CNMIMT: []int{0, 1, 2, 3}, CNMIBM: []int{0, 2},
		CNMIDS: []int{0, 1, 2}, CNMIBFR: []int{0, 1},
		CNMIDefault: [5]int{2, 1, 0, 0, 0},
		CSMSModes:   []int{0, 1}, AckWithCSMS1: true,
		Storages: []string{"SM", "ME", "MT"}, IndexBase: 0,
		BootURCs:  []string{"RDY", "+CFUN: 1"},
		ReadyURCs: []string{"+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE", "+QIND: PB DONE"},
	}
}

// bg96Profile: Quectel BG96, modelled as the EC2x SMS dialect.
func bg96Profile() Profile {
	p := ec25Profile()
	p.Name, p.Model, p.Revision, p.DriverProfile = "bg96", "BG96", "BG96MAR02A07M1G", "quectel-bg9x"
	p.ReadyURCs = []string{"+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE"}
	return p
}

// saraR4Profile: u-blox SARA-R4: no power-up text is simulated (none is
// assumed); index base 0 is an assumption.
func saraR4Profile() Profile {
	return Profile{
		Name: "sara-r4", Manufacturer: "u-blox", Model: "SARA-R410M-02B", DriverProfile: "ublox-sara",
		Revision:  "L0.0.00.00.05.08",
		CNMIModes: []int{0, 1, 2}, CNMIMT: []int{0, 1, 2, 3}, CNMIBM: []int{0, 2},
		CNMIDS: []int{0, 1, 2}, CNMIBFR: []int{0, 1},
		CNMIDefault: [5]int{1, 0, 0, 0, 0},
		CSMSModes:   []int{0, 1}, AckWithCSMS1: true,
		Storages: []string{"ME", "SM", "MT"}, IndexBase: 0,
	}
}

// saraU2Profile: u-blox SARA-U2: as SARA-R4, with index base 1.
func saraU2Profile() Profile {
	p := saraR4Profile()
	p.Name, p.Model, p.Revision = "sara-u2", "SARA-U201", "23.60"
	p.Storages = []string{"SM", "ME", "MT"}
	p.IndexBase = 1
	return p
}

func contains(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// rangeList formats accepted values as 27.007 test-command ranges: "(0-3)".
func rangeList(vs []int) string {
	var b strings.Builder
	b.WriteByte('(')
	for i := 0; i < len(vs); {
		j := i
		for j+1 < len(vs) && vs[j+1] == vs[j]+1 {
			j++
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(itoa(vs[i]))
		if j > i+1 {
			b.WriteString("-" + itoa(vs[j]))
		} else if j == i+1 {
			b.WriteString("," + itoa(vs[j]))
		}
		i = j + 1
	}
	b.WriteByte(')')
	return b.String()
}
