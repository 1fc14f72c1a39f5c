package chain

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The host side of tap links: the runner creates a link's namespace and
// TAP device, configures the device, and installs the chain's nftables
// table before any function starts. A function then opens its TAP in the
// link's namespace (tap:DEVICE,netns=NS), so nothing moves while it runs,
// and a restarted function finds its device as it was. Every object is
// written to the chain's host record before it is made; teardown and the
// next start after a crash remove what the record lists, in reverse.

// netnsDir is where named network namespaces are bind-mounted, as
// iproute2 does (`ip netns`).
const netnsDir = "/run/netns"

// hostRecord lists the host objects a runner made, in the order made.
type hostRecord struct {
	// PID is the runner that made them: a runner only tears down its own.
	PID     int          `json:"pid"`
	Objects []hostObject `json:"objects"`
}

// Host object kinds.
const (
	objNetns    = "netns"
	objTAP      = "tap"
	objAddr     = "addr"  // an address added to a device the runner did not create
	objRoute    = "route" // a route through such a device
	objNFTables = "nftables"
)

// hostObject is one object of the record.
type hostObject struct {
	Kind string `json:"kind"`
	// Netns is where the object is (empty: the runner's namespace).
	Netns string `json:"netns,omitempty"`
	// Name is the namespace, the device, or the table.
	Name string `json:"name"`
	// Addr is an address, or a route's destination; Via a route's
	// gateway.
	Addr string `json:"addr,omitempty"`
	Via  string `json:"via,omitempty"`
}

func (o hostObject) String() string {
	switch o.Kind {
	case objNetns:
		return "netns " + o.Name
	case objTAP:
		return "TAP device " + o.Name + nsText(o.Netns)
	case objAddr:
		return "address " + o.Addr + " on " + o.Name + nsText(o.Netns)
	case objRoute:
		s := "route " + o.Addr
		if o.Via != "" {
			s += " via " + o.Via
		}
		return s + " dev " + o.Name + nsText(o.Netns)
	}
	return "nftables table inet " + o.Name + nsText(o.Netns)
}

// recorder appends objects to the record file, rewriting it whole each
// time (it is small), before the object is made: a runner killed right
// after making it leaves it listed.
type recorder struct {
	path string
	rec  hostRecord
}

func (r *recorder) add(o hostObject) error {
	r.rec.Objects = append(r.rec.Objects, o)
	return r.write()
}

// drop forgets the last object: it was there before (an address or route
// a device had already), so it is not the runner's to remove.
func (r *recorder) drop() error {
	r.rec.Objects = r.rec.Objects[:len(r.rec.Objects)-1]
	return r.write()
}

func (r *recorder) write() error {
	b, err := json.MarshalIndent(r.rec, "", "  ")
	if err != nil {
		return err
	}
	tmp := r.path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("host record: %w", err)
	}
	if err := os.Rename(tmp, r.path); err != nil {
		return fmt.Errorf("host record: %w", err)
	}
	return nil
}

// capabilities reports whether the process has CAP_NET_ADMIN and
// CAP_SYS_ADMIN in its effective set.
func capabilities() (netAdmin, sysAdmin bool) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false, false
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	return has(unix.CAP_NET_ADMIN), has(unix.CAP_SYS_ADMIN)
}

