package notify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"time"
)

// CallbackPolicy is the rule for the URLs webhook subscriptions ask the connector to call. Anyone with
// the Operate role can subscribe a callback, so without it the connector would post from inside the
// partner's network to wherever it was told: a cloud metadata service, an internal admin page (SSRF).
//
// A callback must be https to a public address. Private, loopback, link-local, unique-local, shared
// (carrier-grade NAT), reserved and cloud-metadata addresses are refused when a subscription is made (for
// addresses written in the URL, in any of the forms resolvers accept) and again when the connection is
// made (for the addresses a name resolves to then, so a name that resolves to a public address at
// subscribe time and to an internal one later — DNS rebinding — is still refused). Names that only an
// internal resolver can answer (no dot, .internal, .local, .localhost) are refused outright.
//
// AllowHosts lists a partner's own hosts (names, or addresses and prefixes in CIDR form) that may be
// called although they are internal; AllowLoopback lets the sandbox and tests use http and https on
// loopback.
type CallbackPolicy struct {
	AllowLoopback bool
	AllowHosts    []string
}

// ParseCallbackAllowList reads CONNECTOR_WEBHOOK_ALLOW_HOSTS: comma-separated host names, IP addresses
// and CIDR prefixes.
func ParseCallbackAllowList(s string) ([]string, error) {
	var out, bad []string
	for item := range strings.SplitSeq(s, ",") {
		item = strings.ToLower(strings.TrimSpace(item))
		if item == "" {
			continue
		}
		if strings.Contains(item, "/") {
			if _, err := netip.ParsePrefix(item); err != nil {
				bad = append(bad, item)
				continue
			}
		} else if _, err := netip.ParseAddr(item); err != nil && strings.ContainsAny(item, ":@?#/ ") {
			bad = append(bad, item) // a URL or host:port, not a host
			continue
		}
		out = append(out, item)
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%s: not a host name, an IP address or a CIDR prefix", strings.Join(bad, ", "))
	}
	return out, nil
}

// Problem says in words what is wrong with a callback URL, or "" when the connector may call it. The URL
// itself never goes into the answer: it is a secret.
func (p CallbackPolicy) Problem(u *url.URL) string {
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if host == "" {
		return "must be an absolute https URL"
	}
	addr, literal := literalAddr(host)
	loopback := host == "localhost" || literal && addr.IsLoopback()
	switch u.Scheme {
	case "https":
	case "http":
		if !p.AllowLoopback || !loopback {
			return "must be an https URL"
		}
	default:
		return "must be an https URL"
	}
	if p.hostAllowed(host) || p.AllowLoopback && loopback {
		return ""
	}
	if literal {
		if !p.addrAllowed(addr) {
			return "must not point at a private, loopback, link-local or metadata address (list a host of your own in CONNECTOR_WEBHOOK_ALLOW_HOSTS)"
		}
		return ""
	}
	if looksNumeric(host) {
		return "must name its host or write its address in the usual form"
	}
	if !strings.Contains(host, ".") || internalName(host) {
		return "must name a public host (internal names are refused; list a host of your own in CONNECTOR_WEBHOOK_ALLOW_HOSTS)"
	}
	return ""
}

// hostAllowed reports a host the partner allowed by name or address.
func (p CallbackPolicy) hostAllowed(host string) bool {
	if slices.Contains(p.AllowHosts, host) {
		return true
	}
	addr, ok := literalAddr(host)
	return ok && p.inAllowList(addr)
}

func (p CallbackPolicy) inAllowList(addr netip.Addr) bool {
	for _, h := range p.AllowHosts {
		if pfx, err := netip.ParsePrefix(h); err == nil && pfx.Contains(addr) {
			return true
		}
		if a, err := netip.ParseAddr(h); err == nil && a.Unmap() == addr {
			return true
		}
	}
	return false
}

