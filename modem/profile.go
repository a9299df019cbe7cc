package modem

import (
	"strings"
	"time"

	"github.com/m2mbearer/m2mbearer/modem/at"
)

// Profile holds the vendor quirks the driver needs: extra init commands,
// the +CNMI routing, whether +CMT/+CDS need +CNMA, the message storage, the
// vendor's own final result codes and unsolicited result codes, and command
// timings. Profiles are values; callers may copy and adjust one.
//
// The zero Profile has no quirks, not even the generic ones: start from a
// built-in profile (ProfileByName) and adjust it.
type Profile struct {
	// Name identifies the profile (see Profiles).
	Name string
	// Vendor names the modems the profile is for, for people.
	Vendor string
	// Init are extra commands (without "AT") sent after the common init,
	// best effort: a refusal is logged, not fatal.
	Init []string
	// CSMS is the +CSMS service: 0 (phase 2) or 1 (phase 2+, +CMT and +CDS
	// must be acknowledged with +CNMA); -1 sends no +CSMS (the modem has
	// one fixed behaviour, see DirectAck).
	CSMS int
	// DirectAck is true when +CMT and +CDS must be acknowledged with +CNMA
	// whatever +CSMS says (Nordic nRF91).
	DirectAck bool
	// AckCommand acknowledges a direct delivery (default "+CNMA"; the
	// nRF91 wants "+CNMA=1").
	AckCommand string
	// CNMI is the parameter list of +CNMI, e.g. "2,1,0,2,0": mt=1 routes
	// SMS-DELIVERs to storage with +CMTI, mt=2 sends them directly as +CMT;
	// ds=1 sends status reports as +CDS, ds=2 stores them with +CDSI.
	CNMI string
	// Storage is the preferred message storage for +CPMS ("SM", "ME", "MT").
	Storage string
	// StorageMems is how many memories +CPMS= takes: 3 (TS 27.005, the
	// default when 0) or 2 (old Wavecom firmware refuses a third).
	StorageMems int
	// NoStorage is true for modems that keep no messages (everything comes
	// as +CMT/+CDS): no sweep, no +CMGR/+CMGD.
	NoStorage bool
	// RearmOn are unsolicited lines after which +CNMI is sent again (the
	// nRF91 reports "+CMS ERROR: 524" when it dropped the SMS client).
	RearmOn []string
	// FinalCodes are the vendor's final result codes besides the standard
	// ones; they end a command at once with a *ResultCodeError.
	FinalCodes []string
	// URCPrefixes and URCTexts are the vendor's unsolicited result codes
	// (prefixes with ':', whole lines), routed out of every answer. Lines
	// starting with ^ * # % $ ! are vendor URCs whatever the profile.
	URCPrefixes, URCTexts []string
	// Quirks documents what the profile handles and where each quirk is
	// written down (a manual section, or the public test data it comes
	// from). The README's profile table is made from it.
	Quirks []Quirk
	// SendTimeout bounds one +CMGS (prompt, PDU and network answer).
	SendTimeout time.Duration
	// CommandTimeout bounds every other command.
	CommandTimeout time.Duration
}

// Quirk is one vendor behaviour a Profile handles, and its source.
type Quirk struct {
	What   string
	Source string
}

// DirectDelivery reports whether SMS-DELIVERs arrive as +CMT (mt=2 or 3).
func (p Profile) DirectDelivery() bool { return p.cnmiField(1) == "2" || p.cnmiField(1) == "3" }

// DirectStatusReports reports whether status reports arrive as +CDS (ds=1).
func (p Profile) DirectStatusReports() bool { return p.cnmiField(3) == "1" }

// NeedsCNMA reports whether direct deliveries must be acknowledged.
func (p Profile) NeedsCNMA() bool { return p.CSMS == 1 || p.DirectAck }

// ackCommand returns the +CNMA command that acknowledges a direct delivery.
func (p Profile) ackCommand() string {
	if p.AckCommand != "" {
		return p.AckCommand
	}
	return "+CNMA"
}

