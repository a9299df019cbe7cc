package sim

import (
	"errors"
	"strconv"
	"strings"
)

// errSyntax is returned by the command-line parser for lines a modem
// answers with a bare ERROR.
var errSyntax = errors.New("sim: AT syntax error")

// maxLine bounds a command line, as a modem's command buffer does
// (TS 27.007 §4.1 asks for at least 80 characters; modems take a few hundred).
const maxLine = 560

// Command type of an AT command (TS 27.007 §4.1, V.250 §5.3).
const (
	opExec = iota // AT+CMD or basic command with no "="
	opSet         // AT+CMD=args
	opRead        // AT+CMD?
	opTest        // AT+CMD=?
)

// atCmd is one command of an AT command line.
type atCmd struct {
	name string // upper case: "+CMGS", "E", "&F", "S0", "I"
	op   int
	args string // raw text after "=", for opSet; the digits of a basic command
}

// parseCommandLine splits an AT command line (without its terminating CR)
// into commands. Basic commands (E0, V1, &F, Z, I, S7=50) may be chained
// without separator; extended commands (+CMGF=0) are separated by ';'.
func parseCommandLine(line string) ([]atCmd, error) {
	line = strings.TrimSpace(line)
	if len(line) < 2 || !strings.EqualFold(line[:2], "AT") {
		return nil, errSyntax
	}
	s := line[2:]
	var cmds []atCmd
	for len(s) > 0 {
		var (
			parse func(string) (atCmd, string, error)
			c     = s[0]
		)
		switch {
		case c == ' ' || c == ';':
			s = s[1:]
			continue
		case c == '+' || c == '^' || c == '$' || c == '%' || c == '*' || c == '#':
			parse = parseExtended
		case c == '&':
			parse = parseAmpersand
		case c == 'S' || c == 's':
			parse = parseSRegister
		case isLetter(c):
			parse = parseBasic
		default:
			return nil, errSyntax
		}
		cmd, rest, err := parse(s)
		if err != nil {
			return nil, err
		}
		cmds, s = append(cmds, cmd), rest
	}
	return cmds, nil
}

// parseExtended parses the extended command at the start of s: prefix
// (+, ^, $, %, *, #), name, then =<args>, ?, =? or nothing, up to ';' or
// the end. It returns the command and the rest of s.
func parseExtended(s string) (atCmd, string, error) {
	i := 1
	for i < len(s) && isNameChar(s[i]) {
		i++
	}
	if i == 1 {
		return atCmd{}, "", errSyntax
	}
	cmd := atCmd{name: strings.ToUpper(s[:i])}
	s = s[i:]
	switch {
	case strings.HasPrefix(s, "=?"):
		cmd.op = opTest
		s = s[2:]
	case strings.HasPrefix(s, "?"):
		cmd.op = opRead
		s = s[1:]
	case strings.HasPrefix(s, "="):
		cmd.op = opSet
		end := argsEnd(s[1:])
		if end < 0 {
			return atCmd{}, "", errSyntax
		}
		cmd.args = s[1 : 1+end]
		s = s[1+end:]
	}
	if len(s) > 0 && s[0] != ';' {
		return atCmd{}, "", errSyntax
	}
	return cmd, s, nil
}

// parseAmpersand parses the &-command at the start of s (&F, &W0): a
// letter and optional digits.
func parseAmpersand(s string) (atCmd, string, error) {
	if len(s) < 2 || !isLetter(s[1]) {
		return atCmd{}, "", errSyntax
	}
	cmd := atCmd{name: "&" + strings.ToUpper(s[1:2])}
	s = s[2:]
	d := digits(s)
	cmd.args, s = s[:d], s[d:]
	return cmd, s, nil
}

// parseSRegister parses the S-register command at the start of s: Sn? or
// Sn=<digits>.
func parseSRegister(s string) (atCmd, string, error) {
	d := digits(s[1:])
	if d == 0 {
		return atCmd{}, "", errSyntax
	}
	cmd := atCmd{name: "S" + s[1:1+d]}
	s = s[1+d:]
	switch {
	case strings.HasPrefix(s, "?"):
		cmd.op = opRead
		s = s[1:]
	case strings.HasPrefix(s, "="):
		cmd.op = opSet
		v := digits(s[1:])
		cmd.args = s[1 : 1+v]
		s = s[1+v:]
	default:
		return atCmd{}, "", errSyntax
	}
	return cmd, s, nil
}

// parseBasic parses the basic command at the start of s (E0, V1, Z, I): a
// letter and optional digits.
func parseBasic(s string) (atCmd, string, error) {
	cmd := atCmd{name: strings.ToUpper(s[:1])}
	s = s[1:]
	d := digits(s)
	cmd.args, s = s[:d], s[d:]
	return cmd, s, nil
}

func isLetter(c byte) bool { return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }

func isNameChar(c byte) bool {
	return isLetter(c) || c >= '0' && c <= '9' || c == '!' || c == '%' || c == '-' || c == '.' || c == '/' || c == ':' || c == '_'
}

func digits(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

// argsEnd returns the length of an argument list: up to an unquoted ';' or
// the end; -1 for an unterminated string.
func argsEnd(s string) int {
	q := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			q = !q
		case ';':
			if !q {
				return i
			}
		}
	}
	if q {
		return -1
	}
	return len(s)
}

// splitArgs splits a comma separated argument list, honouring quotes, and
// strips the quotes of string arguments.
func splitArgs(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	var out []string
	var cur strings.Builder
	q := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			q = !q
		case c == ',' && !q:
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(out, strings.TrimSpace(cur.String()))
}

// intArg returns argument i of args as an integer, def when absent or
// empty, and ok false when present but not a number in [lo, hi].
func intArg(args []string, i, def, lo, hi int) (int, bool) {
	if i >= len(args) || args[i] == "" {
		return def, true
	}
	v, err := strconv.Atoi(args[i])
	if err != nil || v < lo || v > hi {
		return 0, false
	}
	return v, true
}
