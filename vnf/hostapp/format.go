package hostapp

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync"
	"time"
)

// output writes report lines to Env.Out. Out may be shared with other
// applications, so every line is one Write; the mutex keeps an
// application's own goroutines from interleaving inside a line.
type output struct {
	mu sync.Mutex
	w  io.Writer
}

// newOutput wraps env.Out; nil discards.
func newOutput(env *Env) *output {
	if env.Out == nil {
		return &output{w: io.Discard}
	}
	return &output{w: env.Out}
}

// printf writes one or more whole lines; a trailing newline is added.
func (o *output) printf(format string, a ...any) {
	line := fmt.Sprintf(format, a...) + "\n"
	o.mu.Lock()
	defer o.mu.Unlock()
	_, _ = io.WriteString(o.w, line)
}

// logger returns env.Log tagged with the application, or a logger that
// discards when there is none.
func logger(env *Env, app string) *slog.Logger {
	if env.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return env.Log.With("app", app)
}

// fmtRTT formats a round-trip time in milliseconds with three significant
// digits, as iputils ping does (0.412, 1.23, 12.3, 123).
func fmtRTT(d time.Duration) string {
	return fmtMs(float64(d) / float64(time.Millisecond))
}

// fmtMs formats milliseconds like fmtRTT.
func fmtMs(ms float64) string {
	switch {
	case ms >= 100:
		return fmt.Sprintf("%.0f", ms)
	case ms >= 10:
		return fmt.Sprintf("%.1f", ms)
	case ms >= 1:
		return fmt.Sprintf("%.2f", ms)
	}
	return fmt.Sprintf("%.3f", ms)
}

// sig3 formats v with three significant digits, iperf-style.
func sig3(v float64) string {
	switch {
	case v >= 99.95:
		return fmt.Sprintf("%.0f", v)
	case v >= 9.995:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// fmtBytes formats a byte count the way iperf does: binary multiples,
// three significant digits ("120 MBytes", "1.20 GBytes").
func fmtBytes(n int64) string {
	v := float64(n)
	for _, unit := range []string{"Bytes", "KBytes", "MBytes", "GBytes"} {
		if v < 1000 {
			if unit == "Bytes" {
				return fmt.Sprintf("%d Bytes", n)
			}
			return sig3(v) + " " + unit
		}
		v /= 1024
	}
	return sig3(v) + " TBytes"
}

// fmtBits formats a bit rate with decimal multiples ("13.3 Mbit/s").
func fmtBits(bps float64) string {
	for _, unit := range []string{"bit/s", "kbit/s", "Mbit/s", "Gbit/s"} {
		if bps < 1000 {
			return sig3(bps) + " " + unit
		}
		bps /= 1000
	}
	return sig3(bps) + " Tbit/s"
}

// perSecond divides n by d in seconds, or returns 0 for a zero duration so
// that Stats never holds an Inf or NaN (encoding/json rejects them).
func perSecond(n float64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	v := n / d.Seconds()
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return 0
	}
	return v
}

// round3 rounds to three decimals for readable JSON.
func round3(v float64) float64 {
	return math.Round(v*1000) / 1000
}
