package stats

import (
	"math/rand/v2"
	"testing"
	"time"
)

// ms returns n milliseconds for each n.
func ms(ns ...int) []time.Duration {
	out := make([]time.Duration, len(ns))
	for i, n := range ns {
		out[i] = time.Duration(n) * time.Millisecond
	}
	return out
}

// seq returns 1..n milliseconds.
func seq(n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i+1) * time.Millisecond
	}
	return out
}

func TestPercentile(t *testing.T) {
	classic := ms(15, 20, 35, 40, 50) // the nearest-rank textbook example
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
		ok     bool
	}{
		{"empty", nil, 50, 0, false},
		{"empty p0", []time.Duration{}, 0, 0, false},
		{"single p0", ms(7), 0, 7 * time.Millisecond, true},
		{"single p50", ms(7), 50, 7 * time.Millisecond, true},
		{"single p100", ms(7), 100, 7 * time.Millisecond, true},
		{"classic p5", classic, 5, 15 * time.Millisecond, true},
		{"classic p30", classic, 30, 20 * time.Millisecond, true},
		{"classic p40", classic, 40, 20 * time.Millisecond, true},
		{"classic p50", classic, 50, 35 * time.Millisecond, true},
		{"classic p100", classic, 100, 50 * time.Millisecond, true},
		{"two values p50 is the lower", ms(1, 2), 50, 1 * time.Millisecond, true},
		{"two values p51 is the upper", ms(1, 2), 51, 2 * time.Millisecond, true},
		{"duplicates", ms(3, 3, 3, 3, 9), 80, 3 * time.Millisecond, true},
		{"duplicates p81", ms(3, 3, 3, 3, 9), 81, 9 * time.Millisecond, true},
		{"all equal", ms(4, 4, 4), 99, 4 * time.Millisecond, true},
		{"p7 of 100 has no exact float", seq(100), 7, 7 * time.Millisecond, true},
		{"p57 of 100", seq(100), 57, 57 * time.Millisecond, true},
		{"p99 of 100", seq(100), 99, 99 * time.Millisecond, true},
		{"p99.9 of 1000", seq(1000), 99.9, 999 * time.Millisecond, true},
		{"p99.9 of 100000", seq(100000), 99.9, 99900 * time.Millisecond, true},
		{"p50 of 100001", seq(100001), 50, 50001 * time.Millisecond, true},
		{"p99 of 10 is the max", seq(10), 99, 10 * time.Millisecond, true},
		{"below 0 clamps", seq(10), -5, 1 * time.Millisecond, true},
		{"above 100 clamps", seq(10), 250, 10 * time.Millisecond, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Percentile(tt.sorted, tt.p)
			if got != tt.want || ok != tt.ok {
				t.Errorf("Percentile(p%v) = %v, %v; want %v, %v", tt.p, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name    string
		samples []time.Duration
		want    Summary
	}{
		{"empty", nil, Summary{}},
		{"single", ms(5), Summary{Count: 1, Min: 5 * time.Millisecond, Mean: 5 * time.Millisecond, Max: 5 * time.Millisecond,
			P50: 5 * time.Millisecond, P90: 5 * time.Millisecond, P95: 5 * time.Millisecond, P99: 5 * time.Millisecond, P999: 5 * time.Millisecond}},
		{"unsorted input", ms(50, 15, 40, 20, 35), Summary{Count: 5, Min: 15 * time.Millisecond, Mean: 32 * time.Millisecond, Max: 50 * time.Millisecond,
			P50: 35 * time.Millisecond, P90: 50 * time.Millisecond, P95: 50 * time.Millisecond, P99: 50 * time.Millisecond, P999: 50 * time.Millisecond}},
		{"1..1000", seq(1000), Summary{Count: 1000, Min: time.Millisecond, Mean: 500500 * time.Microsecond, Max: 1000 * time.Millisecond,
			P50: 500 * time.Millisecond, P90: 900 * time.Millisecond, P95: 950 * time.Millisecond, P99: 990 * time.Millisecond, P999: 999 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Summarize(tt.samples); got != tt.want {
				t.Errorf("Summarize =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

func TestSummarizeLargeShuffled(t *testing.T) {
	const n = 1_000_000
	samples := seq(n)
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(n, func(i, j int) { samples[i], samples[j] = samples[j], samples[i] })
	first := samples[0]
	s := Summarize(samples)
	if s.P50 != 500_000*time.Millisecond || s.P99 != 990_000*time.Millisecond || s.P999 != 999_000*time.Millisecond || s.Max != n*time.Millisecond {
		t.Errorf("large N: %+v", s)
	}
	if samples[0] != first {
		t.Error("Summarize reordered its input")
	}
}

func TestHistogramBuckets(t *testing.T) {
	if NumBuckets != 62 {
		t.Fatalf("NumBuckets = %d, want 62 (6 decades of 10, plus under- and overflow)", NumBuckets)
	}
	for i := 1; i < len(bounds); i++ {
		if bounds[i] <= bounds[i-1] {
			t.Fatalf("bounds not increasing at %d: %v", i, bounds)
		}
	}
	// Decades fall exactly on bounds.
	for i, want := range map[int]time.Duration{0: 100 * time.Microsecond, 10: time.Millisecond, 20: 10 * time.Millisecond,
		30: 100 * time.Millisecond, 40: time.Second, 50: 10 * time.Second, 60: 100 * time.Second} {
		if bounds[i] != want {
			t.Errorf("bounds[%d] = %v, want %v", i, bounds[i], want)
		}
	}
	tests := []struct {
		d    time.Duration
		want int
	}{
		{-time.Second, 0},
		{0, 0},
		{100*time.Microsecond - 1, 0},
		{100 * time.Microsecond, 1}, // a bound opens its bucket: [lo, hi)
		{time.Millisecond - 1, 10},
		{time.Millisecond, 11},
		{1200 * time.Microsecond, 11}, // [1ms, 1.259ms)
		{1300 * time.Microsecond, 12},
		{time.Second, 41},
		{100*time.Second - 1, 60},
		{100 * time.Second, 61},
		{time.Hour, 61},
	}
	for _, tt := range tests {
		if got := BucketOf(tt.d); got != tt.want {
			t.Errorf("BucketOf(%v) = %d, want %d", tt.d, got, tt.want)
		}
		lo, hi := BucketBounds(tt.want)
		if tt.d >= 0 && (tt.d < lo || (hi >= 0 && tt.d >= hi)) {
			t.Errorf("%v is outside its bucket %d [%v, %v)", tt.d, tt.want, lo, hi)
		}
	}
	if lo, hi := BucketBounds(0); lo != 0 || hi != HistogramMin {
		t.Errorf("first bucket [%v, %v)", lo, hi)
	}
	if lo, hi := BucketBounds(NumBuckets - 1); lo != HistogramMax || hi != -1 {
		t.Errorf("last bucket [%v, %v)", lo, hi)
	}
}

func TestHistogramCounts(t *testing.T) {
	var empty Histogram
	if c := empty.Counts(); len(c) != NumBuckets || sum(c) != 0 {
		t.Errorf("empty histogram: %v", c)
	}
	h := HistogramOf(ms(1, 1, 1, 2, 50, 200000))
	c := h.Counts()
	if c[11] != 3 || c[BucketOf(2*time.Millisecond)] != 1 || c[BucketOf(50*time.Millisecond)] != 1 || c[NumBuckets-1] != 1 || sum(c) != 6 {
		t.Errorf("counts: %v", c)
	}
	c[11] = 99
	if h.Counts()[11] != 3 {
		t.Error("Counts returned the histogram's own slice")
	}
}

func sum(c []int64) (n int64) {
	for _, v := range c {
		n += v
	}
	return n
}

func TestRecorderWindow(t *testing.T) {
	r := NewRecorder()
	send, setup, sent := r.Series("send"), r.SetupSeries("login"), r.Counter("sent")
	t0 := time.Now()
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

	send.Observe(at(0), time.Millisecond) // before the window: warm-up
	send.Fail(at(0), "M_LIMIT_EXCEEDED")
	sent.Add(at(0), 1)
	setup.Observe(at(0), 3*time.Millisecond)
	r.BeginWindow(at(5))
	send.Observe(at(5), 2*time.Millisecond) // the window's first instant counts
	send.Observe(at(9), 30*time.Second)     // finishes after the end: kept
	send.Fail(at(6), "M_UNKNOWN")
	sent.Add(at(6), 2)
	r.EndWindow(at(10))
	r.EndWindow(at(20))                    // the first end wins
	send.Observe(at(10), time.Millisecond) // started at the end: dropped
	sent.Add(at(12), 1)
	setup.Observe(at(30), 4*time.Millisecond)

	snap := r.Snapshot()
	if !snap.Begin.Equal(at(5)) || !snap.End.Equal(at(10)) {
		t.Errorf("window %v..%v", snap.Begin, snap.End)
	}
	if len(snap.Series) != 2 || snap.Series[0].Name != "send" || snap.Series[1].Name != "login" || snap.Series[1].Phase != PhaseSetup || snap.Series[1].Windowed || !snap.Series[0].Windowed {
		t.Fatalf("series %+v", snap.Series)
	}
	s := snap.Series[0]
	if len(s.Samples) != 2 || s.Samples[0] != 2*time.Millisecond || len(s.Errors) != 1 || s.Errors["M_UNKNOWN"] != 1 {
		t.Errorf("send: %+v", s)
	}
	if !s.First.Equal(at(5)) || !s.Last.Equal(at(9).Add(30*time.Second)) {
		t.Errorf("send span %v..%v", s.First, s.Last)
	}
	if got := snap.Series[1].Samples; len(got) != 2 {
		t.Errorf("setup series kept %v, want both samples", got)
	}
	if len(snap.Counters) != 1 || snap.Counters[0].Value != 2 {
		t.Errorf("counters %+v", snap.Counters)
	}
	if send.Count() != 2 || send.ErrorCount() != 1 {
		t.Errorf("live counts %d, %d", send.Count(), send.ErrorCount())
	}
}

func TestRecorderNoWindow(t *testing.T) {
	r := NewRecorder()
	r.Series("x").Observe(time.Now(), time.Second)
	r.SetValue("rooms", 3)
	snap := r.Snapshot()
	if len(snap.Series[0].Samples) != 0 || snap.Values["rooms"] != 3 {
		t.Errorf("before any window: %+v", snap)
	}
}
