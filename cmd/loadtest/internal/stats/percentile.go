// Package stats holds the load tool's arithmetic: percentiles of latency
// samples, a histogram with fixed log-scale buckets, and the Recorder that
// collects a run's measurements. It sits at the bottom of cmd/loadtest:
// it imports nothing of the tool, and report and scenario import it.
package stats

import (
	"math"
	"slices"
	"time"
)

// Percentile returns the p-th percentile (0 <= p <= 100) of sorted, which
// must be in ascending order, by the nearest-rank method: the smallest
// sample such that at least p% of the samples are less than or equal to
// it, i.e. sorted[ceil(p/100*N)-1], and sorted[0] for p = 0. Every figure
// it returns is a latency that was actually observed; there is no
// interpolation between samples. ok is false when sorted is empty (the
// result is then 0). p outside [0, 100] is clamped.
func Percentile(sorted []time.Duration, p float64) (v time.Duration, ok bool) {
	n := len(sorted)
	if n == 0 {
		return 0, false
	}
	return sorted[rank(n, p)-1], true
}

// rank is the 1-based nearest rank of the p-th percentile among n > 0
// samples.
func rank(n int, p float64) int {
	switch {
	case math.IsNaN(p) || p <= 0:
		return 1
	case p >= 100:
		return n
	}
	// p*n/100 is exact for whole p and moderate n, but a p such as 7 or
	// 99.9 has no exact binary form: 0.07*100 is 7.000000000000001, whose
	// ceiling would skip a rank. Forgive that much error.
	r := int(math.Ceil(p*float64(n)/100 - 1e-9))
	return max(1, min(r, n))
}

// Summary describes a set of latency samples. The zero Summary (Count 0)
// describes no samples; its other fields are then zero.
type Summary struct {
	// Count is the number of samples.
	Count int
	// Min, Mean and Max are the smallest, average and largest samples.
	Min, Mean, Max time.Duration
	// P50, P90, P95, P99 and P999 are nearest-rank percentiles.
	P50, P90, P95, P99, P999 time.Duration
}

// Summarize returns the Summary of samples, in any order; it sorts a copy
// and leaves samples as they are.
func Summarize(samples []time.Duration) Summary {
	if len(samples) == 0 {
		return Summary{}
	}
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	var sum float64 // float: a large N of long samples overflows int64
	for _, d := range sorted {
		sum += float64(d)
	}
	p := func(q float64) time.Duration { v, _ := Percentile(sorted, q); return v }
	return Summary{
		Count: len(sorted),
		Min:   sorted[0],
		Max:   sorted[len(sorted)-1],
		Mean:  time.Duration(math.Round(sum / float64(len(sorted)))),
		P50:   p(50), P90: p(90), P95: p(95), P99: p(99), P999: p(99.9),
	}
}
