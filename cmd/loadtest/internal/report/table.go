package report

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// FormatMS formats a duration in milliseconds with three significant
// digits: "0.412ms", "41.2ms", "412ms", "4.12s".
func FormatMS(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 1:
		return fmt.Sprintf("%.3fms", v)
	case v < 10:
		return fmt.Sprintf("%.2fms", v)
	case v < 100:
		return fmt.Sprintf("%.1fms", v)
	case v < 1000:
		return fmt.Sprintf("%.0fms", v)
	case v < 10000:
		return fmt.Sprintf("%.2fs", v/1000)
	}
	return fmt.Sprintf("%.1fs", v/1000)
}

// FormatBytes formats n bytes with a binary unit: "512 B", "1.5 MiB".
func FormatBytes(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f %s", n, units[i])
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}

// FormatRate formats a rate per second.
func FormatRate(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v < 10:
		return fmt.Sprintf("%.2f/s", v)
	case v < 1000:
		return fmt.Sprintf("%.1f/s", v)
	}
	return fmt.Sprintf("%.0f/s", v)
}

// WriteTable writes the human summary: the run, a line per latency
// metric (count, errors, p50, p95, p99, max, throughput), the counters,
// the errors by errcode and the server process's cost.
func (r *Report) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "%s against %s: %s", r.Scenario, r.Target, r.Status)
	if r.Window != nil {
		fmt.Fprintf(w, ", measured over %.1fs", r.Window.Seconds)
		if r.Window.EndedBy != "" && r.Window.EndedBy != "duration" {
			fmt.Fprintf(w, " (ended by %s)", r.Window.EndedBy)
		}
	}
	fmt.Fprintf(w, " (%s in all)\n", r.Finished.Sub(r.Started).Round(100*time.Millisecond))
	if r.Error != "" {
		fmt.Fprintf(w, "  %s\n", r.Error)
	}
	if params := formatParams(r.Params); params != "" {
		fmt.Fprintf(w, "  %s\n", params)
	}
	if len(r.Metrics) > 0 {
		nameW := len("metric")
		for _, m := range r.Metrics {
			nameW = max(nameW, len(m.Name))
		}
		fmt.Fprintf(w, "\n%-*s  %-7s %7s %6s %9s %9s %9s %9s %9s  data\n", nameW, "metric", "phase", "count", "errors", "p50", "p95", "p99", "max", "rate")
		for _, m := range r.Metrics {
			lat := [4]string{"-", "-", "-", "-"}
			if m.Count > 0 {
				lat = [4]string{FormatMS(m.P50MS), FormatMS(m.P95MS), FormatMS(m.P99MS), FormatMS(m.MaxMS)}
			}
			data := ""
			if m.Bytes > 0 {
				data = FormatBytes(float64(m.Bytes))
				if m.BytesPerSecond > 0 {
					data += ", " + FormatBytes(m.BytesPerSecond) + "/s"
				}
			}
			line := fmt.Sprintf("%-*s  %-7s %7d %6d %9s %9s %9s %9s %9s  %s", nameW, m.Name, m.Phase, m.Count, m.ErrorCount,
				lat[0], lat[1], lat[2], lat[3], FormatRate(m.PerSecond), data)
			fmt.Fprintln(w, strings.TrimRight(line, " "))
		}
	}
	if len(r.Counters) > 0 || len(r.Values) > 0 {
		nameW := len("counter")
		for _, c := range r.Counters {
			nameW = max(nameW, len(c.Name))
		}
		for k := range r.Values {
			nameW = max(nameW, len(k))
		}
		fmt.Fprintf(w, "\n%-*s  %10s %9s\n", nameW, "counter", "value", "rate")
		for _, c := range r.Counters {
			fmt.Fprintf(w, "%-*s  %10d %9s\n", nameW, c.Name, c.Value, FormatRate(c.PerSecond))
		}
		for _, k := range slices.Sorted(maps.Keys(r.Values)) {
			fmt.Fprintf(w, "%-*s  %10s\n", nameW, k, formatValue(r.Values[k]))
		}
	}
	var errs []string
	for _, m := range r.Metrics {
		for _, code := range slices.Sorted(maps.Keys(m.Errors)) {
			errs = append(errs, fmt.Sprintf("  %s: %s ×%d", m.Name, code, m.Errors[code]))
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(w, "\nerrors by errcode:\n%s\n", strings.Join(errs, "\n"))
	}
	if p := r.Process; p != nil {
		fmt.Fprintf(w, "\nserver process %d: %s\n", p.PID, formatProcess(p.Run))
		if p.Window != nil {
			fmt.Fprintf(w, "  during the window: %s\n", formatProcess(*p.Window))
		}
		if p.Idle != nil {
			fmt.Fprintf(w, "  idle, connections open: %s\n", formatProcess(*p.Idle))
		}
		if p.Error != "" {
			fmt.Fprintf(w, "  last read error: %s\n", p.Error)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

func formatProcess(s ProcessSummary) string {
	if s.Samples == 0 {
		return "no samples"
	}
	return fmt.Sprintf("RSS start %s, peak %s, end %s; CPU %.1fs over %.1fs, %.2f cores on average",
		FormatBytes(float64(s.StartRSSBytes)), FormatBytes(float64(s.PeakRSSBytes)), FormatBytes(float64(s.EndRSSBytes)),
		s.CPUSeconds, s.Seconds, s.AvgCores)
}

func formatValue(v float64) string {
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%.3f", v)
}

// formatParams writes params as key=value, sorted by key.
func formatParams(params map[string]any) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(params)) {
		parts = append(parts, fmt.Sprintf("%s=%v", k, params[k]))
	}
	return strings.Join(parts, " ")
}
