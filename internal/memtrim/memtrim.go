// Package memtrim gives memory back to the operating system when the
// process goes quiet after a busy spell. Go's collector runs in
// proportion to allocation: once the load stops, the garbage of its last
// cycles stays on the heap, and the freed pages are returned only slowly,
// so an idle server would hold its peak for minutes. One collection and
// release (debug.FreeOSMemory) when allocation has dropped to a trickle
// brings it down to what is live.
package memtrim

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/sirupsen/logrus"
)

// Defaults of Run.
const (
	// Interval is how often allocation is sampled.
	Interval = 5 * time.Second
	// quietBytes is what an interval may allocate and still count as
	// quiet: idle long polls allocate a little.
	quietBytes = 8 << 20
	// busyBytes is what must have been allocated since the last trim for
	// another to be worth it.
	busyBytes = 64 << 20
)

// trimmer decides, from the cumulative bytes allocated at each sample,
// when to trim: at the first quiet interval after busyBytes were
// allocated since the last trim.
type trimmer struct {
	prev, lastTrim uint64
}

// sample takes the cumulative allocation count and reports whether to
// trim now.
func (t *trimmer) sample(allocated uint64) bool {
	delta := allocated - t.prev
	t.prev = allocated
	if delta > quietBytes || allocated-t.lastTrim < busyBytes {
		return false
	}
	t.lastTrim = allocated
	return true
}

// allocatedMetric is the runtime's cumulative count of heap bytes
// allocated.
const allocatedMetric = "/gc/heap/allocs:bytes"

// Run samples allocation every Interval until ctx ends and trims when the
// process has gone quiet after a busy spell.
func Run(ctx context.Context, log *logrus.Entry) {
	samples := []metrics.Sample{{Name: allocatedMetric}}
	read := func() uint64 {
		metrics.Read(samples)
		if samples[0].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return samples[0].Value.Uint64()
	}
	t := &trimmer{}
	t.prev = read()
	t.lastTrim = t.prev
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if t.sample(read()) {
				start := time.Now()
				// Two cycles: objects pooled (sync.Pool) survive the
				// first one as its victims.
				runtime.GC()
				debug.FreeOSMemory()
				log.WithField("took", time.Since(start).String()).Debug("gave memory back to the system after a busy spell")
			}
		}
	}
}
