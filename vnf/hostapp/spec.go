package hostapp

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nfpipe/nfpipe/internal/suggest"
)

// spec is one application spec split into words: the application name,
// positional arguments and key=value options, in the order given.
type spec struct {
	text string // the spec as the user wrote it, quoted in every error
	app  string
	args []string
	opts []option
}

// option is one key=value word.
type option struct {
	key, val string
	tok      string // the whole word, quoted in errors about its value
}

// splitSpec splits text into words. A word is an option if it has an '='
// preceded only by option-name characters, so that a URL with a query
// string ("http://192.0.2.2/?a=b") stays a positional argument.
func splitSpec(text string) *spec {
	s := &spec{text: text}
	words := strings.Fields(text)
	if len(words) == 0 {
		return s
	}
	s.app = words[0]
	for _, w := range words[1:] {
		if key, val, ok := strings.Cut(w, "="); ok && isOptionName(key) {
			s.opts = append(s.opts, option{key: key, val: val, tok: w})
			continue
		}
		s.args = append(s.args, w)
	}
	return s
}

// isOptionName reports whether key could be an option name (possibly an
// empty or misspelt one).
func isOptionName(key string) bool {
	for _, r := range key {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// checkOptions rejects options that are not in known, and options given
// twice. Unknown keys are errors, not silence: a misspelt count= would
// otherwise run with the default and "pass".
func (s *spec) checkOptions(known ...string) error {
	seen := map[string]bool{}
	for _, o := range s.opts {
		if !slices.Contains(known, o.key) {
			if len(known) == 0 {
				return fmt.Errorf("unknown option %q in %q (%s takes no options)", o.key, s.text, s.app)
			}
			if hint := suggest.DidYouMean(o.key, known); hint != "" {
				return fmt.Errorf("unknown option %q in %q%s", o.key, s.text, hint)
			}
			sorted := slices.Sorted(slices.Values(known))
			return fmt.Errorf("unknown option %q in %q (%s options: %s)", o.key, s.text, s.app, strings.Join(sorted, ", "))
		}
		if seen[o.key] {
			return fmt.Errorf("duplicate option %q in %q: %s is already set", o.tok, s.text, o.key)
		}
		seen[o.key] = true
	}
	return nil
}

// lookup returns the option named key, if given.
func (s *spec) lookup(key string) (option, bool) {
	for _, o := range s.opts {
		if o.key == key {
			return o, true
		}
	}
	return option{}, false
}

// badOption reports an option whose value is wrong.
func (s *spec) badOption(o option, reason string) error {
	return fmt.Errorf("invalid option %q in %q: %s", o.tok, s.text, reason)
}

// badArg reports a positional argument that is wrong; what names it.
func (s *spec) badArg(what, tok, reason string) error {
	return fmt.Errorf("invalid %s %q in %q: %s", what, tok, s.text, reason)
}

// wantArgs checks the number of positional arguments; missing names the
// first one that may be absent, usage is the application's syntax.
func (s *spec) wantArgs(min, max int, missing []string, usage string) error {
	if len(s.args) < min {
		return fmt.Errorf("missing %s in %q (usage: %s)", missing[len(s.args)], s.text, usage)
	}
	if len(s.args) > max {
		return fmt.Errorf("unexpected argument %q in %q (usage: %s)", s.args[max], s.text, usage)
	}
	return nil
}

// intOpt returns the integer option key, def if absent, checked to lie in
// [lo, hi].
func (s *spec) intOpt(key string, def, lo, hi int64) (int64, error) {
	o, ok := s.lookup(key)
	if !ok {
		return def, nil
	}
	n, err := strconv.ParseInt(o.val, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, s.badOption(o, rangeReason("a whole number", lo, hi))
	}
	return n, nil
}

// rangeReason says which integers are accepted, without printing the
// largest int64 when there is no real upper bound.
func rangeReason(what string, lo, hi int64) string {
	if hi == math.MaxInt64 {
		return fmt.Sprintf("want %s of at least %d", what, lo)
	}
	return fmt.Sprintf("want %s from %d to %d", what, lo, hi)
}

// durOpt returns the duration option key, def if absent. Zero is accepted
// only with allowZero; negative durations never are.
func (s *spec) durOpt(key string, def time.Duration, allowZero bool) (time.Duration, error) {
	o, ok := s.lookup(key)
	if !ok {
		return def, nil
	}
	d, err := time.ParseDuration(o.val)
	if err != nil {
		return 0, s.badOption(o, "want a duration such as 200ms or 3s")
	}
	if d < 0 && allowZero {
		return 0, s.badOption(o, "want a duration of zero or more")
	}
	if d <= 0 && !allowZero {
		return 0, s.badOption(o, "want a duration greater than zero")
	}
	return d, nil
}

// sizeOpt returns the size option key, def if absent, checked to lie in
// [lo, hi].
func (s *spec) sizeOpt(key string, def, lo, hi int64) (int64, error) {
	o, ok := s.lookup(key)
	if !ok {
		return def, nil
	}
	n, err := parseSize(o.val)
	if err != nil {
		return 0, s.badOption(o, "want a size such as 1500, 64K or 1M")
	}
	if n < lo || n > hi {
		return 0, s.badOption(o, rangeReason("a size", lo, hi)+" bytes")
	}
	return n, nil
}

// parseSize parses a byte count with an optional binary K, M or G suffix,
// the way iperf reads buffer sizes (128K is 131072).
func parseSize(v string) (int64, error) {
	mult := int64(1)
	if v != "" {
		switch v[len(v)-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		}
		if mult != 1 {
			v = v[:len(v)-1]
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid size %q", v)
	}
	return n * mult, nil
}

// rate is a sending rate: packets per second or payload bits per second.
// The zero rate means unlimited.
type rate struct {
	PPS float64
	BPS float64
}

// rateOpt returns the rate option key; absent means unlimited.
func (s *spec) rateOpt(key string) (rate, error) {
	o, ok := s.lookup(key)
	if !ok {
		return rate{}, nil
	}
	r, err := parseRate(o.val)
	if err != nil {
		return rate{}, s.badOption(o, "want a rate such as 1000, 1000pps, 10Mbit or 1Gbit")
	}
	return r, nil
}

// rateUnits maps a lower-cased rate suffix to its unit and multiplier.
// Network rates are decimal, unlike sizes.
var rateUnits = map[string]struct {
	bits bool
	mult float64
}{
	"": {false, 1}, "pps": {false, 1}, "kpps": {false, 1e3}, "mpps": {false, 1e6},
	"bit": {true, 1}, "kbit": {true, 1e3}, "mbit": {true, 1e6}, "gbit": {true, 1e9},
}

// parseRate parses a packet or bit rate such as 1000, 1000pps or 10Mbit.
func parseRate(v string) (rate, error) {
	i := strings.IndexFunc(v, func(r rune) bool { return !(r >= '0' && r <= '9' || r == '.') })
	if i < 0 {
		i = len(v)
	}
	num, suffix := v[:i], strings.ToLower(v[i:])
	unit, ok := rateUnits[suffix]
	f, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || f < 0 || math.IsInf(f, 0) {
		return rate{}, fmt.Errorf("invalid rate %q", v)
	}
	if unit.bits {
		return rate{BPS: f * unit.mult}, nil
	}
	return rate{PPS: f * unit.mult}, nil
}

// proto parses a tcp|udp argument.
func (s *spec) proto(tok string) (string, error) {
	switch tok {
	case "tcp", "udp":
		return tok, nil
	}
	return "", s.badArg("protocol", tok, "want tcp or udp"+suggest.DidYouMean(tok, []string{"tcp", "udp"}))
}

// dialAddr parses a client's ADDR:PORT. There is no DNS on a host
// function, so the address must be an IP literal.
func (s *spec) dialAddr(tok string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(tok)
	if err != nil {
		return netip.AddrPort{}, s.badArg("address", tok, "want IP:PORT such as 192.0.2.2:7 or [2001:db8::2]:7 (there is no DNS)")
	}
	if ap.Port() == 0 {
		return netip.AddrPort{}, s.badArg("address", tok, "want a port from 1 to 65535")
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// listenAddr parses a server's PORT, :PORT or ADDR:PORT. A bare port means
// all addresses of both families, which Net takes as the zero address.
// Port 0 picks a free port, which the server logs.
func (s *spec) listenAddr(tok string) (netip.AddrPort, error) {
	port := strings.TrimPrefix(tok, ":")
	if n, err := strconv.ParseUint(port, 10, 16); err == nil {
		return netip.AddrPortFrom(netip.Addr{}, uint16(n)), nil
	}
	ap, err := netip.ParseAddrPort(tok)
	if err != nil {
		return netip.AddrPort{}, s.badArg("listen address", tok, "want PORT, :PORT or IP:PORT such as 9000, :9000, 192.0.2.2:9000 or [::]:9000")
	}
	return ap, nil
}

// protoListen parses a server's address in one word (tcp:PORT,
// udp:ADDR:PORT) or two (tcp PORT, udp ADDR:PORT), from the positional
// arguments.
func (s *spec) protoListen(usage string) (string, netip.AddrPort, error) {
	if len(s.args) == 0 {
		return "", netip.AddrPort{}, fmt.Errorf("missing tcp:PORT or udp:PORT in %q (usage: %s)", s.text, usage)
	}
	first := s.args[0]
	if p, rest, ok := strings.Cut(first, ":"); ok && (p == "tcp" || p == "udp") {
		if err := s.wantArgs(1, 1, nil, usage); err != nil {
			return "", netip.AddrPort{}, err
		}
		ap, err := s.listenAddr(rest)
		return p, ap, err
	}
	if p, _, ok := strings.Cut(first, ":"); ok && isOptionName(p) && p != "" {
		return "", netip.AddrPort{}, s.badArg("protocol", p, "want tcp:PORT or udp:PORT"+suggest.DidYouMean(p, []string{"tcp", "udp"}))
	}
	p, err := s.proto(first)
	if err != nil {
		return "", netip.AddrPort{}, err
	}
	if err := s.wantArgs(2, 2, []string{"", "PORT or ADDR:PORT"}, usage); err != nil {
		return "", netip.AddrPort{}, err
	}
	ap, err := s.listenAddr(s.args[1])
	return p, ap, err
}

// listenLabel names a server in its output: "udp:9000" when it listens on
// every address, "udp:192.0.2.2:9000" otherwise.
func listenLabel(proto string, ap netip.AddrPort) string {
	return proto + ":" + strings.TrimPrefix(addrLabel(ap), ":")
}

// addrLabel names a listen address: ":80" for every address, else
// "192.0.2.2:80" or "[2001:db8::2]:80".
func addrLabel(ap netip.AddrPort) string {
	if !ap.Addr().IsValid() {
		return fmt.Sprintf(":%d", ap.Port())
	}
	return ap.String()
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// joinNames lists names for an error message.
func joinNames(names []string) string {
	return strings.Join(names, ", ")
}
