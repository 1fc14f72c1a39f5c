package netstack

import (
	"reflect"
	"strings"
	"sync/atomic"
	"unicode"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// LinkStats counts what happens to frames at an interface, below the stack.
// Together with the stack's own counters they account for every frame: a
// frame that is not delivered or sent is counted in one of the drop fields.
type LinkStats struct {
	RxFrames     atomic.Uint64 // frames read from the receive side
	RxBytes      atomic.Uint64
	RxMalformed  atomic.Uint64 // bad length, truncated, bad hex, bad pcap record: skipped
	RxOtherHost  atomic.Uint64 // unicast frames for another MAC: dropped, as a NIC does
	RxDropped    atomic.Uint64 // frames that arrived before the stack attached, or were read as it closed
	RxTTLExpired atomic.Uint64 // IPv4 packets that arrived with TTL 1 to be forwarded: answered with time-exceeded
	TxFrames     atomic.Uint64 // frames written to the transmit side
	TxBytes      atomic.Uint64
	TxNoPath     atomic.Uint64 // frames sent with no transmit side (one-way link, no peer yet, closing): dropped
	TxErrors     atomic.Uint64 // write errors (the reader went away)
	TxWaits      atomic.Uint64 // times a sender waited for room in the queue (backpressure)
	TxQueueDrops atomic.Uint64 // frames dropped after waiting for room (2s one-way, 5ms two-way)
	TxOversize   atomic.Uint64 // frames larger than the MTU that are not TCP segments to split: dropped
	TxLarge      atomic.Uint64 // TCP segments larger than the MTU sent whole (GSO links)
	TxSplit      atomic.Uint64 // TCP segments larger than the MTU split here into MTU-sized frames
}

// Map returns the counters by name.
func (s *LinkStats) Map() map[string]uint64 {
	return map[string]uint64{
		"rx_frames":      s.RxFrames.Load(),
		"rx_bytes":       s.RxBytes.Load(),
		"rx_malformed":   s.RxMalformed.Load(),
		"rx_other_host":  s.RxOtherHost.Load(),
		"rx_dropped":     s.RxDropped.Load(),
		"rx_ttl_expired": s.RxTTLExpired.Load(),
		"tx_frames":      s.TxFrames.Load(),
		"tx_bytes":       s.TxBytes.Load(),
		"tx_no_path":     s.TxNoPath.Load(),
		"tx_errors":      s.TxErrors.Load(),
		"tx_waits":       s.TxWaits.Load(),
		"tx_queue_drops": s.TxQueueDrops.Load(),
		"tx_oversize":    s.TxOversize.Load(),
		"tx_large":       s.TxLarge.Load(),
		"tx_split":       s.TxSplit.Load(),
	}
}

// Drops sums the counters that stand for lost frames.
func (s *LinkStats) Drops() uint64 {
	return s.RxMalformed.Load() + s.RxOtherHost.Load() + s.RxDropped.Load() +
		s.TxNoPath.Load() + s.TxErrors.Load() + s.TxQueueDrops.Load() + s.TxOversize.Load()
}

// counterMap flattens a gVisor stats struct into dotted snake_case names,
// e.g. "ip.forwarding.exhausted_ttl". Walking the struct by reflection keeps
// every counter gVisor has, including ones added by an upgrade.
func counterMap(prefix string, v any, out map[string]uint64) {
	walkStats(prefix, reflect.ValueOf(v), out)
}

var statCounterType = reflect.TypeOf((*tcpip.StatCounter)(nil))

func walkStats(prefix string, v reflect.Value, out map[string]uint64) {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		if v.Type() == statCounterType {
			out[prefix] = v.Interface().(*tcpip.StatCounter).Value()
			return
		}
		if m, ok := v.Interface().(*tcpip.IntegralStatCounterMap); ok {
			for _, k := range m.Keys() {
				if c, ok := m.Get(k); ok {
					out[prefix+"."+uitoa(k)] = c.Value()
				}
			}
			return
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := prefix
		if !f.Anonymous { // embedded structs add fields, not a level
			name = snake(f.Name)
			if prefix != "" {
				name = prefix + "." + name
			}
		}
		walkStats(name, v.Field(i), out)
	}
}

func uitoa(u uint64) string {
	if u == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for u > 0 {
		i--
		b[i] = byte('0' + u%10)
		u /= 10
	}
	return string(b[i:])
}

// snake turns "PacketsReceived" into "packets_received", "ICMP" into "icmp"
// and "ICMPv4" into "icmpv4".
func snake(s string) string {
	s = strings.NewReplacer("v4", "V4", "v6", "V6").Replace(s)
	var b strings.Builder
	r := []rune(s)
	for i, c := range r {
		if unicode.IsUpper(c) {
			if i > 0 && (unicode.IsLower(r[i-1]) || (i+1 < len(r) && unicode.IsLower(r[i+1]) && unicode.IsUpper(r[i-1]))) {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(c))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Stats is a snapshot of a stack's counters.
type Stats struct {
	// Interfaces holds, per NIC, nfpipe's link counters (rx_frames,
	// tx_no_path, ...) and gVisor's NIC counters (nic.rx.packets, ...).
	Interfaces []InterfaceStats `json:"interfaces"`
	// Protocols holds gVisor's per-protocol counters by dotted name
	// (ip.packets_received, tcp.retransmits, udp.unknown_port_errors, ...).
	Protocols map[string]uint64 `json:"protocols"`
	// Conntrack is the connection tracking table's state, once rules are
	// installed.
	Conntrack *ConntrackStats `json:"conntrack,omitempty"`
}

// InterfaceStats are one NIC's counters.
type InterfaceStats struct {
	InterfaceInfo
	Counters map[string]uint64 `json:"counters"`
	// Drops sums the link counters that stand for lost frames.
	Drops uint64 `json:"drops"`
}

// Stats returns the current counters.
func (s *Stack) Stats() Stats {
	var out Stats
	infos := s.s.NICInfo()
	ifs := s.Interfaces()
	for i, st := range s.nics {
		c := st.stats.Map()
		if info, ok := infos[st.id]; ok {
			counterMap("nic", info.Stats, c)
		}
		out.Interfaces = append(out.Interfaces, InterfaceStats{InterfaceInfo: ifs[i], Counters: c, Drops: st.stats.Drops()})
	}
	out.Protocols = map[string]uint64{}
	st := s.s.Stats()
	counterMap("ip", st.IP, out.Protocols)
	counterMap("icmp", st.ICMP, out.Protocols)
	counterMap("arp", st.ARP, out.Protocols)
	counterMap("tcp", st.TCP, out.Protocols)
	counterMap("udp", st.UDP, out.Protocols)
	counterMap("dropped_packets", st.DroppedPackets, out.Protocols)
	if s.fast != nil {
		// Forwarded by nfpipe's fast path: not in gVisor's ip.* counters.
		out.Protocols["fast_path.forwarded"] = s.fast.forwarded.Load()
	}
	if s.ct.enabled.Load() {
		cs := s.ct.stats()
		out.Conntrack = &cs
	}
	return out
}
