// Package tests holds nfpipe's end-to-end tests. They build the real binary
// once and run every network function as a separate process, joined by OS
// pipes, FIFOs, unix sockets, socketpairs, pcap files and (as root) TAP
// devices in a network namespace of their own, and check outcomes: packet
// counts, decoded headers, counters from --stats=json and exit statuses.
//
// Run them with: go test -race -count=1 ./tests/
package tests
