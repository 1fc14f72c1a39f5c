package main

import (
	"cmp"
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// writeResults writes results.md, results.csv and the plots, and prints
// the markdown on stdout.
func (h *harness) writeResults() error {
	h.machine.LoadEnd = loadAvg()
	if h.outDir == "" {
		return nil // prepare failed before choosing one
	}
	plots := h.writePlots()
	md := h.markdown(plots)
	if err := os.WriteFile(filepath.Join(h.outDir, "results.md"), []byte(md), 0o644); err != nil {
		return err
	}
	if err := h.writeCSV(filepath.Join(h.outDir, "results.csv")); err != nil {
		return err
	}
	fmt.Print(md)
	h.logf("wrote %s", h.outDir)
	return nil
}

// fmtVal prints a figure with 3 significant digits (more for big ones).
func fmtVal(v float64) string {
	switch a := math.Abs(v); {
	case v == 0:
		return "0"
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

func (h *harness) markdown(plots []string) string {
	var b strings.Builder
	m := h.machine
	mode := "full"
	if h.o.quick {
		mode = "quick (shorter runs, fewer points: indicative only)"
	}
	fmt.Fprintf(&b, "# nfpipe benchmarks, %s\n\n", h.started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- commit: `%s`\n", m.commitString())
	fmt.Fprintf(&b, "- machine: %d cores (%s), %d MB, kernel %s, %s\n", m.NProc, m.CPU, m.MemMB, m.Kernel, m.Go)
	fmt.Fprintf(&b, "- load average at start / end: %s / %s\n", m.LoadStart, m.LoadEnd)
	fmt.Fprintf(&b, "- mode: %s; took %v\n", mode, h.finished.Sub(h.started).Round(time.Second))
	b.WriteString("- every figure is shown with its baseline from the same run; ratio = figure / baseline\n")
	b.WriteString("- reproduce: `go run ./bench` (see the README's Benchmarks section)\n")
	section := ""
	for _, r := range h.rows {
		if r.Section != section {
			section = r.Section
			fmt.Fprintf(&b, "\n## %s\n\n", section)
			b.WriteString("| measurement | value | unit | baseline | baseline value | ratio | note |\n")
			b.WriteString("|---|---:|---|---|---:|---:|---|\n")
		}
		if r.Err != "" {
			fmt.Fprintf(&b, "| %s | failed | %s | %s | | | %s |\n", r.Name, r.Unit, r.Baseline, mdCell(r.Err))
			continue
		}
		base, ratio := "", ""
		if r.BaseVal != 0 {
			base, ratio = fmtVal(r.BaseVal), fmt.Sprintf("%.2f", r.ratio())
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", r.Name, fmtVal(r.Value), r.Unit, r.Baseline, base, ratio, mdCell(r.Note))
	}
	if t := h.targets(); len(t) > 0 {
		b.WriteString("\n## Targets of issue 6, from this run\n\n| target | measured | met |\n|---|---|---|\n")
		for _, x := range t {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", x[0], x[1], x[2])
		}
	}
	if len(plots) > 0 {
		b.WriteString("\n## Plots\n\n")
		for _, p := range plots {
			fmt.Fprintf(&b, "![%s](%s)\n", strings.TrimSuffix(p, ".png"), p)
		}
	}
	if len(h.notes) > 0 {
		b.WriteString("\n## Notes\n\n")
		for _, n := range h.notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}

func mdCell(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

func (h *harness) writeCSV(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	m := h.machine
	w.Write([]string{"# date", m.Date, "commit", m.commitString(), "nproc", strconv.Itoa(m.NProc), "kernel", m.Kernel, "quick", strconv.FormatBool(h.o.quick)})
	w.Write([]string{"section", "measurement", "value", "unit", "baseline", "baseline_value", "ratio", "note", "error"})
	for _, r := range h.rows {
		val, base, ratio := "", "", ""
		if r.Err == "" {
			val = strconv.FormatFloat(r.Value, 'g', 6, 64)
			if r.BaseVal != 0 {
				base = strconv.FormatFloat(r.BaseVal, 'g', 6, 64)
				ratio = strconv.FormatFloat(r.ratio(), 'f', 3, 64)
			}
		}
		w.Write([]string{r.Section, r.Name, val, r.Unit, r.Baseline, base, ratio, r.Note, r.Err})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// find returns the value of the row named name, if it was measured.
func (h *harness) find(name string) (float64, bool) {
	for _, r := range h.rows {
		if r.Name == name && r.Err == "" {
			return r.Value, true
		}
	}
	return 0, false
}

// targets checks the figures issue 6 sets for this machine, where this
// run measured them: {target, measured, met}.
func (h *harness) targets() [][3]string {
	var out [][3]string
	yes := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "**no**"
	}
	ratio := func(target, a, b string, min float64) {
		va, ok1 := h.find(a)
		vb, ok2 := h.find(b)
		if !ok1 || !ok2 || vb == 0 {
			return
		}
		out = append(out, [3]string{target, fmt.Sprintf("%.2fx (%s / %s Gbit/s)", va/vb, fmtVal(va), fmtVal(vb)), yes(va/vb >= min)})
	}
	nf := kernelRowName("nfpipe router (TAP, MASQUERADE + 20 rules)", 1500)
	slirp, pasta := kernelRowName("slirp4netns", 1500), kernelRowName("pasta", 1500)
	ratio("kernel → TAP → nfpipe router (NAT + 20 rules) → TAP → kernel ≥ 2× slirp4netns", nf, slirp, 2)
	ratio("… the same with a bounded window (iperf3 -w 512K) on both", windowRowName(nf), windowRowName(slirp), 2)
	ratio("… ≥ 1.5× pasta", nf, pasta, 1.5)
	ratio("… the same with a bounded window on both (pasta at its best: it does not stall)", windowRowName(nf), windowRowName(pasta), 1.5)
	ratio("… ≥ 1× the bare Go TAP copier", nf, kernelRowName("Go TAP copier (os.File)", 1500), 1)
	if v, ok := h.find(goodputRowName(1, "seqpacket", 1500)); ok {
		out = append(out, [3]string{"nfpipe host → 1 router → host ≥ 4× the naive gVisor figure (0.4 Gbit/s, GVISOR-NOTES; not this run)",
			fmt.Sprintf("%s Gbit/s", fmtVal(v)), yes(v >= 1.6)})
	}
	ratio("… and ≥ 60% of the bare two-process copy at the same frame size", goodputRowName(1, "seqpacket", 1500), "bare copy, seqpacket, 1514-byte frames", 0.6)
	if v, ok := h.find(goodputRowName(1, "seqpacket", 1500)); ok {
		if vs, ok := h.find(goodputRowName(1, "seqpacket", 1500) + spreadSuffix); ok {
			out = append(out, [3]string{"… for scale: the same with --cpus all (the kernel places every process; nfpipe before packing), run just after",
				fmt.Sprintf("%s Gbit/s (the default is %.2fx it)", fmtVal(vs), v/vs), "—"})
		}
	}
	if p0, ok := h.find(latencyRowName(0, "p50")); ok {
		for _, n := range []int{1, 4} {
			if pn, ok := h.find(latencyRowName(n, "p50")); ok {
				per := (pn - p0) / float64(n)
				out = append(out, [3]string{fmt.Sprintf("added round trip per hop, p50 ≤ 60 µs (over %s)", hopsStr(n)), fmt.Sprintf("%.0f µs", per), yes(per <= 60)})
				if n == 4 {
					var parts []string
					for _, k := range relayKinds {
						if v, ok := h.find(relayRowName(k, 4) + ", p50"); ok {
							parts = append(parts, fmt.Sprintf("%s %.0f µs", k.name, (v-p0)/4))
						}
					}
					if len(parts) > 0 {
						out = append(out, [3]string{"… for scale: the same 4 hops through bare relays (a process that only passes each message on), per hop",
							strings.Join(parts, "; "), "—"})
					}
				}
				if s0, ok := h.find(spreadRowName(0, "p50")); ok {
					if sn, ok := h.find(spreadRowName(n, "p50")); ok {
						out = append(out, [3]string{fmt.Sprintf("… for scale: the same with --cpus all (the kernel places every process; nfpipe before packing), per hop over %s", hopsStr(n)),
							fmt.Sprintf("%.0f µs", (sn-s0)/float64(n)), "—"})
					}
				}
				if floor, ok := h.find(pingPongRowName + ", p50"); ok && n == 1 {
					out = append(out, [3]string{"… for scale: the wake-up floor of a hop's two crossings (bare Go ping-pong, same pace)", fmt.Sprintf("%.0f µs (hop: %.1fx the floor)", floor, per/floor), "—"})
				}
			}
		}
	}
	if tr, ok := h.find("kernel → nfpipe router (TAP) → kernel, p50"); ok {
		if kr, ok := h.find("kernel → Linux kernel router → kernel, p50"); ok {
			out = append(out, [3]string{"… for scale: one nfpipe router hop between two kernels (TAP router minus kernel router, p50; no other nfpipe process shares the CPUs)", fmt.Sprintf("%.0f µs", tr-kr), "—"})
		}
	}
	if best, silent, ok := h.bestPPS(1); ok {
		out = append(out, [3]string{"64-byte forwarding ≥ 250 kpps per hop, zero silent loss (1 hop)",
			fmt.Sprintf("%.0f kpps, %d lost silently", best/1000, silent), yes(best >= 250e3 && silent == 0)})
	}
	h.mu.Lock()
	raw, rawSilent := h.rawPPS, h.rawSilent
	h.mu.Unlock()
	if raw > 0 {
		out = append(out, [3]string{"… the router alone (raw frame source and sink, no hosts)",
			fmt.Sprintf("%.0f kpps, %d lost silently", raw/1000, rawSilent), yes(raw >= 250e3 && rawSilent == 0)})
	}
	if v, ok := h.find(startupRowName(32)); ok {
		out = append(out, [3]string{"32-function chain ready < 1 s", fmt.Sprintf("%.0f ms", v), yes(v < 1000)})
	}
	if v, ok := h.find(idleRSSRowName); ok {
		out = append(out, [3]string{"idle function ≤ 12 MB RSS (VmRSS; a running function unmaps the executable pages only its start-up touched)", fmt.Sprintf("%.1f MB", v), yes(v <= 12)})
	}
	if v, ok := h.find(idleAnonRowName); ok {
		out = append(out, [3]string{"… counting only its own memory (RssAnon; the executable's pages are shared)", fmt.Sprintf("%.1f MB", v), yes(v <= 12)})
	}
	if v, ok := h.find("idle router PSS (median of a 32-function chain)"); ok {
		out = append(out, [3]string{"… its proportional share in a 32-function chain (PSS)", fmt.Sprintf("%.1f MB", v), yes(v <= 12)})
	}
	return out
}

// writePlots draws the PNG plots with gnuplot and returns their file
// names; without gnuplot it says so in the notes and keeps the data.
func (h *harness) writePlots() []string {
	type plotDef struct {
		file, title, xlabel, ylabel string
		diagonal                    bool // a y = x line (delivered = offered)
	}
	defs := map[string]plotDef{
		"throughput": {"throughput.png", "TCP goodput through nfpipe routers", "router hops", "Gbit/s", false},
		"pps":        {"pps.png", "64-byte UDP through nfpipe routers", "offered (kpps)", "delivered (kpps)", true},
	}
	gp, err := exec.LookPath("gnuplot")
	var made []string
	var script strings.Builder
	for _, key := range []string{"throughput", "pps"} {
		pts := h.series[key]
		if len(pts) == 0 {
			continue
		}
		d := defs[key]
		var names []string
		for _, p := range pts {
			if !slices.Contains(names, p.series) {
				names = append(names, p.series)
			}
		}
		var data strings.Builder
		for i, n := range names {
			if i > 0 {
				data.WriteString("\n\n")
			}
			fmt.Fprintf(&data, "# %s\n", n)
			for _, p := range pts {
				if p.series == n {
					fmt.Fprintf(&data, "%g %g\n", p.x, p.y)
				}
			}
		}
		// A series is drawn in the order of x, not of measurement.
		slices.SortStableFunc(pts, func(a, b point) int { return cmp.Compare(a.x, b.x) })
		dat := key + ".dat"
		os.WriteFile(filepath.Join(h.outDir, "raw", dat), []byte(data.String()), 0o644)
		fmt.Fprintf(&script, "set output %q\nset title %q\nset xlabel %q\nset ylabel %q\nset key top right\nset grid\nunset logscale\nset xrange [0:*]\nset yrange [0:*]\n",
			d.file, d.title, d.xlabel, d.ylabel)
		var plots []string
		for i, n := range names {
			plots = append(plots, fmt.Sprintf("'raw/%s' index %d with linespoints lw 2 title %q", dat, i, n))
		}
		if d.diagonal {
			plots = append(plots, "x with lines dt 2 lc rgb 'gray' title 'offered'")
		}
		fmt.Fprintf(&script, "plot %s\n", strings.Join(plots, ", "))
		made = append(made, d.file)
	}
	if len(h.cdfs) > 0 {
		var names []string
		for n := range h.cdfs {
			names = append(names, n)
		}
		slices.Sort(names)
		var data strings.Builder
		for i, n := range names {
			if i > 0 {
				data.WriteString("\n\n")
			}
			s := slices.Clone(h.cdfs[n])
			slices.Sort(s)
			fmt.Fprintf(&data, "# %s\n", n)
			for j, v := range s {
				fmt.Fprintf(&data, "%g %g\n", v, float64(j+1)/float64(len(s)))
			}
		}
		os.WriteFile(filepath.Join(h.outDir, "raw", "latency.dat"), []byte(data.String()), 0o644)
		fmt.Fprintf(&script, "set output 'latency-cdf.png'\nset title 'Round-trip time (CDF)'\nset xlabel 'RTT (µs)'\nset ylabel 'fraction of pings'\nset key bottom right\nset grid\nset logscale x\nset xrange [*:*]\nset yrange [0:1]\n")
		var plots []string
		for i, n := range names {
			plots = append(plots, fmt.Sprintf("'raw/latency.dat' index %d with lines lw 2 title %q", i, n))
		}
		fmt.Fprintf(&script, "plot %s\n", strings.Join(plots, ", "))
		made = append(made, "latency-cdf.png")
	}
	if len(made) == 0 {
		return nil
	}
	full := "set terminal pngcairo size 900,560 font 'sans,10'\n" + script.String()
	os.WriteFile(filepath.Join(h.outDir, "raw", "plots.gnuplot"), []byte(full), 0o644)
	if err != nil {
		h.note("plots", "gnuplot is not installed; the data and the script are in raw/ (plots.gnuplot)")
		return nil
	}
	cmd := exec.Command(gp, filepath.Join("raw", "plots.gnuplot"))
	cmd.Dir = h.outDir
	if out, err := cmd.CombinedOutput(); err != nil {
		h.note("plots", fmt.Sprintf("gnuplot failed: %v: %s", err, lastLines(string(out), 3)))
		return nil
	}
	return made
}
