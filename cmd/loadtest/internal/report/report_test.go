package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/procmon"
	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/stats"
)

// sample builds a report from known measurements: a 10 s window, 100
// sends of 1..100 ms, 2 errors, a setup series and a counter.
func sample(t *testing.T) *Report {
	t.Helper()
	t0 := time.Now()
	rec := stats.NewRecorder()
	rec.BeginWindow(t0)
	send := rec.Series("send")
	for i := 1; i <= 100; i++ {
		send.ObserveBytes(t0.Add(time.Duration(i)*time.Millisecond), time.Duration(i)*time.Millisecond, 10)
	}
	send.Fail(t0, "M_LIMIT_EXCEEDED")
	send.Fail(t0, "M_LIMIT_EXCEEDED")
	login := rec.SetupSeries("setup.login")
	login.Observe(t0.Add(-2*time.Second), 500*time.Millisecond)
	login.Observe(t0.Add(-1500*time.Millisecond), 500*time.Millisecond) // span 1 s
	rec.Counter("messages.sent").Add(t0, 50)
	rec.SetValue("rooms", 4)
	rec.Series("sync") // errors only, none
	rec.EndWindow(t0.Add(10 * time.Second))

	r := New("chat", "http://127.0.0.1:8008", t0.Add(-3*time.Second))
	r.Finished = t0.Add(11 * time.Second)
	r.Params["users"] = 10
	r.AddMeasurements(rec.Snapshot())
	return r
}

func TestAddMeasurements(t *testing.T) {
	r := sample(t)
	if r.Window == nil || r.Window.Seconds != 10 {
		t.Fatalf("window %+v", r.Window)
	}
	m := r.Metric("send")
	if m == nil {
		t.Fatal("no send metric")
	}
	if m.Count != 100 || m.ErrorCount != 2 || m.Errors["M_LIMIT_EXCEEDED"] != 2 || m.P50MS != 50 || m.P95MS != 95 || m.P99MS != 99 ||
		m.MaxMS != 100 || m.MinMS != 1 || m.MeanMS != 50.5 || m.PerSecond != 10 || m.Bytes != 1000 || m.BytesPerSecond != 100 {
		t.Errorf("send: %+v", m)
	}
	var n int64
	for i, b := range m.Histogram {
		n += b.Count
		if b.LtMS == nil || *b.LtMS <= b.GeMS || (i > 0 && b.Index <= m.Histogram[i-1].Index) {
			t.Errorf("bucket %+v", b)
		}
	}
	if n != 100 {
		t.Errorf("histogram holds %d samples", n)
	}
	if l := r.Metric("setup.login"); l.PerSecond != 2 || l.Phase != stats.PhaseSetup {
		t.Errorf("setup throughput over its own span: %+v", l)
	}
	if c := r.Counter("messages.sent"); c.Value != 50 || c.PerSecond != 5 {
		t.Errorf("counter %+v", c)
	}
	if r.Metric("sync") != nil || r.Metric("nope") != nil || r.Counter("nope") != nil {
		t.Error("a series that recorded nothing is reported")
	}
}

func TestWindowNeverClosed(t *testing.T) {
	t0 := time.Now()
	rec := stats.NewRecorder()
	rec.BeginWindow(t0)
	r := New("join", "x", t0)
	r.Finished = t0.Add(4 * time.Second)
	r.AddMeasurements(rec.Snapshot())
	if r.Window == nil || r.Window.Seconds != 4 {
		t.Errorf("an open window ends when the run does: %+v", r.Window)
	}
	r2 := New("join", "x", t0)
	r2.Finished = t0
	r2.AddMeasurements(stats.NewRecorder().Snapshot())
	if r2.Window != nil {
		t.Error("no window begun, but one reported")
	}
}

