// Package report turns a run's measurements into what people and scripts
// read: a table on stdout, results.json with every figure, and a
// histogram per latency metric as SVG files and an HTML page. It sits
// above stats and procmon, and below the command.
package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"

	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/procmon"
	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/stats"
)

// Statuses of a run.
const (
	// StatusOK is a run that went to its planned end.
	StatusOK = "ok"
	// StatusStopped is a run the operator stopped early (Ctrl-C).
	StatusStopped = "stopped"
	// StatusSkipped is a run the server could not serve: it does not
	// implement an endpoint the scenario needs.
	StatusSkipped = "skipped"
	// StatusFailed is a run that failed.
	StatusFailed = "failed"
)

// PercentileMethod names how percentiles are computed (see
// stats.Percentile).
const PercentileMethod = "nearest-rank"

// Report is everything one run measured; it is results.json.
type Report struct {
	// Tool names the tool.
	Tool string `json:"tool"`
	// Scenario is the scenario's name; Params its parameters.
	Scenario string         `json:"scenario"`
	Params   map[string]any `json:"params"`
	// Target is the homeserver's URL; Server what it says of itself.
	Target string     `json:"target"`
	Server ServerInfo `json:"server"`
	// Registration is how users were created; UserPrefix starts their
	// localparts.
	Registration string `json:"registration"`
	UserPrefix   string `json:"user_prefix"`
	// Started and Finished bound the whole run, setup included.
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Window is the measured window; nil when the run never reached it.
	Window *Window `json:"window,omitempty"`
	// Status is one of the Status constants; Error says why a run was
	// skipped or failed.
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// PercentileMethod says how percentiles were computed.
	PercentileMethod string `json:"percentile_method"`
	// Metrics are the latency metrics that recorded something, in the
	// order the run created them.
	Metrics []Metric `json:"metrics"`
	// Counters are the measured counts, with their rate over the window.
	Counters []Counter `json:"counters"`
	// Values are plain figures (sizes, counts found at the end).
	Values map[string]float64 `json:"values,omitempty"`
	// Process is the server process's cost; nil without --pid.
	Process *Process `json:"process,omitempty"`
	// Notes are remarks for the reader (a shortfall, a hint).
	Notes []string `json:"notes,omitempty"`
}

// ServerInfo is what the server says of itself.
type ServerInfo struct {
	// Versions are the spec versions of /_matrix/client/versions.
	Versions []string `json:"versions,omitempty"`
	// Header is the HTTP Server header, when it sends one.
	Header string `json:"header,omitempty"`
}

// Window is the measured window.
type Window struct {
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Seconds float64   `json:"seconds"`
	// EndedBy says why it ended: "duration", "count" (the scenario's
	// count was reached, or its work failed) or "stopped" (Ctrl-C).
	EndedBy string `json:"ended_by,omitempty"`
}

// Metric is one latency metric. Durations are in milliseconds.
type Metric struct {
	Name string `json:"name"`
	// Phase is "setup", "measure" or a scenario's own label.
	Phase string `json:"phase"`
	// Count is the number of successful operations measured.
	Count int `json:"count"`
	// Errors counts failed operations by errcode; ErrorCount is their sum.
	Errors     map[string]int64 `json:"errors,omitempty"`
	ErrorCount int64            `json:"error_count"`
	MinMS      float64          `json:"min_ms"`
	MeanMS     float64          `json:"mean_ms"`
	P50MS      float64          `json:"p50_ms"`
	P90MS      float64          `json:"p90_ms"`
	P95MS      float64          `json:"p95_ms"`
	P99MS      float64          `json:"p99_ms"`
	P999MS     float64          `json:"p999_ms"`
	MaxMS      float64          `json:"max_ms"`
	// PerSecond is Count over the window (or, for a series that is not
	// windowed, over the span of its operations).
	PerSecond float64 `json:"per_second"`
	// Bytes is what the operations moved; BytesPerSecond is over the
	// same time as PerSecond.
	Bytes          int64   `json:"bytes,omitempty"`
	BytesPerSecond float64 `json:"bytes_per_second,omitempty"`
	// Histogram lists the non-empty buckets of the fixed log-scale
	// layout (stats.BucketBounds).
	Histogram []Bucket `json:"histogram"`
	// buckets are all the counts, for drawing.
	buckets []int64
}