// checkHostPrivileges says which tap links cannot be set up for lack of
// privileges, before anything is made.
func checkHostPrivileges(p *Plan) error {
	if p.Host == nil {
		return nil
	}
	netAdmin, sysAdmin := capabilities()
	var bad []string
	for _, t := range p.Host.TAPs {
		l := p.Links[t.Link].Name
		switch {
		case !netAdmin:
			bad = append(bad, fmt.Sprintf("link %s needs CAP_NET_ADMIN to create and configure its TAP device %s", l, t.Device))
		case t.Netns != "" && !sysAdmin:
			bad = append(bad, fmt.Sprintf("link %s needs CAP_SYS_ADMIN to reach netns %s", l, t.Netns))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("%s: run `nfpipe chain up` as root", strings.Join(bad, "; "))
}

// setupHost makes the plan's host objects. warn receives what the user
// should know but does not stop the chain (forwarding off in a namespace
// the runner does not own). On error, what was made is in the record, for
// teardown.
func setupHost(p *Plan, warn io.Writer) error {
	h := p.Host
	rec := &recorder{path: h.Record, rec: hostRecord{PID: os.Getpid()}}
	for _, n := range h.Netns {
		_, err := os.Stat(filepath.Join(netnsDir, n.Name))
		switch {
		case n.Create && err == nil:
			return fmt.Errorf("netns %s exists already, and this chain did not create it: delete it (ip netns del %s), or write netns: %s to use it as it is", n.Name, n.Name, n.Name)
		case n.Create:
			if err := rec.add(hostObject{Kind: objNetns, Name: n.Name}); err != nil {
				return err
			}
			if err := createNetns(n.Name); err != nil {
				return fmt.Errorf("netns %s: %w", n.Name, err)
			}
		case err != nil:
			return fmt.Errorf("netns %s does not exist: create it (ip netns add %s), or write netns: {name: %s, create: true}", n.Name, n.Name, n.Name)
		}
	}
	for _, t := range h.TAPs {
		if err := setupTAP(t, p.Links[t.Link].Ends[0], rec); err != nil {
			return fmt.Errorf("TAP device %s%s: %w", t.Device, nsText(t.Netns), err)
		}
	}
	for _, f := range h.Forwarding {
		if err := forwarding(f, warn); err != nil {
			return fmt.Errorf("forwarding%s: %w", nsText(f.Netns), err)
		}
	}
	for _, t := range h.NFTables {
		if err := installTable(t, rec); err != nil {
			return fmt.Errorf("nftables table %s %s%s: %w", t.Family, t.Name, nsText(t.Netns), err)
		}
	}
	return nil
}

// createNetns creates a named network namespace as `ip netns add` does,
// with its loopback up.
func createNetns(name string) error {
	if err := shareNetnsDir(); err != nil {
		return err
	}
	var ns netns.NsHandle
	err := inThread(func() error {
		var err error
		ns, err = netns.NewNamed(name)
		if err != nil {
			// NewNamed leaves its mount point behind when the mount fails.
			os.Remove(filepath.Join(netnsDir, name))
		}
		return err
	})
	if err != nil {
		return err
	}
	defer ns.Close()
	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer nh.Close()
	lo, err := nh.LinkByName("lo")
	if err != nil {
		return err
	}
	return nh.LinkSetUp(lo)
}

// shareNetnsDir makes netnsDir a shared mount point, as iproute2 does, so
// that deleting a namespace's mount propagates to the mount namespaces
// that hold a copy and the namespace is freed.
func shareNetnsDir() error {
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return err
	}
	for made := false; ; made = true {
		err := unix.Mount("", netnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			return nil
		}
		if err != unix.EINVAL || made {
			return fmt.Errorf("mount --make-rshared %s: %w", netnsDir, err)
		}
		if err := unix.Mount(netnsDir, netnsDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("mount --rbind %s: %w", netnsDir, err)
		}
	}
}

// inThread runs fn on a locked OS thread of its own, which fn may move to
// another network namespace: the thread goes back to the runner's before
// it is released, or is never released (the runtime ends a thread still
// locked when its goroutine returns), so no other goroutine runs there.
func inThread(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer self.Close()
		err = fn()
		if netns.Set(self) == nil {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	return <-done
}

// nsHandle opens the namespace name (empty: the runner's). ok is false
// when a named namespace does not exist.
func nsHandle(name string) (ns netns.NsHandle, ok bool, err error) {
	if name == "" {
		ns, err = netns.Get()
		return ns, err == nil, err
	}
	ns, err = netns.GetFromPath(filepath.Join(netnsDir, name))
	if errors.Is(err, os.ErrNotExist) {
		return ns, false, nil
	}
	return ns, err == nil, err
}

// linkHandle returns a netlink handle in the namespace name.
func linkHandle(name string) (*netlink.Handle, bool, error) {
	ns, ok, err := nsHandle(name)
	if !ok {
		return nil, false, err
	}
	defer ns.Close()
	nh, err := netlink.NewHandleAt(ns)
	return nh, err == nil, err
}

// setupTAP creates (or finds) a tap link's device and configures it.
func setupTAP(t TAPPlan, end End, rec *recorder) error {
	nh, _, err := linkHandle(t.Netns)
	if err != nil {
		return err
	}
	defer nh.Close()
	link, err := nh.LinkByName(t.Device)
	found := err == nil
	var nf netlink.LinkNotFoundError
	if err != nil && !errors.As(err, &nf) {
		return err
	}
	switch {
	case found && !t.Named:
		return fmt.Errorf("it exists already, and this chain did not create it (the same chain from another runtime directory?): delete it (ip link del %s) if it is a leftover", t.Device)
	case found:
		tt, ok := link.(*netlink.Tuntap)
		if !ok || tt.Mode != netlink.TUNTAP_MODE_TAP {
			return fmt.Errorf("it exists and is not a TAP device (it is a %s)", link.Type())
		}
		if mtu := link.Attrs().MTU; mtu != int(t.MTU) {
			return fmt.Errorf("it exists with MTU %d, and %s has %d: give the interface mtu: %d", mtu, end, t.MTU, mtu)
		}
	default:
		if err := rec.add(hostObject{Kind: objTAP, Netns: t.Netns, Name: t.Device}); err != nil {
			return err
		}
		if err := createTAP(t.Device, t.Netns); err != nil {
			return fmt.Errorf("create: %w", err)
		}
		if link, err = nh.LinkByName(t.Device); err != nil {
			return err
		}
		if err := nh.LinkSetMTU(link, int(t.MTU)); err != nil {
			return fmt.Errorf("mtu %d: %w", t.MTU, err)
		}
	}
	for _, a := range t.Addrs {
		addr := &netlink.Addr{IPNet: ipNet(a)}
		if a.Addr().Is6() {
			// The device comes up without a carrier until the function
			// attaches: without nodad the address would stay tentative.
			addr.Flags = unix.IFA_F_NODAD
		}
		if found {
			if err := rec.add(hostObject{Kind: objAddr, Netns: t.Netns, Name: t.Device, Addr: a.String()}); err != nil {
				return err
			}
		}
		if err := nh.AddrAdd(link, addr); err != nil {
			if found && errors.Is(err, unix.EEXIST) {
				if err := rec.drop(); err != nil {
					return err
				}
				continue
			}
			return fmt.Errorf("address %s: %w", a, err)
		}
	}
	if err := nh.LinkSetUp(link); err != nil {
		return fmt.Errorf("up: %w", err)
	}
	for _, r := range t.Routes {
		route := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(r.Dst)}
		if r.Via.IsValid() {
			route.Gw = net.IP(r.Via.AsSlice())
		}
		if found {
			o := hostObject{Kind: objRoute, Netns: t.Netns, Name: t.Device, Addr: r.Dst.String()}
			if r.Via.IsValid() {
				o.Via = r.Via.String()
			}
			if err := rec.add(o); err != nil {
				return err
			}
		}
		if err := nh.RouteAdd(route); err != nil {
			if found && errors.Is(err, unix.EEXIST) {
				if err := rec.drop(); err != nil {
					return err
				}
				continue
			}
			return fmt.Errorf("route %s: %w", r, err)
		}
	}
	return nil
}

// createTAP creates a persistent TAP device in the namespace ns: its
// function attaches to it, and a restarted function finds it again.
func createTAP(name, ns string) error {
	h, ok, err := nsHandle(ns)
	if !ok {
		return fmt.Errorf("netns %s: %w", ns, err)
	}
	defer h.Close()
	return inThread(func() error {
		// /dev/net/tun makes the device in the namespace of the thread
		// that opens it.
		if err := netns.Set(h); err != nil {
			return err
		}
		return netlink.LinkAdd(&netlink.Tuntap{
			LinkAttrs: netlink.LinkAttrs{Name: name},
			Mode:      netlink.TUNTAP_MODE_TAP,
			// no packet information header (what the function opens it
			// with); TUN_EXCL: fail rather than take a device someone
			// made in the meantime.
			Flags: netlink.TUNTAP_NO_PI | netlink.TUNTAP_TUN_EXCL,
		})
	})
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// forwarding turns IP forwarding on in a namespace the runner created, or
// warns when it is off in one it did not.
func forwarding(f ForwardingPlan, warn io.Writer) error {
	var keys []string
	for _, k := range f.sysctls() {
		keys = append(keys, "/proc/sys/"+strings.ReplaceAll(k, ".", "/"))
	}
	h, ok, err := nsHandle(f.Netns)
	if !ok {
		return err
	}
	defer h.Close()
	var off []string
	err = inThread(func() error {
		// /proc/sys/net shows the namespace of the thread that opens it.
		if err := netns.Set(h); err != nil {
			return err
		}
		for _, k := range keys {
			if f.Set {
				if err := os.WriteFile(k, []byte("1\n"), 0o644); err != nil {
					return err
				}
				continue
			}
			b, err := os.ReadFile(k)
			if err != nil {
				return err
			}
			if strings.TrimSpace(string(b)) == "0" {
				off = append(off, strings.ReplaceAll(strings.TrimPrefix(k, "/proc/sys/"), "/", ".")+"=1")
			}
		}
		return nil
	})
	if err == nil && len(off) > 0 {
		fmt.Fprintf(warn, "nfpipe: forwarding is off%s: traffic to and from the chain's TAP devices there will not be forwarded (sysctl -w %s); nfpipe does not change host settings it did not create\n", nsText(f.Netns), strings.Join(off, " "))
	}
	return err
}

// nftConn returns an nftables connection in the namespace name, and what
// to call when done with it; ok is false when the namespace does not
// exist.
func nftConn(name string) (c *nftables.Conn, done func(), ok bool, err error) {
	if name == "" {
		c, err = nftables.New()
		return c, func() {}, err == nil, err
	}
	ns, ok, err := nsHandle(name)
	if !ok {
		return nil, nil, false, err
	}
	// The connection dials a socket in ns for each transaction: the
	// handle must stay open until it is done.
	c, err = nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		ns.Close()
		return nil, nil, false, err
	}
	return c, func() { ns.Close() }, true, nil
}

// hasTable reports whether the namespace has an inet table of that name.
func hasTable(c *nftables.Conn, name string) (bool, error) {
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, err
	}
	for _, t := range ts {
		if t.Name == name {
			return true, nil
		}
	}
	return false, nil
}

