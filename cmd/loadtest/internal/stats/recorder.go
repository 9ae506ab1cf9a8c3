package stats

import (
	"maps"
	"slices"
	"sync"
	"time"
)

// Recorder collects the measurements of one run: latency series, event
// counters and plain values.
//
// A measured series or counter keeps only the operations that started
// inside the measurement window, [BeginWindow, EndWindow): an operation
// started during the warm-up is dropped, one started before the window
// ended and finished after it (a message delivered during the drain) is
// kept. Setup series keep everything. Keying on the start time is what
// makes count/window a fair throughput.
//
// A Recorder is safe for concurrent use.
type Recorder struct {
	// wmu guards begin and end.
	wmu        sync.RWMutex
	begin, end time.Time

	// mu guards the maps and order slices below (not the series'
	// contents, which have their own locks).
	mu           sync.Mutex
	series       map[string]*Series
	seriesOrder  []string
	counters     map[string]*Counter
	counterOrder []string
	values       map[string]float64
}

// NewRecorder returns an empty Recorder whose window has not begun.
func NewRecorder() *Recorder {
	return &Recorder{series: map[string]*Series{}, counters: map[string]*Counter{}, values: map[string]float64{}}
}

// BeginWindow opens the measurement window at t. Calling it again moves
// the beginning.
func (r *Recorder) BeginWindow(t time.Time) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	r.begin = t
}

// EndWindow closes the window at t; only the first call counts, so that
// the first reason to stop (duration, count, Ctrl-C) wins.
func (r *Recorder) EndWindow(t time.Time) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if r.end.IsZero() {
		r.end = t
	}
}

// Window returns the window's bounds; zero times mean not begun or not
// ended.
func (r *Recorder) Window() (begin, end time.Time) {
	r.wmu.RLock()
	defer r.wmu.RUnlock()
	return r.begin, r.end
}

// InWindow says whether an operation started at start is measured.
func (r *Recorder) InWindow(start time.Time) bool {
	r.wmu.RLock()
	defer r.wmu.RUnlock()
	if r.begin.IsZero() || start.Before(r.begin) {
		return false
	}
	return r.end.IsZero() || start.Before(r.end)
}

// Phases of series, as reports show them.
const (
	// PhaseSetup is the preparation: registration, login, rooms.
	PhaseSetup = "setup"
	// PhaseMeasure is the measured window.
	PhaseMeasure = "measure"
)

// Series returns the measured (windowed) latency series called name,
// creating it on first use.
func (r *Recorder) Series(name string) *Series { return r.getSeries(name, PhaseMeasure, true) }

// SetupSeries returns the setup series called name, which keeps every
// sample whatever the window, creating it on first use. Setup series
// describe the preparation (registration, login, room creation).
func (r *Recorder) SetupSeries(name string) *Series { return r.getSeries(name, PhaseSetup, false) }

// PhaseSeries returns a series that keeps every sample whatever the
// window, labelled phase: a measured burst that is not a steady window,
// such as every user joining one room at once. Its throughput is taken
// over its own span.
func (r *Recorder) PhaseSeries(name, phase string) *Series { return r.getSeries(name, phase, false) }

// getSeries returns the series called name, creating it with phase and
// windowed on first use; a later call returns it as it was created.
func (r *Recorder) getSeries(name, phase string, windowed bool) *Series {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.series[name]; ok {
		return s
	}
	s := &Series{rec: r, name: name, phase: phase, windowed: windowed, errors: map[string]int64{}}
	r.series[name] = s
	r.seriesOrder = append(r.seriesOrder, name)
	return s
}

// Counter returns the measured counter called name, creating it on first
// use.
func (r *Recorder) Counter(name string) *Counter {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.counters[name]; ok {
		return c
	}
	c := &Counter{rec: r, name: name}
	r.counters[name] = c
	r.counterOrder = append(r.counterOrder, name)
	return c
}

// SetValue records a plain figure (a size, a count found at the end),
// reported as is; setting it again replaces it.
func (r *Recorder) SetValue(name string, v float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.values[name] = v
}