// Bucket is one histogram bucket: Count samples in [GeMS, LtMS); LtMS is
// nil for the last, unbounded bucket.
type Bucket struct {
	Index int      `json:"index"`
	GeMS  float64  `json:"ge_ms"`
	LtMS  *float64 `json:"lt_ms"`
	Count int64    `json:"count"`
}

// Counter is one measured count.
type Counter struct {
	Name  string `json:"name"`
	Value int64  `json:"value"`
	// PerSecond is Value over the window.
	PerSecond float64 `json:"per_second"`
}

// Process is the server process's cost, from /proc.
type Process struct {
	PID int `json:"pid"`
	// Run covers the whole run, setup included; Window the measured
	// window only (nil without one).
	Run    ProcessSummary  `json:"run"`
	Window *ProcessSummary `json:"window,omitempty"`
	// Idle covers the scenario's idle span, connections open and no load
	// (nil without one).
	Idle *ProcessSummary `json:"idle,omitempty"`
	// Samples are the raw readings, one a second.
	Samples []ProcessSample `json:"samples"`
	// Error is the last read error (the process may have exited).
	Error string `json:"error,omitempty"`
}

// ProcessSummary digests readings over a span.
type ProcessSummary struct {
	Samples       int     `json:"samples"`
	StartRSSBytes int64   `json:"start_rss_bytes"`
	PeakRSSBytes  int64   `json:"peak_rss_bytes"`
	EndRSSBytes   int64   `json:"end_rss_bytes"`
	CPUSeconds    float64 `json:"cpu_seconds"`
	Seconds       float64 `json:"seconds"`
	// AvgCores is CPU seconds per second: 1.0 is one core busy.
	AvgCores float64 `json:"avg_cores"`
}

// ProcessSample is one reading: T seconds after the run started.
type ProcessSample struct {
	T          float64 `json:"t"`
	RSSBytes   int64   `json:"rss_bytes"`
	CPUSeconds float64 `json:"cpu_seconds"`
}

