// Command nfpipe runs network functions, each on its own user-space TCP/IP
// stack in its own process, that exchange Ethernet frames over files and
// streams: `nfpipe vnf host ... | nfpipe vnf router ... | nfpipe vnf host ...`.
package main

import (
	"os"
)

func main() {
	os.Exit(execute(os.Args[1:]))
}
