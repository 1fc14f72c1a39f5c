package netstack

import (
	"crypto/sha256"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/nfpipe/nfpipe/netstack/frame"
)

// Config describes one stack: its NICs, routes and neighbours. It is plain
// data; New turns it into a running stack.
type Config struct {
	// Name names the network function; it seeds default MAC addresses and
	// appears in logs.
	Name string
	// Forwarding makes the stack a router: packets not addressed to it are
	// forwarded between its NICs.
	Forwarding bool
	// NICs are the interfaces, in order; the first gets NIC ID 1.
	NICs []NICConfig
	// Routes are static routes, in addition to the connected subnet of
	// every address.
	Routes []Route
	// Neighbors are static ARP/NDP entries.
	Neighbors []Neighbor
	// ConnectTimeout bounds how long a unix: interface retries connecting
	// to a listener that is not there yet. Zero means DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// Conntrack bounds connection tracking once rules are installed.
	Conntrack ConntrackConfig
	// EndOn names the interfaces whose input ending ends the stack (Done);
	// empty means every interface whose receive side can end.
	EndOn []string
	// OnBurst, when set, is called from a receive loop for a frame that
	// arrives with more already waiting behind it: the function is busy.
	// It runs on the receive path and must return at once.
	OnBurst func()
}

// DefaultConnectTimeout is how long a unix: interface waits for its listener.
const DefaultConnectTimeout = 10 * time.Second

// DefaultMTU is the MTU of an interface that does not set one.
const DefaultMTU = 1500

// MaxMTU is the largest MTU: the IP packet plus the Ethernet header must fit
// in the largest frame every format carries.
const MaxMTU = frame.MaxFrame - 14

// NICConfig describes one interface.
type NICConfig struct {
	// Name is the interface name (eth0, uplink, ...), used in routes, rules
	// and counters.
	Name string
	// MAC is the interface's address; nil derives a stable one from the
	// function name, the interface name and its first address.
	MAC net.HardwareAddr
	// MTU is the IP MTU; zero means DefaultMTU.
	MTU uint32
	// Addrs are the interface's IPv4 and IPv6 addresses with prefix length.
	Addrs []netip.Prefix
	// Link says where frames come from and go to.
	Link LinkSpec
	// Capture, when set, is a path (file or FIFO) that receives a pcap of
	// every frame the interface sends and receives.
	Capture string
}

// Route is a static route. An invalid Gateway makes the route on-link.
type Route struct {
	Dst     netip.Prefix
	Gateway netip.Addr
	// NIC names the outgoing interface; empty picks the interface whose
	// subnet holds the gateway.
	NIC string
}

// String renders the route the way `ip route` does.
func (r Route) String() string {
	s := r.Dst.String()
	if r.Dst.Bits() == 0 {
		s = "default"
	}
	if r.Gateway.IsValid() {
		s += " via " + r.Gateway.String()
	}
	if r.NIC != "" {
		s += " dev " + r.NIC
	}
	return s
}

// Neighbor is a static neighbour entry.
type Neighbor struct {
	Addr netip.Addr
	MAC  net.HardwareAddr
	// NIC names the interface; empty picks the one whose subnet holds Addr.
	NIC string
}

// DefaultMAC derives a stable, locally administered unicast MAC address from
// the function name, the interface name and the interface's first address,
// so that two functions on one link never collide by default and a restart
// keeps the same address.
func DefaultMAC(function, nic string, first netip.Prefix) net.HardwareAddr {
	seed := function + "/" + nic
	if first.IsValid() {
		seed += "/" + first.Addr().String()
	}
	sum := sha256.Sum256([]byte(seed))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = (mac[0] | 0x02) &^ 0x01 // locally administered, unicast
	return mac
}

func (c *Config) connectTimeout() time.Duration {
	if c.ConnectTimeout > 0 {
		return c.ConnectTimeout
	}
	return DefaultConnectTimeout
}

// validate checks one config for mistakes that need no I/O to find.
func (c *Config) validate() error {
	if len(c.NICs) == 0 {
		return fmt.Errorf("no interfaces: give at least one --if NAME=ENDPOINT")
	}
	seen := map[string]bool{}
	addrs := map[netip.Addr]string{}
	for i := range c.NICs {
		n := &c.NICs[i]
		if n.Name == "" {
			return fmt.Errorf("interface %d has no name", i+1)
		}
		if seen[n.Name] {
			return fmt.Errorf("interface %q is defined twice", n.Name)
		}
		seen[n.Name] = true
		if n.MTU != 0 && (n.MTU < 68 || n.MTU > MaxMTU) {
			return fmt.Errorf("interface %q: mtu %d out of range 68..%d", n.Name, n.MTU, MaxMTU)
		}
		for _, p := range n.Addrs {
			if p.Addr().Is6() && n.MTU != 0 && n.MTU < 1280 {
				return fmt.Errorf("interface %q: IPv6 address %s needs mtu >= 1280 (have %d)", n.Name, p, n.MTU)
			}
			if other, dup := addrs[p.Addr()]; dup {
				return fmt.Errorf("address %s is on both %q and %q", p.Addr(), other, n.Name)
			}
			addrs[p.Addr()] = n.Name
		}
		if n.MAC != nil && (len(n.MAC) != 6 || n.MAC[0]&1 != 0) {
			return fmt.Errorf("interface %q: mac %s is not a unicast Ethernet address", n.Name, n.MAC)
		}
		if err := n.Link.validate(); err != nil {
			return fmt.Errorf("interface %q: %w", n.Name, err)
		}
	}
	for _, r := range c.Routes {
		if r.NIC != "" && !seen[r.NIC] {
			return fmt.Errorf("route %s: no interface %q", r, r.NIC)
		}
		if r.Gateway.IsValid() && r.Gateway.Is4() != r.Dst.Addr().Is4() {
			return fmt.Errorf("route %s: gateway and destination are of different IP families", r)
		}
	}
	for _, nb := range c.Neighbors {
		if nb.NIC != "" && !seen[nb.NIC] {
			return fmt.Errorf("neighbour %s: no interface %q", nb.Addr, nb.NIC)
		}
	}
	for _, name := range c.EndOn {
		if !seen[name] {
			return fmt.Errorf("end on %q: no such interface", name)
		}
	}
	return nil
}
