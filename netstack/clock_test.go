package netstack

import (
	"testing"
	"time"
)

// TestDrainClock: a callback asked to run at once counts until it returns;
// delayed callbacks and stopped ones do not hold Drain.
func TestDrainClock(t *testing.T) {
	c := newDrainClock()
	release, ran := make(chan struct{}), make(chan struct{})
	c.AfterFunc(0, func() { <-release; close(ran) })
	if !c.busy() {
		t.Fatal("not busy while a zero-delay callback has not returned")
	}
	close(release)
	<-ran
	for deadline := time.Now().Add(5 * time.Second); c.busy(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("still busy after the callback returned")
		}
	}
	if c.AfterFunc(time.Hour, func() {}).Stop(); c.busy() {
		t.Error("a delayed callback counts")
	}
	// A zero-delay timer stopped before it fires leaves the count (whether
	// Stop or the callback got there first).
	for i := 0; i < 100; i++ {
		c.AfterFunc(0, func() {}).Stop()
	}
	for deadline := time.Now().Add(5 * time.Second); c.busy(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("busy with %d callbacks after every one was stopped or ran", c.running.Load())
		}
	}
}