// cpmsSet returns the +CPMS= command that selects the preferred storage.
func (p Profile) cpmsSet() string {
	n := p.StorageMems
	if n < 1 || n > 3 {
		n = 3
	}
	mems := make([]string, n)
	for i := range mems {
		mems[i] = `"` + p.Storage + `"`
	}
	return "+CPMS=" + strings.Join(mems, ",")
}

// Dialect returns the AT engine dialect of the profile.
func (p Profile) Dialect() at.Dialect {
	return at.Dialect{Finals: p.FinalCodes, URCPrefixes: p.URCPrefixes, URCTexts: p.URCTexts}
}

func (p Profile) cnmiField(i int) string {
	f := strings.Split(p.CNMI, ",")
	if i < len(f) {
		return strings.TrimSpace(f[i])
	}
	return ""
}

// Sources of the quirks, named once.
const (
	srcGSMModemFakes = "python-gsmmodem test/fakemodems.py"
	srcGSMModemTests = "python-gsmmodem test/test_modem.py"
	srcMMHelpers     = "ModemManager src/tests/test-modem-helpers.c"
	srcCorpus        = "field corpus at-lines.tsv"
)

// The built-in profiles, reached through Profiles and ProfileByName (which
// return copies, so the package holds no mutable state). Values follow
// TS 27.005 and the vendors' AT command manuals; none has been checked on
// hardware in this project (hwtest on a real modem has the last word).
func builtinProfiles() []Profile {
	return []Profile{
		{
			Name: "generic", Vendor: "any TS 27.005 modem", CSMS: 0, CNMI: "2,1,0,2,0", Storage: "SM",
			Quirks: []Quirk{
				{"messages and status reports stored in SIM memory, announced by +CMTI/+CDSI, read with +CMGR, deleted with +CMGD after the consumer stored them", "TS 27.005 §3.4.1, §3.4.3, §3.5.4"},
			},
			SendTimeout: 60 * time.Second, CommandTimeout: 5 * time.Second,
		},
		{
			Name: "huawei", Vendor: "Huawei E-series sticks, MU/ME modules", CSMS: 0, CNMI: "2,1,0,2,0", Storage: "SM",
			Init:       []string{"^CURC=0"},
			FinalCodes: []string{"COMMAND NOT SUPPORT", "TOO MANY PARAMETERS"},
			URCPrefixes: []string{"^RSSI:", "^MODE:", "^BOOT:", "^DSFLOWRPT:", "^SRVST:", "^SIMST:", "^HCSQ:", "^SYSINFOEX:",
				"^CEND:", "^ORIG:", "^CONF:", "^CONN:"},
			Quirks: []Quirk{
				{"unknown commands end with COMMAND NOT SUPPORT, a surplus parameter with TOO MANY PARAMETERS", "Huawei AT Command Interface Specification §1.3 Interface Change Principles; " + srcGSMModemFakes + " HuaweiE1752"},
				{"lines end CR CR LF", srcGSMModemFakes + " HuaweiE1752 (+CLAC)"},
				{"periodic ^RSSI, ^MODE, ^DSFLOWRPT, ^BOOT reports interleaved in answers; AT^CURC=0 turns the periodic ones off", "Huawei AT Command Interface Specification, ^CURC and the ^ URCs"},
			},
			SendTimeout: 60 * time.Second, CommandTimeout: 5 * time.Second,
		},
		{
			Name: "zte", Vendor: "ZTE MF/K-series sticks and modules", CSMS: 0, CNMI: "2,1,0,2,0", Storage: "SM",
			URCPrefixes: []string{"+ZUSIMR:", "+ZDONR:", "+ZPASR:", "+ZEND:", "+ZMTIME:"},
			Quirks: []Quirk{
				{"stored status reports listed with an empty <stat> (+CMGR: ,,27): delivered by their TP-MTI", srcGSMModemTests + ":1957 (ZTE K3565-Z); " + srcCorpus + " cmgr-02"},
				{"status reports stored in the SR memory (+CDSI: \"SR\",n), read there", srcGSMModemFakes + " ZteK3565Z (+CPMS lists SR)"},
				{"+ZUSIMR, +ZDONR, +ZPASR, +ZEND unsolicited codes", "ModemManager plugins/zte"},
			},
			SendTimeout: 60 * time.Second, CommandTimeout: 5 * time.Second,
		},
		{
			Name: "sierra-wavecom", Vendor: "Sierra Wireless / Wavecom (Q2xxx, Fastrack, AirPrime)", CSMS: 0, CNMI: "2,1,0,2", Storage: "SM",
			StorageMems: 2,
			URCPrefixes: []string{"+WIND:", "+STIN:", "*PSUTTZ:"},
			Quirks: []Quirk{
				{"AT+CPIN? answered with +CPIN: READY and no OK: the answer ends on the +CPIN line after a grace period", srcGSMModemFakes + " WavecomMultiband900E1800"},
				{"+CPMS takes two memories (+CPMS=\"SM\",\"SM\"; a third is refused) and answers +CPMS: 14,50,14,50", srcGSMModemFakes + " WavecomMultiband900E1800; " + srcCorpus + " cpms-04"},
				{"+CNMI set with four parameters", srcGSMModemFakes + " WavecomMultiband900E1800"},
				{"+WIND general indications", "Wavecom AT Commands Interface Guide §7.1 General Indications +WIND"},
				{"+CGMI/+CGMM answers with a leading space, +CGMR answered ERROR", srcGSMModemFakes + " WavecomMultiband900E1800; gammu tests/at-model/01.dump"},
			},
			SendTimeout: 60 * time.Second, CommandTimeout: 5 * time.Second,
		},
		{
			Name: "telit", Vendor: "Telit xE910, LE910, ME910", CSMS: 0, CNMI: "2,1,0,2,0", Storage: "SM",
			URCPrefixes: []string{"#QSS:", "#MONI:"},
			Quirks: []Quirk{
				{"+CMGR with a quoted empty <alpha> (+CMGR: 0,\"\",50)", srcMMHelpers + ":461 (Telit HE910); " + srcCorpus + " cmgr-03"},
				{"registration read responses with <n>=0 still carrying <lac>,<ci>,<AcT>", "gammu tests/at-creg/telit.dump; " + srcCorpus + " creg-29"},
				{"#QSS SIM status and other # unsolicited codes", "Telit AT Commands Reference Guide 80000ST10025a, AT#QSS"},
			},
			SendTimeout: 60 * time.Second, CommandTimeout: 5 * time.Second,
		},
		{
			Name: "cinterion", Vendor: "Cinterion / Gemalto / Thales (BGS, EHS, ELS, PLS)", CSMS: 0, CNMI: "2,1,0,2,1", Storage: "SM",
			URCPrefixes: []string{"^SYSSTART", "^SBC:", "^SHUTDOWN", "^SIS:", "+CIEV:"},
			URCTexts:    []string{"^SYSSTART", "^SHUTDOWN"},
			Quirks: []Quirk{
				{"^SYSSTART after power-up and reset, ^SBC undervoltage and ^SHUTDOWN codes at any time", "Cinterion AT Command Set (EHS6/ELS61/BGS5), ^SYSSTART, AT^SBC, AT^SMSO"},
				{"+CIEV indicator events (AT+CMER) interleaved in answers", "Cinterion AT Command Set, AT+CMER / +CIEV"},
			},
			SendTimeout: 60 * time.Second, CommandTimeout: 5 * time.Second,
		},
		{
			Name: "simcom-sim800", Vendor: "SIMCom SIM800/SIM900 (2G)", CSMS: 0, CNMI: "2,1,0,2,0", Storage: "SM",
			URCTexts: []string{"Call Ready", "SMS Ready"},
			Quirks: []Quirk{
				{"RDY, +CFUN: 1, +CPIN: READY, Call Ready, SMS Ready at power-up (also in the middle of an answer after a brown-out)", "SIM800 Series AT Command Manual, summary of unsolicited result codes"},
				{"+CGMR answered as Revision:<version>", "SIM800 Series AT Command Manual, AT+CGMR"},
			},
			SendTimeout: 60 * time.Second, CommandTimeout: 5 * time.Second,
		},
		{
			Name: "simcom-sim7600", Vendor: "SIMCom SIM7500/SIM7600 (LTE)", CSMS: 0, CNMI: "2,1,0,2,0", Storage: "ME",
			Quirks: []Quirk{
				{"RDY, +CPIN: READY, SMS DONE, PB DONE at power-up; +CGMR answered as +CGMR: <version>", "SIM7500/SIM7600 Series AT Command Manual"},
			},
			SendTimeout: 60 * time.Second, CommandTimeout: 5 * time.Second,
		},
		{
			Name: "quectel-ec2x", Vendor: "Quectel EC2x/EG2x (LTE)", Init: []string{`+QURCCFG="urcport","usbat"`}, CSMS: 0, CNMI: "2,1,0,2,0",
			Storage: "ME", URCPrefixes: []string{"+QIND:", "+QUSIM:", "+QUSIMSTAT:"},
			Quirks: []Quirk{
				{"URCs go to the USB AT port only after AT+QURCCFG=\"urcport\",\"usbat\"", "Quectel EC2x AT Commands Manual, AT+QURCCFG"},
				{"+QIND: SMS DONE / PB DONE and +QUSIM at power-up", "Quectel EC2x AT Commands Manual, +QIND"},
			},
			SendTimeout: 120 * time.Second, CommandTimeout: 5 * time.Second,
		},
		{
			Name: "quectel-bg9x", Vendor: "Quectel BG95/BG96 (LTE-M/NB-IoT)", CSMS: 1, CNMI: "2,1,0,1,0", Storage: "ME",
			URCPrefixes: []string{"+QIND:", "+QUSIM:"},
			Quirks: []Quirk{
				{"status reports sent directly (+CDS), acknowledged with +CNMA under +CSMS=1", "Quectel BG96 AT Commands Manual, AT+CNMI / AT+CNMA; TS 27.005 §3.4.4"},
			},
			SendTimeout: 120 * time.Second, CommandTimeout: 5 * time.Second,
		},
		{
			Name: "ublox-sara", Vendor: "u-blox SARA-U2/R4/R5", CSMS: 1, CNMI: "2,2,0,1,0", Storage: "ME",
			URCPrefixes: []string{"+UUSORD:", "+UUPSDA:", "+UUPSDD:"},
			Quirks: []Quirk{
				{"direct +CMT and +CDS delivery acknowledged with +CNMA (phase 2+)", "u-blox SARA-R4/U2 AT Commands Manual, +CNMI / +CNMA; TS 27.005 §3.4.4"},
			},
			SendTimeout: 180 * time.Second, CommandTimeout: 10 * time.Second,
		},
		{
			Name: "nordic-nrf91", Vendor: "Nordic nRF9160 / nRF91x1 (LTE-M/NB-IoT)", CSMS: -1, DirectAck: true, AckCommand: "+CNMA=1",
			CNMI: "3,2,0,1", Storage: "TA", StorageMems: 2, NoStorage: true,
			RearmOn: []string{"+CMS ERROR: 524"},
			Quirks: []Quirk{
				{"SMS only as direct +CMT/+CDS, each acknowledged with AT+CNMA=1; the SMS client registers with AT+CNMI=3,2,0,1; no message storage to sweep", "nRF9160 AT Commands Reference Guide, +CMT and +CNMI; nRF Connect SDK lib/sms"},
				{"+CPMS takes two memories, \"TA\"", "nRF Connect SDK tests (AT+CPMS=\"TA\",\"TA\" → +CPMS: 0,3,0,3)"},
				{"an unsolicited +CMS ERROR: 524 means the SMS client was unregistered: +CNMI is sent again", "nRF9160 AT Commands Reference Guide, +CMT (CMS error 524)"},
				{"% vendor notifications (%XSIM, %CESQ, %MDMEV)", "nRF9160 AT Commands Reference Guide"},
			},
			SendTimeout: 120 * time.Second, CommandTimeout: 10 * time.Second,
		},
	}
}

