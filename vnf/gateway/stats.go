package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
)

// counters are one rule's, updated as traffic flows and read at any time.
type counters struct {
	accepted, failed                           atomic.Uint64
	active                                     atomic.Int64
	refused, timeout, unreachable, other       atomic.Uint64
	bytesToChain, bytesToHost                  atomic.Uint64
	datagramsToChain, datagramsToHost, expired atomic.Uint64
}

// Stats is what a rule reports in --stats (apps[].stats).
type Stats struct {
	// Listen is where the rule takes connections: the host address for a
	// forward (with the port the kernel chose when 0 was asked), the
	// inside address and ports for an expose.
	Listen string `json:"listen"`
	// To is where it connects them.
	To string `json:"to"`
	// Accepted counts TCP connections taken, or UDP sessions begun (a
	// session is a client address and port, until it is idle for
	// --udp-timeout).
	Accepted uint64 `json:"accepted"`
	// Active counts the connections (sessions) relaying now.
	Active int64 `json:"active"`
	// Failed counts connections whose other side could not be reached,
	// and for UDP also datagrams the other side refused; Failures says why.
	Failed   uint64   `json:"failed"`
	Failures Failures `json:"failures"`
	// Bytes (payload) and UDP datagrams relayed from the host into the
	// chain, and from the chain to the host.
	BytesToChain     uint64 `json:"bytes_to_chain"`
	BytesToHost      uint64 `json:"bytes_to_host"`
	DatagramsToChain uint64 `json:"datagrams_to_chain"`
	DatagramsToHost  uint64 `json:"datagrams_to_host"`
	// SessionsExpired counts UDP sessions ended by --udp-timeout.
	SessionsExpired uint64 `json:"sessions_expired"`
}

// Failures splits Stats.Failed by reason.
type Failures struct {
	// Refused: a reset (TCP) or ICMP port unreachable (UDP) came back.
	Refused uint64 `json:"refused"`
	// Timeout: no answer within --dial-timeout.
	Timeout uint64 `json:"timeout"`
	// Unreachable: no route, or no neighbour answered (ARP/NDP).
	Unreachable uint64 `json:"unreachable"`
	// Other: anything else (the client went away during the handshake,
	// the gateway was stopping).
	Other uint64 `json:"other"`
}

func (c *counters) snapshot() Stats {
	return Stats{
		Accepted: c.accepted.Load(), Active: c.active.Load(), Failed: c.failed.Load(),
		Failures:     Failures{Refused: c.refused.Load(), Timeout: c.timeout.Load(), Unreachable: c.unreachable.Load(), Other: c.other.Load()},
		BytesToChain: c.bytesToChain.Load(), BytesToHost: c.bytesToHost.Load(),
		DatagramsToChain: c.datagramsToChain.Load(), DatagramsToHost: c.datagramsToHost.Load(),
		SessionsExpired: c.expired.Load(),
	}
}

// fail counts a failure and returns its reason.
func (c *counters) fail(err error) string {
	c.failed.Add(1)
	reason := failureReason(err)
	switch reason {
	case "refused":
		c.refused.Add(1)
	case "timeout":
		c.timeout.Add(1)
	case "unreachable":
		c.unreachable.Add(1)
	default:
		c.other.Add(1)
	}
	return reason
}

// failureReason classifies a dial or read error, from the kernel or from
// the gateway's stack (whose errors unwrap to the same errnos).
func failureReason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "unreachable"
	}
	return "other"
}

// summary is the line a rule prints when the gateway stops.
func summary(spec, proto string, s Stats) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: ", spec)
	unit := "connection"
	if proto == "udp" {
		unit = "session"
	}
	if s.Accepted != 1 {
		unit += "s"
	}
	fmt.Fprintf(&b, "%d %s", s.Accepted, unit)
	if s.Failed > 0 {
		var why []string
		for _, r := range []struct {
			n    uint64
			name string
		}{{s.Failures.Refused, "refused"}, {s.Failures.Timeout, "timeout"}, {s.Failures.Unreachable, "unreachable"}, {s.Failures.Other, "other"}} {
			if r.n > 0 {
				why = append(why, fmt.Sprintf("%d %s", r.n, r.name))
			}
		}
		fmt.Fprintf(&b, " (%d failed: %s)", s.Failed, strings.Join(why, ", "))
	}
	if proto == "udp" {
		fmt.Fprintf(&b, ", %d datagrams (%d bytes) to the chain, %d datagrams (%d bytes) to the host", s.DatagramsToChain, s.BytesToChain, s.DatagramsToHost, s.BytesToHost)
	} else {
		fmt.Fprintf(&b, ", %d bytes to the chain, %d bytes to the host", s.BytesToChain, s.BytesToHost)
	}
	return b.String()
}