func TestTable(t *testing.T) {
	r := sample(t)
	r.Notes = append(r.Notes, "a note")
	var buf bytes.Buffer
	r.WriteTable(&buf)
	out := buf.String()
	for _, want := range []string{"chat against http://127.0.0.1:8008: ok, measured over 10.0s", "users=10",
		"send ", "50.0ms", "95.0ms", "99.0ms", "100ms", "10.0/s", "setup.login", "messages.sent", "5.00/s",
		"rooms", "send: M_LIMIT_EXCEEDED ×2", "note: a note"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestFormat(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 0.4123: "0.412ms", 4.123: "4.12ms", 41.23: "41.2ms", 412.3: "412ms", 4123: "4.12s", 41230: "41.2s"} {
		if got := FormatMS(v); got != want {
			t.Errorf("FormatMS(%v) = %q, want %q", v, got, want)
		}
	}
	for v, want := range map[float64]string{0: "0 B", 512: "512 B", 1536: "1.5 KiB", 3 << 20: "3.0 MiB"} {
		if got := FormatBytes(v); got != want {
			t.Errorf("FormatBytes(%v) = %q, want %q", v, got, want)
		}
	}
}

// wellFormed fails unless doc parses as XML to its end.
func wellFormed(t *testing.T, name, doc string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(doc))
	d.Strict = true
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("%s is not well-formed XML: %v\n%s", name, err, doc)
		}
	}
}

func TestSVG(t *testing.T) {
	r := sample(t)
	svg := r.Metric("send").SVG()
	wellFormed(t, "send", svg)
	for _, want := range []string{"<svg", "send", "p50 50.0ms", "p99 99.0ms", ">1ms<", ">10ms<", ">100ms<", "<rect"} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	// Extremes: samples under and over the fixed range, and none at all.
	ext := sample(t)
	m := ext.Metric("send")
	m.buckets = make([]int64, stats.NumBuckets)
	m.buckets[0], m.buckets[stats.NumBuckets-1] = 3, 1
	wellFormed(t, "extremes", m.SVG())
	empty := Metric{Name: "a<b&c", buckets: make([]int64, stats.NumBuckets)}
	wellFormed(t, "empty", empty.SVG())
}

func TestWrite(t *testing.T) {
	r := sample(t)
	r.AddProcess(42, []procmon.Sample{
		{At: r.Started, RSS: 10 << 20, CPU: 0},
		{At: r.Window.Start.Add(time.Second), RSS: 30 << 20, CPU: time.Second},
		{At: r.Window.End, RSS: 20 << 20, CPU: 3 * time.Second},
		{At: r.Window.End.Add(2 * time.Second), RSS: 18 << 20, CPU: 3 * time.Second},
		{At: r.Window.End.Add(3 * time.Second), RSS: 17 << 20, CPU: 3 * time.Second},
	}, nil, r.Window.End.Add(time.Second), r.Window.End.Add(4*time.Second))
	dir := filepath.Join(t.TempDir(), "out")
	files, err := r.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	// results.json, index.html and the histogram of send and setup.login
	// (sync has no samples).
	if len(files) != 4 {
		t.Errorf("wrote %v", files)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if back.Scenario != "chat" || len(back.Metrics) != 2 || back.Metrics[0].P99MS != 99 || back.Process.Run.PeakRSSBytes != 30<<20 ||
		back.Process.Window == nil || back.Process.Window.CPUSeconds != 2 || back.PercentileMethod != "nearest-rank" ||
		back.Process.Idle == nil || back.Process.Idle.Samples != 2 || back.Process.Idle.EndRSSBytes != 17<<20 {
		t.Errorf("results.json: %s", raw)
	}
	for _, name := range []string{HistogramFile("send"), HistogramFile("setup.login")} {
		svg, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		wellFormed(t, name, string(svg))
	}
	page, err := os.ReadFile(filepath.Join(dir, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(page), "<svg"); n != 2 {
		t.Errorf("index.html has %d inline SVGs, want 2", n)
	}
	if HistogramFile("upload 1/MiB") != "hist-upload_1_MiB.svg" {
		t.Error(HistogramFile("upload 1/MiB"))
	}
}

func TestTicks(t *testing.T) {
	for d, want := range map[time.Duration]string{
		100 * time.Microsecond: "100µs", time.Millisecond: "1ms", 1995262 * time.Nanosecond: "2ms",
		50118723 * time.Nanosecond: "50ms", 10 * time.Second: "10s", 100 * time.Second: "100s",
	} {
		if got := durLabel(d); got != want {
			t.Errorf("durLabel(%v) = %q, want %q", d, got, want)
		}
	}
	for peak, want := range map[int64]int64{1: 1, 5: 1, 6: 2, 10: 2, 11: 5, 25: 5, 26: 10, 804: 200, 1000: 200, 1001: 500} {
		if got := niceStep(peak); got != want {
			t.Errorf("niceStep(%d) = %d, want %d", peak, got, want)
		}
	}
}
