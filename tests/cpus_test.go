package tests

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfpipe/nfpipe/internal/cpuset"
	"github.com/nfpipe/nfpipe/vnf"
)

// threadCPUs returns the allowed CPU list of every thread of pid.
func threadCPUs(t *testing.T, pid int) map[string]string {
	t.Helper()
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "status"))
		if err != nil {
			continue // the thread exited
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
				out[e.Name()] = strings.TrimSpace(v)
			}
		}
	}
	return out
}

// TestCPUs runs functions with each --cpus setting and checks where every
// thread of them may run, and what their counters report.
func TestCPUs(t *testing.T) {
	t.Parallel()
	all, err := cpuset.Allowed()
	if err != nil {
		t.Fatal(err)
	}
	cpus := cpuset.List(all)
	if len(cpus) < 2 {
		t.Skipf("this test may use only CPUs %s: --cpus needs two or more to show anything", cpuset.Format(all))
	}
	ctx := testContext(t, time.Minute)

	t.Run("bad values", func(t *testing.T) {
		r := nfpipe(t, ctx, 10*time.Second, "vnf", "router", "--cpus", "1000", "--if", "eth0=stdin")
		wantCode(t, "--cpus 1000", r, 2)
		wantContains(t, "--cpus 1000", r.Stderr, "nfpipe vnf router: --cpus 1000: CPU 1000 is not available to this process, which may use "+cpuset.Format(all))
		r = nfpipe(t, ctx, 10*time.Second, "vnf", "router", "--cpus", "2-1", "--if", "eth0=stdin")
		wantCode(t, "--cpus 2-1", r, 2)
		wantContains(t, "--cpus 2-1", r.Stderr, `nfpipe: --cpus: CPU list "2-1": range "2-1" runs backwards (or auto, or all)`)
	})

	dir := shortDir(t)
	for _, tc := range []struct {
		flag, threads, report string
	}{
		{flag: strconv.Itoa(cpus[len(cpus)-1]), threads: strconv.Itoa(cpus[len(cpus)-1]), report: "pinned to CPUs " + strconv.Itoa(cpus[len(cpus)-1])},
		{flag: "all", threads: cpuset.Format(all), report: "any CPU (the kernel's choice)"},
		// An idle function packs on the lowest CPU it may use.
		{flag: "auto", threads: strconv.Itoa(cpus[0]), report: "packed on CPU " + strconv.Itoa(cpus[0]) + " while idle; spread 0 times under load"},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			ctl := filepath.Join(dir, tc.flag+".ctl")
			p := start(t, ctx, "router", procSpec{Args: []string{"vnf", "router", "--cpus", tc.flag, "--linger", "--control", ctl,
				"--if", "eth0=stdin,ip=192.0.2.1/24"}})
			waitControl(t, ctx, ctl, 10*time.Second)
			// A packed function may spread for a moment if other tests
			// keep its CPU busy: it packs again once quiet.
			deadline := time.Now().Add(20 * time.Second)
			for {
				var rep vnf.StatsReport
				controlStats(t, ctx, ctl, &rep)
				var wrong []string
				for tid, c := range threadCPUs(t, p.cmd.Process.Pid) {
					if c != tc.threads {
						wrong = append(wrong, "thread "+tid+" on "+c)
					}
				}
				okReport := rep.CPUs == tc.report || (tc.flag == "auto" && strings.HasPrefix(rep.CPUs, "packed on CPU "+tc.threads+" while idle"))
				if okReport && len(wrong) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("--cpus %s: report %q (want %q), threads not on %s: %v", tc.flag, rep.CPUs, tc.report, tc.threads, wrong)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}

	// A trickle first (the router packs), then load: it spreads.
	t.Run("auto spreads under load", func(t *testing.T) {
		res := pipeline(t, ctx, 40*time.Second,
			[]string{"vnf", "host", "--if", "eth0=stdout", "--ip", "192.0.2.10/24",
				"--run", "gen udp 198.51.100.7:9000 count=20 rate=20", "--run", "gen udp 198.51.100.7:9000 size=18 duration=2s"},
			[]string{"vnf", "router", "--if", "eth0=stdin,ip=192.0.2.1/24", "--if", "eth1=stdout,ip=198.51.100.1/24", "--stats=json"},
			[]string{"vnf", "host", "--if", "eth0=stdin", "--ip", "198.51.100.7/24", "--serve", "sink udp:9000"})
		rep := parseStats(t, "router", res[1].Stderr)
		m := regexp.MustCompile(`spread (\d+) times? under load`).FindStringSubmatch(rep.CPUs)
		if m == nil || m[1] == "0" {
			t.Errorf("router under 2 s of 64-byte packets as fast as gen sends: cpus %q, want it spread at least once", rep.CPUs)
		}
	})
}
