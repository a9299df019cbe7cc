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

// Core returns fresh definitions of the core objects 0–7, written from the
// OMA definitions (LwM2M 1.1 Core Appendix E and the OMNA registry files
// 0.xml … 7.xml, object versions noted per object). Security resources have
// no operations: only a Bootstrap-Server may access them (Core §E.1).
//
// Each resource is one [Resource] literal naming only what it has: a
// resource without Multiple is single-instance, without Mandatory optional,
// without Operations inaccessible to a LwM2M Server, without Type executable.
func Core() []*Object {
	return []*Object{
		security(),
		server(),
		accessControl(),
		device(),
		connectivityMonitoring(),
		firmwareUpdate(),
		location(),
		connectivityStatistics(),
	}
}

// security returns the LwM2M Security object (0).
func security() *Object {
	return &Object{
		ID: SecurityID, Name: "LWM2M Security", URN: "urn:oma:lwm2m:oma:0:1.1", Version: "1.1", LwM2MVersion: "1.1",
		Multiple: true, Mandatory: true,
		Description: "This LwM2M Object provides the keying material of a LwM2M Client appropriate to access a specified LwM2M Server.",
		Resources: []Resource{
			{ID: 0, Name: "LWM2M Server URI", Mandatory: true, Type: String, Range: "0..255"},
			{ID: 1, Name: "Bootstrap-Server", Mandatory: true, Type: Boolean},
			{ID: 2, Name: "Security Mode", Mandatory: true, Type: Integer, Range: "0..4"},
			{ID: 3, Name: "Public Key or Identity", Mandatory: true, Type: Opaque},
			{ID: 4, Name: "Server Public Key", Mandatory: true, Type: Opaque},
			{ID: 5, Name: "Secret Key", Mandatory: true, Type: Opaque},
			{ID: 6, Name: "SMS Security Mode", Type: Integer, Range: "0..255"},
			{ID: 7, Name: "SMS Binding Key Parameters", Type: Opaque, Range: "6"},
			{ID: 8, Name: "SMS Binding Secret Key(s)", Type: Opaque, Range: "16,32,48"},
			{ID: 9, Name: "LwM2M Server SMS Number", Type: String},
			{ID: 10, Name: "Short Server ID", Type: Integer, Range: "1..65534"},
			{ID: 11, Name: "Client Hold Off Time", Type: Integer, Units: "s"},
			{ID: 12, Name: "Bootstrap-Server Account Timeout", Type: Integer, Units: "s"},
			{ID: 13, Name: "Matching Type", Type: Unsigned, Range: "0..3"},
			{ID: 14, Name: "SNI", Type: String},
			{ID: 15, Name: "Certificate Usage", Type: Unsigned, Range: "0..3"},
			{ID: 16, Name: "DTLS/TLS Ciphersuite", Multiple: true, Type: Unsigned},
			{ID: 17, Name: "OSCORE Security Mode", Type: Objlnk},
		},
	}
}

// server returns the LwM2M Server object (1).
func server() *Object {
	return &Object{
		ID: ServerID, Name: "LwM2M Server", URN: "urn:oma:lwm2m:oma:1:1.1", Version: "1.1", LwM2MVersion: "1.1",
		Multiple: true, Mandatory: true,
		Description: "This LwM2M Objects provides the data related to a LwM2M Server.",
		Resources: []Resource{
			{ID: 0, Name: "Short Server ID", Operations: R, Mandatory: true, Type: Integer, Range: "1..65534"},
			{ID: 1, Name: "Lifetime", Operations: RW, Mandatory: true, Type: Integer, Units: "s"},
			{ID: 2, Name: "Default Minimum Period", Operations: RW, Type: Integer, Units: "s"},
			{ID: 3, Name: "Default Maximum Period", Operations: RW, Type: Integer, Units: "s"},
			{ID: 4, Name: "Disable", Operations: E},
			{ID: 5, Name: "Disable Timeout", Operations: RW, Type: Integer, Units: "s"},
			{ID: 6, Name: "Notification Storing When Disabled or Offline", Operations: RW, Mandatory: true, Type: Boolean},
			{ID: 7, Name: "Binding", Operations: RW, Mandatory: true, Type: String},
			{ID: 8, Name: "Registration Update Trigger", Operations: E, Mandatory: true},
			{ID: 9, Name: "Bootstrap-Request Trigger", Operations: E},
			{ID: 10, Name: "APN Link", Operations: RW, Type: Objlnk},
			{ID: 11, Name: "TLS-DTLS Alert Code", Operations: R, Type: Unsigned, Range: "0..255"},
			{ID: 12, Name: "Last Bootstrapped", Operations: R, Type: Time},
			{ID: 13, Name: "Registration Priority Order", Operations: R, Type: Unsigned},
			{ID: 14, Name: "Initial Registration Delay Timer", Operations: RW, Type: Unsigned, Units: "s"},
			{ID: 15, Name: "Registration Failure Block", Operations: R, Type: Boolean},
			{ID: 16, Name: "Bootstrap on Registration Failure", Operations: R, Type: Boolean},
			{ID: 17, Name: "Communication Retry Count", Operations: RW, Type: Unsigned},
			{ID: 18, Name: "Communication Retry Timer", Operations: RW, Type: Unsigned, Units: "s"},
			{ID: 19, Name: "Communication Sequence Delay Timer", Operations: RW, Type: Unsigned, Units: "s"},
			{ID: 20, Name: "Communication Sequence Retry Count", Operations: RW, Type: Unsigned},
			{ID: 21, Name: "Trigger", Operations: RW, Type: Boolean},
			{ID: 22, Name: "Preferred Transport", Operations: RW, Type: String},
			{ID: 23, Name: "Mute Send", Operations: RW, Type: Boolean},
		},
	}
}

