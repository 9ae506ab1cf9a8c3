package report

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// HTML returns a self-contained page: the run's parameters, the tables,
// and every latency histogram as inline SVG.
func (r *Report) HTML() string {
	var b strings.Builder
	title := fmt.Sprintf("loadtest %s against %s", r.Scenario, r.Target)
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>%s</title>\n", esc(title))
	b.WriteString(`<style>
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { padding: 0.25em 0.75em; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.meta td { text-align: left; }
figure { margin: 1.5em 0; }
</style>
</head>
<body>
`)
	fmt.Fprintf(&b, "<h1>%s</h1>\n<table class=\"meta\">\n", esc(title))
	row := func(k, v string) { fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td></tr>\n", esc(k), esc(v)) }
	row("status", r.Status)
	if r.Error != "" {
		row("error", r.Error)
	}
	row("started", r.Started.Format(time.RFC3339))
	row("duration", r.Finished.Sub(r.Started).Round(100*time.Millisecond).String())
	if r.Window != nil {
		row("measured window", strings.TrimSpace(fmt.Sprintf("%.1fs, ended by %s", r.Window.Seconds, r.Window.EndedBy)))
	}
	row("server", strings.TrimSpace(r.Server.Header+" "+strings.Join(r.Server.Versions, " ")))
	row("registration", r.Registration)
	row("parameters", formatParams(r.Params))
	row("percentiles", r.PercentileMethod)
	b.WriteString("</table>\n")

	if len(r.Metrics) > 0 {
		b.WriteString("<h2>Latency</h2>\n<table>\n<tr><th>metric</th><th>phase</th><th>count</th><th>errors</th><th>p50</th><th>p95</th><th>p99</th><th>max</th><th>rate</th></tr>\n")
		for _, m := range r.Metrics {
			lat := []string{"-", "-", "-", "-"}
			if m.Count > 0 {
				lat = []string{FormatMS(m.P50MS), FormatMS(m.P95MS), FormatMS(m.P99MS), FormatMS(m.MaxMS)}
			}
			fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td><td>%d</td><td>%d</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n",
				esc(m.Name), esc(m.Phase), m.Count, m.ErrorCount, lat[0], lat[1], lat[2], lat[3], FormatRate(m.PerSecond))
		}
		b.WriteString("</table>\n")
	}
	if len(r.Counters) > 0 || len(r.Values) > 0 {
		b.WriteString("<h2>Counters</h2>\n<table>\n<tr><th>counter</th><th>value</th><th>rate</th></tr>\n")
		for _, c := range r.Counters {
			fmt.Fprintf(&b, "<tr><td>%s</td><td>%d</td><td>%s</td></tr>\n", esc(c.Name), c.Value, FormatRate(c.PerSecond))
		}
		for _, k := range slices.Sorted(maps.Keys(r.Values)) {
			fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td><td></td></tr>\n", esc(k), formatValue(r.Values[k]))
		}
		b.WriteString("</table>\n")
	}
	if p := r.Process; p != nil {
		fmt.Fprintf(&b, "<h2>Server process %d</h2>\n<p>%s</p>\n", p.PID, esc(formatProcess(p.Run)))
		if p.Window != nil {
			fmt.Fprintf(&b, "<p>During the window: %s</p>\n", esc(formatProcess(*p.Window)))
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "<p><strong>Note:</strong> %s</p>\n", esc(n))
	}
	var figures []string
	for i := range r.Metrics {
		if m := &r.Metrics[i]; m.Count > 0 {
			figures = append(figures, fmt.Sprintf("<figure id=\"%s\">\n%s</figure>\n", esc(HistogramFile(m.Name)), m.SVG()))
		}
	}
	if len(figures) > 0 {
		b.WriteString("<h2>Histograms</h2>\n")
		b.WriteString(strings.Join(figures, ""))
	}
	b.WriteString("</body>\n</html>\n")
	return b.String()
}
