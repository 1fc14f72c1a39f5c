package hostapp

import (
	"testing"
	"time"
)

// TestPreciseTicker: ticks come one period apart, never early; Stop ends
// them and may be repeated.
func TestPreciseTicker(t *testing.T) {
	const period, n = 2 * time.Millisecond, 50
	tk, err := newPreciseTicker(period)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range n {
		select {
		case <-tk.C:
		case <-time.After(time.Second):
			t.Fatalf("tick %d did not come within 1s", i+1)
		}
	}
	if el := time.Since(start); el < (n-1)*period {
		t.Errorf("%d ticks of %v in %v: early", n, period, el)
	}
	tk.Stop()
	tk.Stop()
	select {
	case <-tk.C: // one may have been waiting
	default:
	}
	select {
	case <-tk.C:
		t.Error("a tick after Stop")
	case <-time.After(10 * period):
	}
}

// TestPreciseTickerZero: a period of 0 ticks at once, every time.
func TestPreciseTickerZero(t *testing.T) {
	tk, err := newPreciseTicker(0)
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Stop()
	for i := range 100 {
		select {
		case <-tk.C:
		default:
			t.Fatalf("tick %d of a zero period was not ready at once", i+1)
		}
	}
}