// accessControl returns the Access Control object (2).
func accessControl() *Object {
	return &Object{
		ID: AccessControlID, Name: "LwM2M Access Control", URN: "urn:oma:lwm2m:oma:2", Version: "1.0", LwM2MVersion: "1.0",
		Multiple:    true,
		Description: "Access Control Object is used to check whether the LwM2M Server has access right for performing an operation.",
		Resources: []Resource{
			{ID: 0, Name: "Object ID", Operations: R, Mandatory: true, Type: Integer, Range: "1..65534"},
			{ID: 1, Name: "Object Instance ID", Operations: R, Mandatory: true, Type: Integer, Range: "0..65535"},
			{ID: 2, Name: "ACL", Operations: RW, Multiple: true, Type: Integer, Range: "16-bit"},
			{ID: 3, Name: "Access Control Owner", Operations: RW, Mandatory: true, Type: Integer, Range: "0..65535"},
		},
	}
}

// device returns the Device object (3).
func device() *Object {
	return &Object{
		ID: DeviceID, Name: "Device", URN: "urn:oma:lwm2m:oma:3:1.1", Version: "1.1", LwM2MVersion: "1.1",
		Mandatory:   true,
		Description: "This LwM2M Object provides a range of device related information which can be queried by the LwM2M Server, and a device reboot and factory reset function.",
		Resources: []Resource{
			{ID: 0, Name: "Manufacturer", Operations: R, Type: String},
			{ID: 1, Name: "Model Number", Operations: R, Type: String},
			{ID: 2, Name: "Serial Number", Operations: R, Type: String},
			{ID: 3, Name: "Firmware Version", Operations: R, Type: String},
			{ID: 4, Name: "Reboot", Operations: E, Mandatory: true},
			{ID: 5, Name: "Factory Reset", Operations: E},
			{ID: 6, Name: "Available Power Sources", Operations: R, Multiple: true, Type: Integer, Range: "0..7"},
			{ID: 7, Name: "Power Source Voltage", Operations: R, Multiple: true, Type: Integer},
			{ID: 8, Name: "Power Source Current", Operations: R, Multiple: true, Type: Integer},
			{ID: 9, Name: "Battery Level", Operations: R, Type: Integer, Range: "0..100", Units: "/100"},
			{ID: 10, Name: "Memory Free", Operations: R, Type: Integer},
			{ID: 11, Name: "Error Code", Operations: R, Multiple: true, Mandatory: true, Type: Integer, Range: "0..32"},
			{ID: 12, Name: "Reset Error Code", Operations: E},
			{ID: 13, Name: "Current Time", Operations: RW, Type: Time},
			{ID: 14, Name: "UTC Offset", Operations: RW, Type: String},
			{ID: 15, Name: "Timezone", Operations: RW, Type: String},
			{ID: 16, Name: "Supported Binding and Modes", Operations: R, Mandatory: true, Type: String},
			{ID: 17, Name: "Device Type", Operations: R, Type: String},
			{ID: 18, Name: "Hardware Version", Operations: R, Type: String},
			{ID: 19, Name: "Software Version", Operations: R, Type: String},
			{ID: 20, Name: "Battery Status", Operations: R, Type: Integer, Range: "0..6"},
			{ID: 21, Name: "Memory Total", Operations: R, Type: Integer},
			{ID: 22, Name: "ExtDevInfo", Operations: R, Multiple: true, Type: Objlnk},
		},
	}
}

// connectivityMonitoring returns the Connectivity Monitoring object (4).
func connectivityMonitoring() *Object {
	return &Object{
		ID: ConnectivityMonitoringID, Name: "Connectivity Monitoring", URN: "urn:oma:lwm2m:oma:4:1.3", Version: "1.3", LwM2MVersion: "1.1",

		Description: "This LwM2M Object enables monitoring of parameters related to network connectivity.",
		Resources: []Resource{
			{ID: 0, Name: "Network Bearer", Operations: R, Mandatory: true, Type: Integer, Range: "0..50"},
			{ID: 1, Name: "Available Network Bearer", Operations: R, Multiple: true, Mandatory: true, Type: Integer, Range: "0..50"},
			{ID: 2, Name: "Radio Signal Strength", Operations: R, Mandatory: true, Type: Integer},
			{ID: 3, Name: "Link Quality", Operations: R, Type: Integer},
			{ID: 4, Name: "IP Addresses", Operations: R, Multiple: true, Mandatory: true, Type: String},
			{ID: 5, Name: "Router IP Addresses", Operations: R, Multiple: true, Type: String},
			{ID: 6, Name: "Link Utilization", Operations: R, Type: Integer, Range: "0..100", Units: "/100"},
			{ID: 7, Name: "APN", Operations: R, Multiple: true, Type: String},
			{ID: 8, Name: "Cell ID", Operations: R, Type: Integer},
			{ID: 9, Name: "SMNC", Operations: R, Type: Integer, Range: "0..999"},
			{ID: 10, Name: "SMCC", Operations: R, Type: Integer, Range: "0..999"},
			{ID: 11, Name: "SignalSNR", Operations: R, Type: Integer, Units: "dB"},
			{ID: 12, Name: "LAC", Operations: R, Type: Integer},
			{ID: 13, Name: "Coverage Enhancement Level", Operations: R, Type: Integer, Range: "0..4"},
		},
	}
}

