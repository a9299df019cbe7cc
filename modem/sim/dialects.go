package sim

// The vendor dialects. Each follows the same sources as the driver's
// profile of that vendor (modem/profile.go, README "Vendor profiles"): the
// quirk, not the whole command set, is what is simulated.

// huaweiProfile: Huawei E-series stick (E1752/E3372 family): lines end CR
// CR LF, unknown commands end with COMMAND NOT SUPPORT and a surplus
// parameter with TOO MANY PARAMETERS (Huawei AT Command Interface
// Specification §1.3), periodic ^RSSI/^MODE reports inside answers.
func huaweiProfile() Profile {
	p := genericProfile()
	p.Name, p.Manufacturer, p.Model, p.Revision = "huawei", "huawei", "E1752", "11.126.13.00.00"
	p.DriverProfile = "huawei"
	p.CNMIModes, p.CNMIMT, p.CNMIBM, p.CNMIDS, p.CNMIBFR = []int{0, 1, 2}, []int{0, 1, 2, 3}, []int{0, 2}, []int{0, 1, 2}, []int{0, 1}
	p.CNMIDefault = [5]int{0, 0, 0, 0, 0}
	p.Storages = []string{"SM", "ME", "MT", "SR"}
	p.BootURCs = []string{"^BOOT:12345678,0,0,0,6"}
	p.LineEnd = "\r\r\n"
	p.Unsupported = "COMMAND NOT SUPPORT"
	p.TooManyParams = "TOO MANY PARAMETERS"
	p.Noise = []string{"^RSSI: 14", "^MODE: 5,4", "^DSFLOWRPT: 0000012A,00000000,00000000,0000000000000000,0000000000000000,00000000,00000000"}
	return p
}

// zteProfile: ZTE K3565-Z (python-gsmmodem test/fakemodems.py): status
// reports stored in the SR memory and listed with an empty <stat>
// (+CMGR: ,,27), +ZUSIMR/+ZDONR codes.
func zteProfile() Profile {
	p := genericProfile()
	p.Name, p.Manufacturer, p.Model, p.Revision = "zte", "ZTE INCORPORATED", "K3565-Z", "BD_P673A2V1.0.0B09"
	p.DriverProfile = "zte"
	p.Storages = []string{"SM", "ME", "MT", "SR"}
	p.ReportStorage = "SR"
	p.EmptyReportStat = true
	p.ReadyURCs = []string{"+ZUSIMR:2", "+ZDONR: \"Vodafone\",655,1,\"CS_PS\",\"ROAM_OFF\""}
	p.Noise = []string{"+ZPASR: \"UMTS\""}
	return p
}

// wavecomProfile: Wavecom MULTIBAND 900E 1800 (python-gsmmodem
// WavecomMultiband900E1800): +CPIN? without OK, identity with spaces
// around, +CPMS with two memories, +CNMI with four parameters, +WIND
// indications (Wavecom AT Commands Interface Guide §7.1).
func wavecomProfile() Profile {
	p := genericProfile()
	p.Name, p.Manufacturer, p.Model, p.Revision = "wavecom", "WAVECOM MODEM", "MULTIBAND  900E  1800", "641b09gg.Q2403A"
	p.DriverProfile = "sierra-wavecom"
	p.CNMIModes, p.CNMIMT, p.CNMIBM, p.CNMIDS, p.CNMIBFR = []int{0, 1, 2, 3}, []int{0, 1, 2, 3}, []int{0, 2}, []int{0, 1, 2}, []int{0, 1}
	p.CNMIDefault = [5]int{0, 0, 0, 0, 0}
	p.Storages = []string{"SM", "BM", "SR"}
	p.CPINNoOK = true
	p.PadIdentity = true
	p.StorageMems = 2
	p.BootURCs = []string{"+WIND: 1"}
	p.ReadyURCs = []string{"+WIND: 4"}
	p.Noise = []string{"+WIND: 7"}
	return p
}

// telitProfile: Telit LE910: +CMGR with a quoted empty <alpha> (Telit
// HE910 in ModemManager's tests), #QSS SIM status codes.
func telitProfile() Profile {
	p := genericProfile()
	p.Name, p.Manufacturer, p.Model, p.Revision = "telit", "Telit", "LE910-EU1", "20.00.403"
	p.DriverProfile = "telit"
	p.Storages = []string{"SM", "ME"}
	p.ReadyURCs = []string{"#QSS: 1"}
	p.Noise = []string{"#QSS: 3"}
	return p
}

// cinterionProfile: Cinterion EHS6: ^SYSSTART at power-up, +CIEV events
// inside answers.
func cinterionProfile() Profile {
	p := genericProfile()
	p.Name, p.Manufacturer, p.Model, p.Revision = "cinterion", "Cinterion", "EHS6", "REVISION 03.001"
	p.DriverProfile = "cinterion"
	p.Storages = []string{"SM", "ME", "MT"}
	p.BootURCs = []string{"^SYSSTART"}
	p.Noise = []string{"+CIEV: signal,2", "+CIEV: service,1"}
	return p
}

// nrf91Profile: Nordic nRF9160: SMS only as direct +CMT/+CDS acknowledged
// with +CNMA=1, +CNMI=3,2,0,1 (or 0,0,0,0), +CPMS with two "TA" memories,
// no message storage, % notifications.
func nrf91Profile() Profile {
	p := genericProfile()
	p.Name, p.Manufacturer, p.Model, p.Revision = "nrf91", "Nordic Semiconductor ASA", "nRF9160-SICA", "mfw_nrf9160_1.3.5"
	p.DriverProfile = "nordic-nrf91"
	p.CNMIModes, p.CNMIMT, p.CNMIBM, p.CNMIDS, p.CNMIBFR = []int{0, 3}, []int{0, 2}, []int{0}, []int{0, 1}, []int{0}
	p.CNMIDefault = [5]int{0, 0, 0, 0, 0}
	p.CSMSModes = []int{0}
	p.Storages = []string{"TA"}
	p.StorageMems = 2
	p.NoStorage = true
	p.AckAlways = true
	p.Noise = []string{"%CESQ: 54,2,16,2"}
	return p
}