// Series is one latency metric: samples, the bytes they moved and errors
// by errcode. Get one from a Recorder.
type Series struct {
	rec      *Recorder
	name     string
	phase    string
	windowed bool

	// mu guards the fields below.
	mu          sync.Mutex
	samples     []time.Duration
	bytes       int64
	errors      map[string]int64
	first, last time.Time
}

// keep says whether an operation started at start is recorded.
func (s *Series) keep(start time.Time) bool { return !s.windowed || s.rec.InWindow(start) }

// Observe records an operation that started at start and took d.
func (s *Series) Observe(start time.Time, d time.Duration) { s.ObserveBytes(start, d, 0) }

// ObserveBytes records an operation that started at start, took d and
// moved n bytes (an upload, a download, a response).
func (s *Series) ObserveBytes(start time.Time, d time.Duration, n int64) {
	if !s.keep(start) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples = append(s.samples, d)
	s.bytes += n
	s.spanLocked(start, start.Add(d))
}

// Fail records an operation that started at start and failed with code,
// a Matrix errcode or one of the tool's own codes for transport failures.
func (s *Series) Fail(start time.Time, code string) {
	if !s.keep(start) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errors[code]++
	s.spanLocked(start, time.Now())
}

func (s *Series) spanLocked(start, end time.Time) {
	if s.first.IsZero() || start.Before(s.first) {
		s.first = start
	}
	if end.After(s.last) {
		s.last = end
	}
}

// Count returns the number of samples recorded so far.
func (s *Series) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.samples)
}

// ErrorCount returns the number of errors recorded so far.
func (s *Series) ErrorCount() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, c := range s.errors {
		n += c
	}
	return n
}

// Counter counts measured events (messages sent, deliveries missing). Get
// one from a Recorder.
type Counter struct {
	rec  *Recorder
	name string

	// mu guards n.
	mu sync.Mutex
	n  int64
}

// Add counts n events of an operation that started at start; events
// outside the window are dropped.
func (c *Counter) Add(start time.Time, n int64) {
	if !c.rec.InWindow(start) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += n
}

// Value returns the count so far.
func (c *Counter) Value() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// Snapshot is a copy of everything a Recorder holds, for reports.
type Snapshot struct {
	// Begin and End are the window; zero when not begun or not ended.
	Begin, End time.Time
	// Series are in the order they were created.
	Series []SeriesSnapshot
	// Counters are in the order they were created.
	Counters []CounterSnapshot
	// Values are the plain figures by name.
	Values map[string]float64
}

// SeriesSnapshot is a copy of one Series.
type SeriesSnapshot struct {
	Name string
	// Phase is PhaseSetup, PhaseMeasure or a scenario's own label.
	Phase string
	// Windowed is true for a series that kept only the window's
	// operations; its throughput is taken over the window.
	Windowed bool
	// Samples are in the order they were recorded.
	Samples []time.Duration
	Bytes   int64
	// Errors counts failures by errcode; never nil.
	Errors map[string]int64
	// First and Last are the start of the earliest and the end of the
	// latest recorded operation; zero when none.
	First, Last time.Time
}

// CounterSnapshot is a copy of one Counter.
type CounterSnapshot struct {
	Name  string
	Value int64
}

// Snapshot copies the Recorder's contents.
func (r *Recorder) Snapshot() Snapshot {
	var snap Snapshot
	snap.Begin, snap.End = r.Window()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, name := range r.seriesOrder {
		s := r.series[name]
		s.mu.Lock()
		snap.Series = append(snap.Series, SeriesSnapshot{
			Name: s.name, Phase: s.phase, Windowed: s.windowed, Samples: slices.Clone(s.samples), Bytes: s.bytes,
			Errors: maps.Clone(s.errors), First: s.first, Last: s.last,
		})
		s.mu.Unlock()
	}
	for _, name := range r.counterOrder {
		snap.Counters = append(snap.Counters, CounterSnapshot{Name: name, Value: r.counters[name].Value()})
	}
	snap.Values = maps.Clone(r.values)
	return snap
}