// installTable installs the chain's nftables table in one namespace, in
// one transaction.
func installTable(t NFTablePlan, rec *recorder) error {
	c, done, _, err := nftConn(t.Netns)
	if err != nil {
		return err
	}
	defer done()
	exists, err := hasTable(c, t.Name)
	if err != nil {
		return fmt.Errorf("list tables: %w", err)
	}
	if exists {
		return fmt.Errorf("it exists already, and this chain did not create it (the same chain from another runtime directory?): delete it (nft delete table inet %s) if it is a leftover", t.Name)
	}
	if err := rec.add(hostObject{Kind: objNFTables, Netns: t.Netns, Name: t.Name}); err != nil {
		return err
	}
	table := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: t.Name})
	accept := nftables.ChainPolicyAccept
	for _, cp := range t.Chains {
		ch := &nftables.Chain{Name: cp.Name, Table: table, Priority: nftables.ChainPriorityRef(nftables.ChainPriority(cp.Priority)), Policy: &accept}
		switch cp.Type {
		case "nat":
			ch.Type = nftables.ChainTypeNAT
		default:
			ch.Type = nftables.ChainTypeFilter
		}
		switch cp.Hook {
		case "postrouting":
			ch.Hooknum = nftables.ChainHookPostrouting
		default:
			ch.Hooknum = nftables.ChainHookForward
		}
		c.AddChain(ch)
		for _, r := range cp.Rules {
			c.AddRule(&nftables.Rule{Table: table, Chain: ch, Exprs: ruleExprs(r)})
		}
	}
	return c.Flush()
}