// addrAllowed reports an address the connector may connect to.
func (p CallbackPolicy) addrAllowed(addr netip.Addr) bool {
	addr = addr.Unmap()
	switch {
	case p.inAllowList(addr):
		return true
	case addr.IsLoopback():
		return p.AllowLoopback
	}
	return publicAddr(addr)
}

// blockedPrefixes are special-purpose ranges (IANA's registries) that netip has no predicate for.
var blockedPrefixes = [...]netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),          // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),      // shared address space (carrier-grade NAT; Alibaba's metadata)
	netip.MustParsePrefix("192.0.0.0/24"),       // IETF protocol assignments (Oracle's metadata)
	netip.MustParsePrefix("192.0.2.0/24"),       // documentation
	netip.MustParsePrefix("198.18.0.0/15"),      // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"),    // documentation
	netip.MustParsePrefix("203.0.113.0/24"),     // documentation
	netip.MustParsePrefix("240.0.0.0/4"),        // reserved, and broadcast
	netip.MustParsePrefix("168.63.129.16/32"),   // Azure's platform endpoint (wire server)
	netip.MustParsePrefix("64:ff9b::/96"),       // NAT64: would reach any IPv4 address, private ones too
	netip.MustParsePrefix("64:ff9b:1::/48"),     // local-use NAT64
	netip.MustParsePrefix("2002::/16"),          // 6to4: embeds an IPv4 address
	netip.MustParsePrefix("2001::/32"),          // Teredo: embeds an IPv4 address
	netip.MustParsePrefix("2001:db8::/32"),      // documentation
	netip.MustParsePrefix("100::/64"),           // discard-only
	netip.MustParsePrefix("fec0::/10"),          // deprecated site-local
	netip.MustParsePrefix("::/128"),             // unspecified
	netip.MustParsePrefix("::ffff:0:0:0/96"),    // IPv4-translated
	netip.MustParsePrefix("255.255.255.255/32"), // broadcast
}

// publicAddr reports a globally routable unicast address.
func publicAddr(a netip.Addr) bool {
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	for _, p := range blockedPrefixes {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// literalAddr reads a host written as an IP address (IPv6 without its brackets, a zone refused).
func literalAddr(host string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// looksNumeric reports hosts that some resolvers read as an IPv4 address although they are not written
// in dotted decimal: 2130706433, 0x7f000001, 0177.0.0.1, 127.1. A real host name has a letter in its last
// label, so these are refused rather than guessed at.
func looksNumeric(host string) bool {
	last := host[strings.LastIndex(host, ".")+1:]
	if last == "" {
		return false
	}
	if strings.HasPrefix(last, "0x") {
		return true
	}
	for _, c := range last {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// internalName reports names only an internal resolver answers.
func internalName(host string) bool {
	for _, suffix := range []string{".internal", ".local", ".localhost", ".localdomain", ".home.arpa", ".intranet", ".corp", ".lan"} {
		if strings.HasSuffix(host, suffix) {
			return true
		}
	}
	return host == "localhost"
}

// errCallbackAddress is a connection the policy refused: the name resolved to an address it does not call.
var errCallbackAddress = errors.New("the callback's host resolves to an address the connector does not call (private, loopback, link-local or metadata)")

// Transport returns an HTTP transport that enforces the policy on every connection: it dials only the
// addresses addrAllowed accepts (checked on the address actually connected to, after resolution), and
// never goes through a proxy (a proxy would hide the destination).
func (p CallbackPolicy) Transport() *http.Transport {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	guarded := *dialer
	guarded.Control = func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil || !p.addrAllowed(ap.Addr()) {
			return errCallbackAddress
		}
		return nil
	}
	return &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(address)
			if err == nil && slices.Contains(p.AllowHosts, strings.ToLower(strings.TrimSuffix(host, "."))) {
				return dialer.DialContext(ctx, network, address)
			}
			return guarded.DialContext(ctx, network, address)
		},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}