// Profiles returns copies of the built-in profiles; see README for the
// table of their quirks and sources.
func Profiles() []Profile {
	ps := builtinProfiles()
	for i := range ps {
		ps[i] = ps[i].clone()
	}
	return ps
}

func (p Profile) clone() Profile {
	cp := func(s []string) []string { return append([]string(nil), s...) }
	p.Init, p.FinalCodes, p.URCPrefixes, p.URCTexts, p.RearmOn = cp(p.Init), cp(p.FinalCodes), cp(p.URCPrefixes), cp(p.URCTexts), cp(p.RearmOn)
	p.Quirks = append([]Quirk(nil), p.Quirks...)
	return p
}

// ProfileByName returns the built-in profile with that name
// (case-insensitive).
func ProfileByName(name string) (Profile, bool) {
	for _, p := range Profiles() {
		if strings.EqualFold(p.Name, name) {
			return p, true
		}
	}
	return Profile{}, false
}

// DetectProfile picks a profile from the +CGMI manufacturer and +CGMM model
// strings; unknown modems get the generic profile.
func DetectProfile(manufacturer, model string) Profile {
	m := strings.ToUpper(strings.TrimSpace(manufacturer))
	mod := strings.ToUpper(strings.TrimSpace(model))
	switch {
	case strings.Contains(m, "SIMCOM") || strings.Contains(mod, "SIMCOM") ||
		strings.HasPrefix(mod, "SIM8") || strings.HasPrefix(mod, "SIM9") || strings.HasPrefix(mod, "SIM7"):
		if strings.Contains(mod, "SIM7") || strings.Contains(mod, "A76") {
			return mustProfile("simcom-sim7600")
		}
		return mustProfile("simcom-sim800")
	case strings.Contains(m, "QUECTEL") || strings.HasPrefix(mod, "EC2") || strings.HasPrefix(mod, "EG2") || strings.HasPrefix(mod, "BG9"):
		if strings.HasPrefix(mod, "BG9") {
			return mustProfile("quectel-bg9x")
		}
		return mustProfile("quectel-ec2x")
	case strings.Contains(m, "U-BLOX") || strings.Contains(m, "UBLOX") || strings.HasPrefix(mod, "SARA"):
		return mustProfile("ublox-sara")
	case strings.Contains(m, "HUAWEI"):
		return mustProfile("huawei")
	case strings.HasPrefix(m, "ZTE"):
		return mustProfile("zte")
	case strings.Contains(m, "WAVECOM") || strings.Contains(m, "SIERRA"):
		return mustProfile("sierra-wavecom")
	case strings.Contains(m, "TELIT"):
		return mustProfile("telit")
	case strings.Contains(m, "CINTERION") || strings.Contains(m, "THALES") || strings.Contains(m, "GEMALTO") || strings.Contains(m, "SIEMENS"):
		return mustProfile("cinterion")
	case strings.Contains(m, "NORDIC") || strings.HasPrefix(mod, "NRF91"):
		return mustProfile("nordic-nrf91")
	}
	return mustProfile("generic")
}

// mustProfile returns a copy of a built-in profile; name is always one of
// the built-in names.
func mustProfile(name string) Profile {
	p, _ := ProfileByName(name)
	return p
}

// allURCs is the union of the built-in profiles' unsolicited codes: used
// before the profile is known (the identity commands come before the
// detection), and kept afterwards, since another vendor's URC is no part
// of any answer either.
func allURCs() at.Dialect {
	var d at.Dialect
	for _, p := range builtinProfiles() {
		d.URCPrefixes = append(d.URCPrefixes, p.URCPrefixes...)
		d.URCTexts = append(d.URCTexts, p.URCTexts...)
	}
	return d
}

// dialectOf returns the engine dialect for p: its final codes and URCs
// and every built-in profile's URCs.
func dialectOf(p Profile) at.Dialect { return allURCs().Merge(p.Dialect()) }