// ruleExprs compiles a rule into nftables expressions.
func ruleExprs(r NFTRule) []expr.Any {
	var out []expr.Any
	match := func(key expr.MetaKey, op expr.CmpOp, name string) {
		out = append(out,
			&expr.Meta{Key: key, Register: 1},
			&expr.Cmp{Op: op, Register: 1, Data: ifname(name)})
	}
	if r.IIF != "" {
		match(expr.MetaKeyIIFNAME, expr.CmpOpEq, r.IIF)
	}
	if r.OIF != "" {
		match(expr.MetaKeyOIFNAME, expr.CmpOpEq, r.OIF)
	}
	if r.NotOIF != "" {
		match(expr.MetaKeyOIFNAME, expr.CmpOpNeq, r.NotOIF)
	}
	out = append(out, &expr.Counter{})
	switch r.Verdict {
	case "masquerade":
		out = append(out, &expr.Masq{})
	default:
		out = append(out, &expr.Verdict{Kind: expr.VerdictAccept})
	}
	return out
}

// ifname is an interface name as the kernel compares it: IFNAMSIZ bytes,
// NUL-padded.
func ifname(s string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, s)
	return b
}

// cleanHost removes what the record at path lists, in reverse order, and
// then the record. With mine set, it does so only if this process made
// the record (a runner that failed to start must not undo the objects of
// the one that runs). Objects already gone are skipped; the others that
// cannot be removed are reported.
func cleanHost(path string, mine bool) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var rec hostRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		os.Remove(path)
		return fmt.Errorf("host record %s: %w (removed; check `ip link`, `ip netns` and `nft list tables` for leftovers)", path, err)
	}
	if mine && rec.PID != os.Getpid() {
		return nil
	}
	var errs []string
	for i := len(rec.Objects) - 1; i >= 0; i-- {
		o := rec.Objects[i]
		if err := removeObject(o); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", o, err))
		}
	}
	os.Remove(path)
	if len(errs) > 0 {
		return fmt.Errorf("removing what the chain made in the host: %s", strings.Join(errs, "; "))
	}
	return nil
}

