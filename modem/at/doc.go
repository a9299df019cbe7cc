// Package at is the AT command engine of the modem driver: one command at
// a time on a serial line, every line the modem sends sorted into the
// running command's answer, an unsolicited result code (URC) or a stray
// line.
//
// A command ends on its final result code, its timeout, its context, or the
// loss of the line. The engine knows nothing of SMS; package modem builds
// the SMS driver on it.
//
// # Usage
//
//	e, err := at.New(port, at.Config{
//		OnUnsolicited: func(lines []string) { urcs <- lines }, // must not block
//	})
//	lines, err := e.Exec(ctx, "+CSQ")                        // writes AT+CSQ; ["+CSQ: 21,99"]
//	lines, err = e.Send(ctx, "+CMGS=23", pduHex, at.WithTimeout(60*time.Second))
//	var re *at.ResultError
//	if errors.As(err, &re) { ... }                           // ERROR, +CMS ERROR: 500, ...
//
// [Engine.Exec] runs a command, [Engine.Send] a two-step one (the command,
// the send prompt, then the PDU and Ctrl-Z); [WithShape] says which lines
// belong to the answer. A [Dialect] adds a vendor's final result codes and
// URCs; the zero [Config] works.
//
// # Design
//
// How lines are sorted. Bytes are split into lines at CR or LF in any combination (CR LF, CR CR
// LF, LF, CR); empty lines are skipped, NUL, SUB and ESC bytes are dropped,
// and a line longer than [Config].MaxLine is discarded and reported. A '>'
// at the start of a line followed only by spaces and then by nothing (the
// modem waits for input) is the send prompt; a '>' followed by a line end
// is a stray line, never a prompt, and a prompt that comes while no
// two-step command waits for one is dropped.
//
// Each line is then, in this order:
//
//  1. the trailing PDU line of a +CMT/+CDS/+CBM URC seen just before, if it
//     is hexadecimal (otherwise that URC is delivered without it);
//  2. the echo of the running command or of its PDU (echo on or off);
//  3. a final result code: OK, ERROR, +CME ERROR, +CMS ERROR, the V.250
//     codes NO CARRIER, NO DIALTONE, BUSY, NO ANSWER, the vendor codes
//     COMMAND NOT SUPPORT, TOO MANY PARAMETERS and MODEM ERROR, and the
//     Dialect's extra codes; any code but OK ends the command with a
//     [*ResultError] at once;
//  4. a URC: a line that starts with a known URC prefix (27.005/27.007 and
//     the Dialect's), a vendor line starting with '^', '*', '#', '%', '$'
//     or '!', or a known text such as RDY or SMS Ready — unless it carries
//     the running command's own prefix (+CREG: during AT+CREG?);
//  5. a line of the running command's answer, if its Shape admits it:
//     ShapePrefixed takes only lines with the command's prefix, ShapePDU
//     also every line that is not shaped like another command's
//     information response (the PDU lines, and garbage in their place, which
//     the driver must see to quarantine it), ShapeText every other line
//     (the bare answers of +CGMI or +CGSN). A line the shape refuses is
//     unsolicited, never part of the answer.
//
// Lines that arrive while no command runs go to [Config].OnUnsolicited (late
// answers of an abandoned command included), as do URCs.
//
// Goroutines. [New] starts one reader goroutine. It stops when a Read on the line fails:
// the owner closes the port to stop it, and [Engine.Done] is closed once it has
// returned. Commands run on the caller's goroutine; their timers belong to
// the command and stop with it.
//
// # Why not github.com/warthog618/modem/at
//
// The driver used warthog618/modem/at until real modems' answers were
// replayed through it (the field corpus of issue 13). That engine cannot be
// wrapped into what real modems need, because each of these lives in its
// line reader and command loop:
//
//   - Lines are split at LF only (bufio.ScanLines drops one CR), so a modem
//     that ends lines with CR CR LF (Huawei) sends "OK\r", which is never
//     taken for OK, and a modem that ends lines with a bare CR never ends a
//     line at all: every command waits out its timeout.
//   - Only lines whose prefix was registered are URCs, and even those are
//     also handed to the running command (its indication loop's continue
//     skips only the inner loop). Any other unsolicited line (Huawei's
//     ^RSSI, Quectel's +QIND, "RDY") becomes part of the answer: a URC
//     inside a +CMGR answer was taken for the PDU line.
//   - A final result code it does not know (COMMAND NOT SUPPORT and TOO
//     MANY PARAMETERS of Huawei's AT interface specification §1.3) is an
//     information line, so the command runs into its timeout and counts
//     towards a reconnect.
//   - Any line that starts with '>' is the send prompt, so a stray "> " on
//     the line is taken for it.
//   - The trailing line of a +CMT is whatever line comes next, checked for
//     nothing.
//   - A line longer than 64 KiB (garbage on a noisy line) ends its scanner,
//     which closes the engine as if the port were gone.
//   - A command cannot be given a context.
package at
