// Package netstack owns everything that touches gVisor: one user-space
// TCP/IP stack per network function, its NICs, the link endpoints that move
// Ethernet frames over files and streams (stdin/stdout, FIFOs, unix sockets,
// pcap files, TAP devices), and the counters that make every dropped frame
// visible.
//
// It is the only package of nfpipe that imports gvisor.dev/gvisor. Callers
// get a small API in return: a Stack with TCP/UDP dialers and listeners that
// return standard net.Conn, net.Listener and net.PacketConn values, an ICMP
// pinger, and counters as plain maps.
package netstack