// firmwareUpdate returns the Firmware Update object (5).
func firmwareUpdate() *Object {
	return &Object{
		ID: FirmwareUpdateID, Name: "Firmware Update", URN: "urn:oma:lwm2m:oma:5:1.1", Version: "1.1", LwM2MVersion: "1.1",

		Description: "This LwM2M Object enables management of firmware which is to be updated.",
		Resources: []Resource{
			{ID: 0, Name: "Package", Operations: W, Mandatory: true, Type: Opaque},
			{ID: 1, Name: "Package URI", Operations: RW, Mandatory: true, Type: String, Range: "0..255"},
			{ID: 2, Name: "Update", Operations: E, Mandatory: true},
			{ID: 3, Name: "State", Operations: R, Mandatory: true, Type: Integer, Range: "0..3"},
			{ID: 5, Name: "Update Result", Operations: R, Mandatory: true, Type: Integer, Range: "0..11"},
			{ID: 6, Name: "PkgName", Operations: R, Type: String, Range: "0..255"},
			{ID: 7, Name: "PkgVersion", Operations: R, Type: String, Range: "0..255"},
			{ID: 8, Name: "Firmware Update Protocol Support", Operations: R, Multiple: true, Type: Integer, Range: "0..5"},
			{ID: 9, Name: "Firmware Update Delivery Method", Operations: R, Mandatory: true, Type: Integer, Range: "0..2"},
			{ID: 10, Name: "Cancel", Operations: E},
			{ID: 11, Name: "Severity", Operations: RW, Type: Integer, Range: "0..2"},
			{ID: 12, Name: "Last State Change Time", Operations: R, Type: Time},
			{ID: 13, Name: "Maximum Defer Period", Operations: RW, Type: Unsigned, Units: "s"},
		},
	}
}

// location returns the Location object (6).
func location() *Object {
	return &Object{
		ID: LocationID, Name: "Location", URN: "urn:oma:lwm2m:oma:6", Version: "1.0", LwM2MVersion: "1.0",

		Description: "This LwM2M Object provides a range of location telemetry related information which can be queried by the LwM2M Server.",
		Resources: []Resource{
			{ID: 0, Name: "Latitude", Operations: R, Mandatory: true, Type: Float, Units: "lat"},
			{ID: 1, Name: "Longitude", Operations: R, Mandatory: true, Type: Float, Units: "lon"},
			{ID: 2, Name: "Altitude", Operations: R, Type: Float, Units: "m"},
			{ID: 3, Name: "Radius", Operations: R, Type: Float, Units: "m"},
			{ID: 4, Name: "Velocity", Operations: R, Type: Opaque},
			{ID: 5, Name: "Timestamp", Operations: R, Mandatory: true, Type: Time},
			{ID: 6, Name: "Speed", Operations: R, Type: Float, Units: "m/s"},
		},
	}
}

// connectivityStatistics returns the Connectivity Statistics object (7).
func connectivityStatistics() *Object {
	return &Object{
		ID: ConnectivityStatisticsID, Name: "Connectivity Statistics", URN: "urn:oma:lwm2m:oma:7", Version: "1.0", LwM2MVersion: "1.0",

		Description: "This LwM2M Objects enables client to collect statistical information and enables the LwM2M Server to retrieve these information, set the collection duration and reset the statistical parameters.",
		Resources: []Resource{
			{ID: 0, Name: "SMS Tx Counter", Operations: R, Type: Integer},
			{ID: 1, Name: "SMS Rx Counter", Operations: R, Type: Integer},
			{ID: 2, Name: "Tx Data", Operations: R, Type: Integer, Units: "KiB"},
			{ID: 3, Name: "Rx Data", Operations: R, Type: Integer, Units: "KiB"},
			{ID: 4, Name: "Max Message Size", Operations: R, Type: Integer, Units: "B"},
			{ID: 5, Name: "Average Message Size", Operations: R, Type: Integer, Units: "B"},
			{ID: 6, Name: "Start", Operations: E, Mandatory: true},
			{ID: 7, Name: "Stop", Operations: E, Mandatory: true},
			{ID: 8, Name: "Collection Period", Operations: RW, Type: Integer, Units: "s"},
		},
	}
}
