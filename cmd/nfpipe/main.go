// Command nfpipe runs network functions, each on its own user-space TCP/IP
// stack in its own process, that exchange Ethernet frames over files and
// streams: `nfpipe vnf host ... | nfpipe vnf router ... | nfpipe vnf host ...`.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
)

func main() {
	os.Exit(profiled(func() int { return execute(os.Args[1:]) }))
}

// profiled writes a CPU profile of the process to
// $NFPIPE_CPUPROFILE_DIR/nfpipe-PID.pprof when that variable is set (for
// the speed work: `go tool pprof bin/nfpipe DIR/nfpipe-PID.pprof`).
func profiled(run func() int) int {
	dir := os.Getenv("NFPIPE_CPUPROFILE_DIR")
	if dir == "" {
		return run()
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("nfpipe-%d.pprof", os.Getpid())))
	if err != nil {
		fmt.Fprintf(os.Stderr, "nfpipe: cpu profile: %v\n", err)
		return run()
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "nfpipe: cpu profile: %v\n", err)
		return run()
	}
	defer pprof.StopCPUProfile()
	return run()
}
