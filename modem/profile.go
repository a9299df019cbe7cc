package modem

import (
	"strings"
	"time"
)

// Profile holds the vendor quirks the driver needs: extra init commands,
// the +CNMI routing, whether +CMT/+CDS need +CNMA, the message storage and
// command timings. Profiles are values; callers may copy and adjust one.
type Profile struct {
	// Name identifies the profile (see Profiles): "generic", "simcom-sim800",
	// "simcom-sim7600", "quectel-ec2x", "quectel-bg9x", "ublox-sara".
	Name string
	// Init are extra commands (without "AT") sent after the common init.
	Init []string
	// CSMS is the +CSMS service: 0 (phase 2) or 1 (phase 2+, +CMT and +CDS
	// must be acknowledged with +CNMA).
	CSMS int
	// CNMI is the parameter list of +CNMI, e.g. "2,1,0,2,0": mt=1 routes
	// SMS-DELIVERs to storage with +CMTI, mt=2 sends them directly as +CMT;
	// ds=1 sends status reports as +CDS, ds=2 stores them with +CDSI.
	CNMI string
	// Storage is the preferred message storage for +CPMS ("SM", "ME", "MT").
	Storage string
	// SendTimeout bounds one +CMGS (prompt, PDU and network answer).
	SendTimeout time.Duration
	// CommandTimeout bounds every other command.
	CommandTimeout time.Duration
}

// DirectDelivery reports whether SMS-DELIVERs arrive as +CMT (mt=2 or 3).
func (p Profile) DirectDelivery() bool { return p.cnmiField(1) == "2" || p.cnmiField(1) == "3" }

// DirectStatusReports reports whether status reports arrive as +CDS (ds=1).
func (p Profile) DirectStatusReports() bool { return p.cnmiField(3) == "1" }

// NeedsCNMA reports whether direct deliveries must be acknowledged.
func (p Profile) NeedsCNMA() bool { return p.CSMS == 1 }

func (p Profile) cnmiField(i int) string {
	f := strings.Split(p.CNMI, ",")
	if i < len(f) {
		return strings.TrimSpace(f[i])
	}
	return ""
}

// The built-in profiles, reached through Profiles and ProfileByName (which
// return copies, so the package holds no mutable state). Values follow
// TS 27.005 and the vendors' AT command manuals.
var (
	// profileGeneric is a plain TS 27.005 modem: messages and status
	// reports stored in SIM memory and announced by +CMTI/+CDSI, read with
	// +CMGR and deleted with +CMGD after the consumer accepted them.
	profileGeneric = Profile{
		Name: "generic", CSMS: 0, CNMI: "2,1,0,2,0", Storage: "SM",
		SendTimeout: 60 * time.Second, CommandTimeout: 5 * time.Second,
	}
	// profileSIM800 is SIMCom SIM800/SIM900 (2G): SIM storage.
	profileSIM800 = Profile{
		Name: "simcom-sim800", CSMS: 0, CNMI: "2,1,0,2,0", Storage: "SM",
		SendTimeout: 60 * time.Second, CommandTimeout: 5 * time.Second,
	}
	// profileSIM7600 is SIMCom SIM7500/SIM7600 (LTE): ME storage.
	profileSIM7600 = Profile{
		Name: "simcom-sim7600", CSMS: 0, CNMI: "2,1,0,2,0", Storage: "ME",
		SendTimeout: 60 * time.Second, CommandTimeout: 5 * time.Second,
	}
	// profileEC2x is Quectel EC2x/EG2x (LTE): URCs routed to the AT port,
	// ME storage.
	profileEC2x = Profile{
		Name: "quectel-ec2x", Init: []string{`+QURCCFG="urcport","usbat"`}, CSMS: 0, CNMI: "2,1,0,2,0",
		Storage: "ME", SendTimeout: 120 * time.Second, CommandTimeout: 5 * time.Second,
	}
	// profileBG9x is Quectel BG95/BG96 (LTE-M/NB-IoT): status reports are
	// sent directly (+CDS) and must be acknowledged, so +CSMS=1.
	profileBG9x = Profile{
		Name: "quectel-bg9x", CSMS: 1, CNMI: "2,1,0,1,0", Storage: "ME",
		SendTimeout: 120 * time.Second, CommandTimeout: 5 * time.Second,
	}
	// profileSARA is u-blox SARA-U2/R4/R5: direct +CMT delivery acknowledged
	// with +CNMA (phase 2+), status reports direct as +CDS.
	profileSARA = Profile{
		Name: "ublox-sara", CSMS: 1, CNMI: "2,2,0,1,0", Storage: "ME",
		SendTimeout: 180 * time.Second, CommandTimeout: 10 * time.Second,
	}
)

// Profiles returns copies of the built-in profiles: "generic" (plain
// TS 27.005: +CMTI/+CDSI into SIM storage), "simcom-sim800",
// "simcom-sim7600", "quectel-ec2x", "quectel-bg9x" (+CDS direct, +CSMS=1)
// and "ublox-sara" (+CMT and +CDS direct with +CNMA, +CSMS=1).
func Profiles() []Profile {
	ps := []Profile{profileGeneric, profileSIM800, profileSIM7600, profileEC2x, profileBG9x, profileSARA}
	for i := range ps {
		ps[i].Init = append([]string(nil), ps[i].Init...)
	}
	return ps
}

// ProfileByName returns the built-in profile with that name.
func ProfileByName(name string) (Profile, bool) {
	for _, p := range Profiles() {
		if strings.EqualFold(p.Name, name) {
			return p, true
		}
	}
	return Profile{}, false
}

// DetectProfile picks a profile from the +CGMI manufacturer and +CGMM model
// strings; unknown modems get profileGeneric.
func DetectProfile(manufacturer, model string) Profile {
	m := strings.ToUpper(manufacturer)
	mod := strings.ToUpper(model)
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
	}
	return mustProfile("generic")
}

// mustProfile returns a copy of a built-in profile; name is always one of
// the built-in names.
func mustProfile(name string) Profile {
	p, _ := ProfileByName(name)
	return p
}
