package stats

import (
	"math"
	"sort"
	"time"
)

// Histogram bucket layout: BucketsPerDecade buckets in each factor of ten
// from HistogramMin to HistogramMax, plus one bucket below and one above.
// The layout is fixed, so that histograms of different runs, scenarios
// and servers can be compared bucket by bucket.
const (
	// HistogramMin is the upper bound of the first (underflow) bucket.
	HistogramMin = 100 * time.Microsecond
	// HistogramMax is the lower bound of the last (overflow) bucket.
	HistogramMax = 100 * time.Second
	// BucketsPerDecade is the number of buckets per factor of ten.
	BucketsPerDecade = 10
)

// bounds holds the bucket boundaries, HistogramMin * 10^(i/10) rounded to
// the nanosecond, from HistogramMin to HistogramMax inclusive.
var bounds = func() []time.Duration {
	decades := int(math.Round(math.Log10(float64(HistogramMax) / float64(HistogramMin))))
	b := make([]time.Duration, decades*BucketsPerDecade+1)
	for i := range b {
		b[i] = time.Duration(math.Round(float64(HistogramMin) * math.Pow(10, float64(i)/BucketsPerDecade)))
	}
	return b
}()

// NumBuckets is the number of buckets of every Histogram.
var NumBuckets = len(bounds) + 1

// BucketBounds returns bucket i's range [lo, hi): lo is 0 for the first
// bucket and hi is -1 (no bound) for the last. i must be in
// [0, NumBuckets).
func BucketBounds(i int) (lo, hi time.Duration) {
	lo, hi = 0, -1
	if i > 0 {
		lo = bounds[i-1]
	}
	if i < len(bounds) {
		hi = bounds[i]
	}
	return lo, hi
}

// BucketOf returns the index of the bucket holding d: the bucket whose
// range [lo, hi) contains it. Negative durations go to the first bucket.
func BucketOf(d time.Duration) int {
	// The first bound strictly greater than d ends d's bucket. A search,
	// not a logarithm, so that a sample equal to a bound always lands in
	// the bucket that bound opens.
	return sort.Search(len(bounds), func(i int) bool { return bounds[i] > d })
}

// Histogram counts samples in the fixed log-scale buckets. The zero value
// is an empty histogram ready to use; it is not safe for concurrent use.
type Histogram struct {
	counts []int64
}

// Add counts d.
func (h *Histogram) Add(d time.Duration) {
	if h.counts == nil {
		h.counts = make([]int64, NumBuckets)
	}
	h.counts[BucketOf(d)]++
}

// Counts returns the count of each bucket, NumBuckets long (all zeros for
// an empty histogram). The slice is the caller's.
func (h *Histogram) Counts() []int64 {
	out := make([]int64, NumBuckets)
	copy(out, h.counts)
	return out
}

// HistogramOf returns the histogram of samples.
func HistogramOf(samples []time.Duration) *Histogram {
	h := &Histogram{}
	for _, d := range samples {
		h.Add(d)
	}
	return h
}
