package model

// Core object IDs.
const (
	SecurityID               = 0
	ServerID                 = 1
	AccessControlID          = 2
	DeviceID                 = 3
	ConnectivityMonitoringID = 4
	FirmwareUpdateID         = 5
	LocationID               = 6
	ConnectivityStatisticsID = 7
)

const (
	single = false
	multi  = true
	mand   = true
	opt    = false
)

func res(id uint16, name string, ops Operations, multiple, mandatory bool, t Type, rng, units string) Resource {
	return Resource{ID: id, Name: name, Operations: ops, Multiple: multiple, Mandatory: mandatory, Type: t, Range: rng, Units: units}
}

// Core returns fresh definitions of the core objects 0–7, written from the
// OMA definitions (LwM2M 1.1 Core Appendix E and the OMNA registry files
// 0.xml … 7.xml, object versions noted per object). Security resources have
// no operations: only a Bootstrap-Server may access them (Core §E.1).
func Core() []*Object {
	return []*Object{
		{
			ID: SecurityID, Name: "LWM2M Security", URN: "urn:oma:lwm2m:oma:0:1.1", Version: "1.1", LwM2MVersion: "1.1",
			Multiple: multi, Mandatory: mand,
			Description: "This LwM2M Object provides the keying material of a LwM2M Client appropriate to access a specified LwM2M Server.",
			Resources: []Resource{
				res(0, "LWM2M Server URI", NoOps, single, mand, String, "0..255", ""),
				res(1, "Bootstrap-Server", NoOps, single, mand, Boolean, "", ""),
				res(2, "Security Mode", NoOps, single, mand, Integer, "0..4", ""),
				res(3, "Public Key or Identity", NoOps, single, mand, Opaque, "", ""),
				res(4, "Server Public Key", NoOps, single, mand, Opaque, "", ""),
				res(5, "Secret Key", NoOps, single, mand, Opaque, "", ""),
				res(6, "SMS Security Mode", NoOps, single, opt, Integer, "0..255", ""),
				res(7, "SMS Binding Key Parameters", NoOps, single, opt, Opaque, "6", ""),
				res(8, "SMS Binding Secret Key(s)", NoOps, single, opt, Opaque, "16,32,48", ""),
				res(9, "LwM2M Server SMS Number", NoOps, single, opt, String, "", ""),
				res(10, "Short Server ID", NoOps, single, opt, Integer, "1..65534", ""),
				res(11, "Client Hold Off Time", NoOps, single, opt, Integer, "", "s"),
				res(12, "Bootstrap-Server Account Timeout", NoOps, single, opt, Integer, "", "s"),
				res(13, "Matching Type", NoOps, single, opt, Unsigned, "0..3", ""),
				res(14, "SNI", NoOps, single, opt, String, "", ""),
				res(15, "Certificate Usage", NoOps, single, opt, Unsigned, "0..3", ""),
				res(16, "DTLS/TLS Ciphersuite", NoOps, multi, opt, Unsigned, "", ""),
				res(17, "OSCORE Security Mode", NoOps, single, opt, Objlnk, "", ""),
			},
		},
		{
			ID: ServerID, Name: "LwM2M Server", URN: "urn:oma:lwm2m:oma:1:1.1", Version: "1.1", LwM2MVersion: "1.1",
			Multiple: multi, Mandatory: mand,
			Description: "This LwM2M Objects provides the data related to a LwM2M Server.",
			Resources: []Resource{
				res(0, "Short Server ID", R, single, mand, Integer, "1..65534", ""),
				res(1, "Lifetime", RW, single, mand, Integer, "", "s"),
				res(2, "Default Minimum Period", RW, single, opt, Integer, "", "s"),
				res(3, "Default Maximum Period", RW, single, opt, Integer, "", "s"),
				res(4, "Disable", E, single, opt, None, "", ""),
				res(5, "Disable Timeout", RW, single, opt, Integer, "", "s"),
				res(6, "Notification Storing When Disabled or Offline", RW, single, mand, Boolean, "", ""),
				res(7, "Binding", RW, single, mand, String, "", ""),
				res(8, "Registration Update Trigger", E, single, mand, None, "", ""),
				res(9, "Bootstrap-Request Trigger", E, single, opt, None, "", ""),
				res(10, "APN Link", RW, single, opt, Objlnk, "", ""),
				res(11, "TLS-DTLS Alert Code", R, single, opt, Unsigned, "0..255", ""),
				res(12, "Last Bootstrapped", R, single, opt, Time, "", ""),
				res(13, "Registration Priority Order", R, single, opt, Unsigned, "", ""),
				res(14, "Initial Registration Delay Timer", RW, single, opt, Unsigned, "", "s"),
				res(15, "Registration Failure Block", R, single, opt, Boolean, "", ""),
				res(16, "Bootstrap on Registration Failure", R, single, opt, Boolean, "", ""),
				res(17, "Communication Retry Count", RW, single, opt, Unsigned, "", ""),
				res(18, "Communication Retry Timer", RW, single, opt, Unsigned, "", "s"),
				res(19, "Communication Sequence Delay Timer", RW, single, opt, Unsigned, "", "s"),
				res(20, "Communication Sequence Retry Count", RW, single, opt, Unsigned, "", ""),
				res(21, "Trigger", RW, single, opt, Boolean, "", ""),
				res(22, "Preferred Transport", RW, single, opt, String, "", ""),
				res(23, "Mute Send", RW, single, opt, Boolean, "", ""),
			},
		},
		{
			ID: AccessControlID, Name: "LwM2M Access Control", URN: "urn:oma:lwm2m:oma:2", Version: "1.0", LwM2MVersion: "1.0",
			Multiple: multi, Mandatory: opt,
			Description: "Access Control Object is used to check whether the LwM2M Server has access right for performing an operation.",
			Resources: []Resource{
				res(0, "Object ID", R, single, mand, Integer, "1..65534", ""),
				res(1, "Object Instance ID", R, single, mand, Integer, "0..65535", ""),
				res(2, "ACL", RW, multi, opt, Integer, "16-bit", ""),
				res(3, "Access Control Owner", RW, single, mand, Integer, "0..65535", ""),
			},
		},
		{
			ID: DeviceID, Name: "Device", URN: "urn:oma:lwm2m:oma:3:1.1", Version: "1.1", LwM2MVersion: "1.1",
			Multiple: single, Mandatory: mand,
			Description: "This LwM2M Object provides a range of device related information which can be queried by the LwM2M Server, and a device reboot and factory reset function.",
			Resources: []Resource{
				res(0, "Manufacturer", R, single, opt, String, "", ""),
				res(1, "Model Number", R, single, opt, String, "", ""),
				res(2, "Serial Number", R, single, opt, String, "", ""),
				res(3, "Firmware Version", R, single, opt, String, "", ""),
				res(4, "Reboot", E, single, mand, None, "", ""),
				res(5, "Factory Reset", E, single, opt, None, "", ""),
				res(6, "Available Power Sources", R, multi, opt, Integer, "0..7", ""),
				res(7, "Power Source Voltage", R, multi, opt, Integer, "", ""),
				res(8, "Power Source Current", R, multi, opt, Integer, "", ""),
				res(9, "Battery Level", R, single, opt, Integer, "0..100", "/100"),
				res(10, "Memory Free", R, single, opt, Integer, "", ""),
				res(11, "Error Code", R, multi, mand, Integer, "0..32", ""),
				res(12, "Reset Error Code", E, single, opt, None, "", ""),
				res(13, "Current Time", RW, single, opt, Time, "", ""),
				res(14, "UTC Offset", RW, single, opt, String, "", ""),
				res(15, "Timezone", RW, single, opt, String, "", ""),
				res(16, "Supported Binding and Modes", R, single, mand, String, "", ""),
				res(17, "Device Type", R, single, opt, String, "", ""),
				res(18, "Hardware Version", R, single, opt, String, "", ""),
				res(19, "Software Version", R, single, opt, String, "", ""),
				res(20, "Battery Status", R, single, opt, Integer, "0..6", ""),
				res(21, "Memory Total", R, single, opt, Integer, "", ""),
				res(22, "ExtDevInfo", R, multi, opt, Objlnk, "", ""),
			},
		},
		{
			ID: ConnectivityMonitoringID, Name: "Connectivity Monitoring", URN: "urn:oma:lwm2m:oma:4:1.3", Version: "1.3", LwM2MVersion: "1.1",
			Multiple: single, Mandatory: opt,
			Description: "This LwM2M Object enables monitoring of parameters related to network connectivity.",
			Resources: []Resource{
				res(0, "Network Bearer", R, single, mand, Integer, "0..50", ""),
				res(1, "Available Network Bearer", R, multi, mand, Integer, "0..50", ""),
				res(2, "Radio Signal Strength", R, single, mand, Integer, "", ""),
				res(3, "Link Quality", R, single, opt, Integer, "", ""),
				res(4, "IP Addresses", R, multi, mand, String, "", ""),
				res(5, "Router IP Addresses", R, multi, opt, String, "", ""),
				res(6, "Link Utilization", R, single, opt, Integer, "0..100", "/100"),
				res(7, "APN", R, multi, opt, String, "", ""),
				res(8, "Cell ID", R, single, opt, Integer, "", ""),
				res(9, "SMNC", R, single, opt, Integer, "0..999", ""),
				res(10, "SMCC", R, single, opt, Integer, "0..999", ""),
				res(11, "SignalSNR", R, single, opt, Integer, "", "dB"),
				res(12, "LAC", R, single, opt, Integer, "", ""),
				res(13, "Coverage Enhancement Level", R, single, opt, Integer, "0..4", ""),
			},
		},
		{
			ID: FirmwareUpdateID, Name: "Firmware Update", URN: "urn:oma:lwm2m:oma:5:1.1", Version: "1.1", LwM2MVersion: "1.1",
			Multiple: single, Mandatory: opt,
			Description: "This LwM2M Object enables management of firmware which is to be updated.",
			Resources: []Resource{
				res(0, "Package", W, single, mand, Opaque, "", ""),
				res(1, "Package URI", RW, single, mand, String, "0..255", ""),
				res(2, "Update", E, single, mand, None, "", ""),
				res(3, "State", R, single, mand, Integer, "0..3", ""),
				res(5, "Update Result", R, single, mand, Integer, "0..11", ""),
				res(6, "PkgName", R, single, opt, String, "0..255", ""),
				res(7, "PkgVersion", R, single, opt, String, "0..255", ""),
				res(8, "Firmware Update Protocol Support", R, multi, opt, Integer, "0..5", ""),
				res(9, "Firmware Update Delivery Method", R, single, mand, Integer, "0..2", ""),
				res(10, "Cancel", E, single, opt, None, "", ""),
				res(11, "Severity", RW, single, opt, Integer, "0..2", ""),
				res(12, "Last State Change Time", R, single, opt, Time, "", ""),
				res(13, "Maximum Defer Period", RW, single, opt, Unsigned, "", "s"),
			},
		},
		{
			ID: LocationID, Name: "Location", URN: "urn:oma:lwm2m:oma:6", Version: "1.0", LwM2MVersion: "1.0",
			Multiple: single, Mandatory: opt,
			Description: "This LwM2M Object provides a range of location telemetry related information which can be queried by the LwM2M Server.",
			Resources: []Resource{
				res(0, "Latitude", R, single, mand, Float, "", "lat"),
				res(1, "Longitude", R, single, mand, Float, "", "lon"),
				res(2, "Altitude", R, single, opt, Float, "", "m"),
				res(3, "Radius", R, single, opt, Float, "", "m"),
				res(4, "Velocity", R, single, opt, Opaque, "", ""),
				res(5, "Timestamp", R, single, mand, Time, "", ""),
				res(6, "Speed", R, single, opt, Float, "", "m/s"),
			},
		},
		{
			ID: ConnectivityStatisticsID, Name: "Connectivity Statistics", URN: "urn:oma:lwm2m:oma:7", Version: "1.0", LwM2MVersion: "1.0",
			Multiple: single, Mandatory: opt,
			Description: "This LwM2M Objects enables client to collect statistical information and enables the LwM2M Server to retrieve these information, set the collection duration and reset the statistical parameters.",
			Resources: []Resource{
				res(0, "SMS Tx Counter", R, single, opt, Integer, "", ""),
				res(1, "SMS Rx Counter", R, single, opt, Integer, "", ""),
				res(2, "Tx Data", R, single, opt, Integer, "", "KiB"),
				res(3, "Rx Data", R, single, opt, Integer, "", "KiB"),
				res(4, "Max Message Size", R, single, opt, Integer, "", "B"),
				res(5, "Average Message Size", R, single, opt, Integer, "", "B"),
				res(6, "Start", E, single, mand, None, "", ""),
				res(7, "Stop", E, single, mand, None, "", ""),
				res(8, "Collection Period", RW, single, opt, Integer, "", "s"),
			},
		},
	}
}
