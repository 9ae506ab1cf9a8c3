package report

import (
	"fmt"
	"html"
	"math"
	"strings"
	"time"

	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/stats"
)

// xmlHeader starts a standalone SVG file.
const xmlHeader = `<?xml version="1.0" encoding="UTF-8"?>` + "\n"

// Geometry of a histogram drawing, in SVG user units.
const (
	svgW, svgH           = 760, 340
	padL, padR           = 64, 20
	padTop, padBottom    = 56, 48
	plotW, plotH         = svgW - padL - padR, svgH - padTop - padBottom
	bucketsPerDecadeDraw = stats.BucketsPerDecade
)

// SVG draws the metric's latency histogram: the fixed log-scale buckets
// from the decade below its smallest sample to the decade above its
// largest, counts on a linear axis, and lines at p50, p95 and p99.
func (m *Metric) SVG() string {
	counts := m.buckets
	first, last := -1, -1
	for i, n := range counts {
		if n > 0 {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		svgW, svgH, svgW, svgH)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", svgW, svgH)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="15" font-weight="bold">%s</text>`+"\n", padL, esc(m.Name))
	fmt.Fprintf(&b, `<text x="%d" y="38" fill="#444">%d samples, %d errors · p50 %s · p95 %s · p99 %s · max %s · %s</text>`+"\n",
		padL, m.Count, m.ErrorCount, FormatMS(m.P50MS), FormatMS(m.P95MS), FormatMS(m.P99MS), FormatMS(m.MaxMS), FormatRate(m.PerSecond))
	if first < 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#888">no samples</text>`+"\n</svg>\n", padL, padTop+plotH/2)
		return b.String()
	}
	// Whole decades: bucket 1+10k opens at the k-th decade bound. The
	// under- and overflow buckets (0 and the last) get a slot of their own.
	lo := max(0, 1+(first-1)/bucketsPerDecadeDraw*bucketsPerDecadeDraw)
	if first == 0 {
		lo = 0
	}
	hi := min(len(counts)-1, lo+((last-lo)/bucketsPerDecadeDraw+1)*bucketsPerDecadeDraw-1)
	if last == len(counts)-1 {
		hi = last
	}
	n := hi - lo + 1
	bw := float64(plotW) / float64(n)
	var peak int64
	for _, c := range counts[lo : hi+1] {
		peak = max(peak, c)
	}
	step := niceStep(peak)
	top := step * ((peak + step - 1) / step)
	x := func(slot float64) float64 { return padL + slot*bw }
	base := float64(padTop + plotH)

	// Axes and horizontal grid.
	for v := int64(0); v <= top; v += step {
		y := base - float64(v)/float64(top)*plotH
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", padL, y, padL+plotW, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="#444">%d</text>`+"\n", padL-6, y+4, v)
	}
	fmt.Fprintf(&b, `<text x="14" y="%d" transform="rotate(-90 14 %d)" text-anchor="middle" fill="#444">count</text>`+"\n", padTop+plotH/2, padTop+plotH/2)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="#444">latency (log scale, %d buckets per decade)</text>`+"\n",
		padL+plotW/2, svgH-8, bucketsPerDecadeDraw)

	// Bars.
	for i := lo; i <= hi; i++ {
		c := counts[i]
		if c == 0 {
			continue
		}
		h := float64(c) / float64(top) * plotH
		blo, bhi := stats.BucketBounds(i)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#4a7fb5"><title>%s: %d</title></rect>`+"\n",
			x(float64(i-lo))+0.5, base-h, math.Max(bw-1, 0.5), h, esc(bucketLabel(blo, bhi)), c)
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#333"/>`+"\n", padL, base, padL+plotW, base)

	// Ticks: slot i-lo's left edge is bucket i's lower bound, bound i-1.
	// Every tenth bound is a whole decade (labelled); the third and
	// seventh of a decade are within 0.3% of 2x and 5x (labelled lightly).
	for i := max(lo, 1); i <= min(hi+1, stats.NumBuckets-1); i++ {
		bound, _ := stats.BucketBounds(i)
		xx := x(float64(i - lo))
		switch (i - 1) % bucketsPerDecadeDraw {
		case 0:
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`+"\n", xx, base, xx, base+6)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#222">%s</text>`+"\n", xx, base+19, durLabel(bound))
		case 3, 7:
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999"/>`+"\n", xx, base, xx, base+4)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#888" font-size="10">%s</text>`+"\n", xx, base+17, durLabel(bound))
		}
	}

	// Percentile lines, placed inside their bucket on the log scale.
	for row, p := range []struct {
		label string
		v     float64
		color string
	}{{"p50", m.P50MS, "#2a9d3a"}, {"p95", m.P95MS, "#e08a00"}, {"p99", m.P99MS, "#c0392b"}} {
		d := time.Duration(p.v * float64(time.Millisecond))
		i := stats.BucketOf(d)
		if i < lo || i > hi {
			continue
		}
		frac := 0.5
		if blo, bhi := stats.BucketBounds(i); blo > 0 && bhi > 0 && d > 0 {
			frac = (math.Log(float64(d)) - math.Log(float64(blo))) / (math.Log(float64(bhi)) - math.Log(float64(blo)))
		}
		xx := x(float64(i-lo) + frac)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1.5" stroke-dasharray="4 3"/>`+"\n",
			xx, padTop, xx, base, p.color)
		// Labels on three rows, so that close percentiles stay legible.
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="%s" font-size="11" stroke="white" stroke-width="3" paint-order="stroke">%s</text>`+"\n",
			xx+3, padTop+10+row*13, p.color, p.label)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// durLabel formats a bucket bound to one significant digit, the
// precision of a tick label: "100µs", "2ms", "50ms", "10s".
func durLabel(d time.Duration) string {
	unit, name := time.Duration(1), "ns"
	switch {
	case d >= time.Second:
		unit, name = time.Second, "s"
	case d >= time.Millisecond:
		unit, name = time.Millisecond, "ms"
	case d >= time.Microsecond:
		unit, name = time.Microsecond, "µs"
	}
	v := float64(d) / float64(unit)
	mag := math.Pow(10, math.Floor(math.Log10(v)))
	return fmt.Sprintf("%g%s", math.Round(v/mag)*mag, name)
}

// niceStep returns a step of 1, 2 or 5 times a power of ten that cuts
// [0, peak] into at most five intervals.
func niceStep(peak int64) int64 {
	for mag := int64(1); ; mag *= 10 {
		for _, m := range []int64{1, 2, 5} {
			if step := m * mag; step*5 >= peak {
				return step
			}
		}
	}
}

func bucketLabel(lo, hi time.Duration) string {
	if hi < 0 {
		return fmt.Sprintf("≥ %s", FormatMS(ms(lo)))
	}
	return fmt.Sprintf("%s – %s", FormatMS(ms(lo)), FormatMS(ms(hi)))
}

func esc(s string) string { return html.EscapeString(s) }
