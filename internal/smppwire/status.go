package smppwire

import "fmt"

// Status is an SMPP command_status (SMPP 3.4 §5.1.3).
type Status uint32

// Command status codes.
const (
	ROK              Status = 0x00000000
	RInvMsgLen       Status = 0x00000001
	RInvCmdLen       Status = 0x00000002
	RInvCmdID        Status = 0x00000003
	RInvBndSts       Status = 0x00000004
	RAlyBnd          Status = 0x00000005
	RInvPrtFlg       Status = 0x00000006
	RInvRegDlvFlg    Status = 0x00000007
	RSysErr          Status = 0x00000008
	RInvSrcAdr       Status = 0x0000000A
	RInvDstAdr       Status = 0x0000000B
	RInvMsgID        Status = 0x0000000C
	RBindFail        Status = 0x0000000D
	RInvPaswd        Status = 0x0000000E
	RInvSysID        Status = 0x0000000F
	RMsgQFul         Status = 0x00000014
	RInvSerTyp       Status = 0x00000015
	RInvEsmClass     Status = 0x00000043
	RSubmitFail      Status = 0x00000045
	RInvSrcTON       Status = 0x00000048
	RInvSrcNPI       Status = 0x00000049
	RInvDstTON       Status = 0x00000050
	RInvDstNPI       Status = 0x00000051
	RInvSysTyp       Status = 0x00000053
	RThrottled       Status = 0x00000058
	RInvExpiry       Status = 0x00000062
	RXTAppn          Status = 0x00000064 // ESME receiver temporary app error
	RXPAppn          Status = 0x00000065 // ESME receiver permanent app error
	RXRAppn          Status = 0x00000066 // ESME receiver reject message error
	RInvOptParStream Status = 0x000000C0
	ROptParNotAllwd  Status = 0x000000C1
	RInvParLen       Status = 0x000000C2
	RMissingOptParam Status = 0x000000C3
	RInvOptParamVal  Status = 0x000000C4
	RDeliveryFailure Status = 0x000000FE
	RUnknownErr      Status = 0x000000FF
)

var statusNames = map[Status]string{
	ROK: "ESME_ROK", RInvMsgLen: "ESME_RINVMSGLEN", RInvCmdLen: "ESME_RINVCMDLEN", RInvCmdID: "ESME_RINVCMDID",
	RInvBndSts: "ESME_RINVBNDSTS", RAlyBnd: "ESME_RALYBND", RInvPrtFlg: "ESME_RINVPRTFLG",
	RInvRegDlvFlg: "ESME_RINVREGDLVFLG", RSysErr: "ESME_RSYSERR", RInvSrcAdr: "ESME_RINVSRCADR",
	RInvDstAdr: "ESME_RINVDSTADR", RInvMsgID: "ESME_RINVMSGID", RBindFail: "ESME_RBINDFAIL",
	RInvPaswd: "ESME_RINVPASWD", RInvSysID: "ESME_RINVSYSID", RMsgQFul: "ESME_RMSGQFUL",
	RInvSerTyp: "ESME_RINVSERTYP", RInvEsmClass: "ESME_RINVESMCLASS", RSubmitFail: "ESME_RSUBMITFAIL",
	RInvSrcTON: "ESME_RINVSRCTON", RInvSrcNPI: "ESME_RINVSRCNPI", RInvDstTON: "ESME_RINVDSTTON",
	RInvDstNPI: "ESME_RINVDSTNPI", RInvSysTyp: "ESME_RINVSYSTYP", RThrottled: "ESME_RTHROTTLED",
	RInvExpiry: "ESME_RINVEXPIRY", RXTAppn: "ESME_RX_T_APPN", RXPAppn: "ESME_RX_P_APPN", RXRAppn: "ESME_RX_R_APPN",
	RInvOptParStream: "ESME_RINVOPTPARSTREAM", ROptParNotAllwd: "ESME_ROPTPARNOTALLWD", RInvParLen: "ESME_RINVPARLEN",
	RMissingOptParam: "ESME_RMISSINGOPTPARAM", RInvOptParamVal: "ESME_RINVOPTPARAMVAL",
	RDeliveryFailure: "ESME_RDELIVERYFAILURE", RUnknownErr: "ESME_RUNKNOWNERR",
}

func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("command_status(0x%08X)", uint32(s))
}

// Retryable reports whether a request refused with s may succeed if sent
// again later unchanged: congestion and throttling (ESME_RTHROTTLED,
// ESME_RMSGQFUL), system and temporary errors, and the bind state (the link
// is re-bound). Everything about the message itself (addresses, lengths,
// flags, parameters) is permanent: sending it again cannot help.
func (s Status) Retryable() bool {
	switch s {
	case RThrottled, RMsgQFul, RSysErr, RXTAppn, RSubmitFail, RDeliveryFailure, RUnknownErr, RInvBndSts:
		return true
	}
	return false
}

// Throttling reports whether s asks the ESME to slow down.
func (s Status) Throttling() bool { return s == RThrottled || s == RMsgQFul }

// StatusError is the error of a request the peer answered with a non-zero
// command_status.
type StatusError struct {
	Command CommandID
	Status  Status
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("smpp: %s refused: %s", e.Command, e.Status)
}

// Retryable reports Status.Retryable.
func (e *StatusError) Retryable() bool { return e.Status.Retryable() }

// Temporary is Retryable, for callers that branch the net.Error way.
func (e *StatusError) Temporary() bool { return e.Status.Retryable() }