// removeObject removes one recorded object; one already gone is no error.
func removeObject(o hostObject) error {
	switch o.Kind {
	case objNetns:
		err := netns.DeleteNamed(o.Name)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EINVAL) {
			// Not mounted (a crash between the record and the mount):
			// the file may remain.
			err = os.Remove(filepath.Join(netnsDir, o.Name))
			if errors.Is(err, os.ErrNotExist) {
				err = nil
			}
		}
		return err
	case objNFTables:
		c, done, ok, err := nftConn(o.Netns)
		if !ok {
			return err
		}
		defer done()
		if exists, err := hasTable(c, o.Name); err != nil || !exists {
			return err
		}
		c.DelTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: o.Name})
		return c.Flush()
	}
	nh, ok, err := linkHandle(o.Netns)
	if !ok {
		return err
	}
	defer nh.Close()
	link, err := nh.LinkByName(o.Name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return nil
	}
	if err != nil {
		return err
	}
	switch o.Kind {
	case objTAP:
		if _, ok := link.(*netlink.Tuntap); !ok {
			return fmt.Errorf("it is a %s now, not a TAP device: left alone", link.Type())
		}
		return nh.LinkDel(link)
	case objAddr:
		p, err := netip.ParsePrefix(o.Addr)
		if err != nil {
			return err
		}
		err = nh.AddrDel(link, &netlink.Addr{IPNet: ipNet(p)})
		if errors.Is(err, unix.EADDRNOTAVAIL) {
			err = nil
		}
		return err
	case objRoute:
		p, err := netip.ParsePrefix(o.Addr)
		if err != nil {
			return err
		}
		route := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(p)}
		if o.Via != "" {
			via, err := netip.ParseAddr(o.Via)
			if err != nil {
				return err
			}
			route.Gw = net.IP(via.AsSlice())
		}
		err = nh.RouteDel(route)
		if errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT) {
			err = nil
		}
		return err
	}
	return fmt.Errorf("unknown kind %q", o.Kind)
}
