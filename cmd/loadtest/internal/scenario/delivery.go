package scenario

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/stats"
)

// tracker follows messages from their send to their arrival at each
// receiver: it remembers when each was sent and to how many receivers,
// records the latency of each first arrival and counts what never came.
type tracker struct {
	latency                *stats.Series
	deliveries, duplicates *stats.Counter
	rec                    *stats.Recorder

	// mu guards msgs (not the messages' fields, which are atomic or
	// set before the message is added).
	mu   sync.Mutex
	msgs map[string]*tracked
}

// tracked is one message.
type tracked struct {
	// start is when its send request began: latencies count from there.
	start time.Time
	// sender is the index of the sending user or device; its own copy
	// is not a delivery.
	sender int
	// expected is the number of receivers.
	expected int
	// sent says the send request succeeded.
	sent atomic.Bool
	// delivered counts first arrivals.
	delivered atomic.Int32
}

// newTracker returns a tracker recording into rec's series latency and
// the counters prefix+".deliveries" and prefix+".duplicates".
func newTracker(rec *stats.Recorder, latency, prefix string) *tracker {
	return &tracker{
		rec: rec, latency: rec.Series(latency),
		deliveries: rec.Counter(prefix + ".deliveries"), duplicates: rec.Counter(prefix + ".duplicates"),
		msgs: map[string]*tracked{},
	}
}

// add remembers a message about to be sent; call it before the send
// request, since its arrival may be seen before the request returns.
func (t *tracker) add(tag string, m *tracked) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.msgs[tag] = m
}

// arrived records that receiver got the message tagged tag at at. seen is
// the receiver's own set of tags, used by one goroutine only: a second
// arrival at the same receiver counts as a duplicate. Unknown tags
// (another run's messages, events without a tag) are ignored.
func (t *tracker) arrived(tag string, receiver int, at time.Time, seen map[string]bool) {
	if tag == "" {
		return
	}
	t.mu.Lock()
	m := t.msgs[tag]
	t.mu.Unlock()
	if m == nil || m.sender == receiver {
		return
	}
	if seen[tag] {
		t.duplicates.Add(m.start, 1)
		return
	}
	seen[tag] = true
	m.delivered.Add(1)
	t.latency.Observe(m.start, at.Sub(m.start))
	t.deliveries.Add(m.start, 1)
}

// outstanding returns how many arrivals of messages sent successfully in
// the window are still awaited.
func (t *tracker) outstanding() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, m := range t.msgs {
		if m.sent.Load() && t.rec.InWindow(m.start) {
			n += max(0, m.expected-int(m.delivered.Load()))
		}
	}
	return n
}

// finish records prefix+".expected" and prefix+".missing": the arrivals
// of the window's successful sends that should have come, and those that
// did not.
func (t *tracker) finish(prefix string) {
	expected, missing := t.rec.Counter(prefix+".expected"), t.rec.Counter(prefix+".missing")
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range t.msgs {
		if !m.sent.Load() {
			continue
		}
		expected.Add(m.start, int64(m.expected))
		missing.Add(m.start, int64(max(0, m.expected-int(m.delivered.Load()))))
	}
}

// lateAfter is how far behind its schedule a send may start before it
// counts as late: the client could not keep the asked rate.
const lateAfter = 100 * time.Millisecond

// pace runs senders workers until stop is closed: worker j sends the
// messages k = j, j+senders, j+2*senders… each at t0 + k/rate, by
// calling send(k, j) (which blocks for the request). A worker whose last
// request overran its next slot sends at once, and the send counts in
// late. It returns a function that waits for the workers.
func pace(stop <-chan struct{}, senders int, rate float64, late *stats.Counter, send func(k, j int)) (wait func()) {
	t0 := time.Now()
	var wg sync.WaitGroup
	for j := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := j; ; k += senders {
				due := t0.Add(time.Duration(float64(k) / rate * float64(time.Second)))
				if d := time.Until(due); d > 0 {
					t := time.NewTimer(d)
					select {
					case <-stop:
						t.Stop()
						return
					case <-t.C:
					}
				}
				select {
				case <-stop:
					return
				default:
				}
				if now := time.Now(); now.Sub(due) > lateAfter {
					late.Add(now, 1)
				}
				send(k, j)
			}
		}()
	}
	return wg.Wait
}
