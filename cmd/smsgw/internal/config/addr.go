package config

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// portUse says whether port 0 (the system picks a free port) makes sense
// for an address: it does for the addresses smsgw listens on, not for the
// ones it dials.
type portUse int

const (
	listenPort portUse = iota // 0..65535: 0 is ephemeral
	dialPort                  // 1..65535
)

// addrProblem checks a host:port address and returns what is wrong with it
// in the configuration's words, or "". The host is an IP address (IPv6 in
// brackets), a host name, or empty (every interface) for a listener; the
// port a number in range. Host names are not resolved (check-config must
// not need DNS).
func addrProblem(s string, use portUse) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf("must be host:port (e.g. 127.0.0.1:8080 or [::1]:5683), got %q", s)
	}
	lo := 0
	if use == dialPort {
		lo = 1
	}
	n, err := strconv.ParseUint(port, 10, 32)
	if err != nil || n < uint64(lo) || n > 65535 {
		what := "port"
		if err != nil {
			what = "port number"
		}
		rng := "1..65535"
		if use == listenPort {
			rng = "1..65535, or 0 for any free port"
		}
		return fmt.Sprintf("must be host:port with a %s in %s, got %q", what, rng, s)
	}
	if host == "" {
		if use == dialPort {
			return fmt.Sprintf("must name the host to connect to, got %q", s)
		}
		return ""
	}
	if msg := hostProblem(host); msg != "" {
		return "must be host:port; " + msg
	}
	return ""
}

// hostProblem says why host is neither an IP address nor a host name, or "".
func hostProblem(host string) string {
	if strings.Contains(host, ":") || looksNumeric(host) {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Sprintf("%q is not an IP address", host)
		}
		return ""
	}
	if !validHostName(host) {
		return fmt.Sprintf("%q is neither an IP address nor a host name", host)
	}
	return ""
}

// looksNumeric reports a host made of digits and dots: meant as an IPv4
// address, not a host name.
func looksNumeric(h string) bool {
	return strings.Trim(h, "0123456789.") == ""
}

// validHostName reports a DNS host name (RFC 1123 labels: letters, digits
// and hyphens, not starting or ending with a hyphen, 1..63 bytes; 253 in all).
func validHostName(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// checkAddr adds a problem for a bad host:port at the key path keys.
func (c *checker) checkAddr(s string, use portUse, keys ...string) {
	if msg := addrProblem(s, use); msg != "" {
		c.add(fmt.Sprintf("`%s` %s", strings.Join(keys, "."), msg), keys...)
	}
}