// New returns a Report of scenario against target, started at started,
// with no figures yet.
func New(scenario, target string, started time.Time) *Report {
	return &Report{Tool: "matrix-gouv loadtest", Scenario: scenario, Target: target, Started: started,
		Status: StatusOK, PercentileMethod: PercentileMethod, Params: map[string]any{}, Metrics: []Metric{}, Counters: []Counter{}}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// AddMeasurements fills the metrics, counters, values and window from
// snap. Finished must be set: it ends a window that was never closed.
func (r *Report) AddMeasurements(snap stats.Snapshot) {
	var windowSecs float64
	if !snap.Begin.IsZero() {
		end := snap.End
		if end.IsZero() {
			end = r.Finished
		}
		windowSecs = end.Sub(snap.Begin).Seconds()
		r.Window = &Window{Start: snap.Begin, End: end, Seconds: windowSecs}
	}
	for _, s := range snap.Series {
		if len(s.Samples) == 0 && len(s.Errors) == 0 {
			continue // created, never used: nothing to say
		}
		sum := stats.Summarize(s.Samples)
		m := Metric{
			Name: s.Name, Phase: s.Phase, Count: sum.Count, Errors: s.Errors,
			MinMS: ms(sum.Min), MeanMS: ms(sum.Mean), P50MS: ms(sum.P50), P90MS: ms(sum.P90), P95MS: ms(sum.P95),
			P99MS: ms(sum.P99), P999MS: ms(sum.P999), MaxMS: ms(sum.Max), Bytes: s.Bytes,
			buckets: stats.HistogramOf(s.Samples).Counts(), Histogram: []Bucket{},
		}
		if len(m.Errors) == 0 {
			m.Errors = nil
		}
		for _, n := range s.Errors {
			m.ErrorCount += n
		}
		secs := windowSecs
		if !s.Windowed {
			secs = s.Last.Sub(s.First).Seconds()
		}
		if secs > 0 {
			m.PerSecond = float64(m.Count) / secs
			m.BytesPerSecond = float64(m.Bytes) / secs
		}
		for i, n := range m.buckets {
			if n == 0 {
				continue
			}
			lo, hi := stats.BucketBounds(i)
			b := Bucket{Index: i, GeMS: ms(lo), Count: n}
			if hi >= 0 {
				v := ms(hi)
				b.LtMS = &v
			}
			m.Histogram = append(m.Histogram, b)
		}
		r.Metrics = append(r.Metrics, m)
	}
	for _, c := range snap.Counters {
		rc := Counter{Name: c.Name, Value: c.Value}
		if windowSecs > 0 {
			rc.PerSecond = float64(c.Value) / windowSecs
		}
		r.Counters = append(r.Counters, rc)
	}
	if len(snap.Values) > 0 {
		r.Values = snap.Values
	}
}

// AddProcess fills Process from the samples of pid; readErr is the
// monitor's last read error, if any.
func (r *Report) AddProcess(pid int, samples []procmon.Sample, readErr error, idleFrom, idleTo time.Time) {
	p := &Process{PID: pid, Run: processSummary(procmon.Summarize(samples, time.Time{}, time.Time{}))}
	if !idleFrom.IsZero() {
		if s := processSummary(procmon.Summarize(samples, idleFrom, idleTo)); s.Samples > 0 {
			p.Idle = &s
		}
	}
	if r.Window != nil {
		w := processSummary(procmon.Summarize(samples, r.Window.Start, r.Window.End))
		if w.Samples > 0 {
			p.Window = &w
		}
	}
	for _, s := range samples {
		p.Samples = append(p.Samples, ProcessSample{T: s.At.Sub(r.Started).Seconds(), RSSBytes: s.RSS, CPUSeconds: s.CPU.Seconds()})
	}
	if readErr != nil {
		p.Error = readErr.Error()
	}
	r.Process = p
}

func processSummary(s procmon.Summary) ProcessSummary {
	return ProcessSummary{Samples: s.Samples, StartRSSBytes: s.StartRSS, PeakRSSBytes: s.PeakRSS, EndRSSBytes: s.EndRSS,
		CPUSeconds: s.CPU.Seconds(), Seconds: s.Elapsed.Seconds(), AvgCores: s.AvgCores}
}

// Metric returns the metric called name, or nil.
func (r *Report) Metric(name string) *Metric {
	i := slices.IndexFunc(r.Metrics, func(m Metric) bool { return m.Name == name })
	if i < 0 {
		return nil
	}
	return &r.Metrics[i]
}

// Counter returns the counter called name, or nil.
func (r *Report) Counter(name string) *Counter {
	i := slices.IndexFunc(r.Counters, func(c Counter) bool { return c.Name == name })
	if i < 0 {
		return nil
	}
	return &r.Counters[i]
}

// unsafeName matches what a file name should not hold.
var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// HistogramFile returns the file name of a metric's SVG histogram.
func HistogramFile(metric string) string {
	return "hist-" + unsafeName.ReplaceAllString(metric, "_") + ".svg"
}

// Write writes dir/results.json, dir/index.html and an SVG histogram per
// metric with samples, creating dir. It returns the paths written.
func (r *Report) Write(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create output directory: %w", err)
	}
	var written []string
	write := func(name string, data []byte) error {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		written = append(written, p)
		return nil
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode results: %w", err)
	}
	if err := write("results.json", append(js, '\n')); err != nil {
		return written, err
	}
	for i := range r.Metrics {
		m := &r.Metrics[i]
		if m.Count == 0 {
			continue
		}
		if err := write(HistogramFile(m.Name), []byte(xmlHeader+m.SVG())); err != nil {
			return written, err
		}
	}
	if err := write("index.html", []byte(r.HTML())); err != nil {
		return written, err
	}
	return written, nil
}
