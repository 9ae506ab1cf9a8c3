package procmon

import (
	"os"
	"runtime"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and parentheses; utime 250, stime 50.
	stat := []byte("1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 100 1000000 500 18446744073709551615\n")
	got, err := parseStatCPU(stat)
	if err != nil || got != 3*time.Second {
		t.Errorf("parseStatCPU = %v, %v; want 3s", got, err)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 10 x 2"} {
		if _, err := parseStatCPU([]byte(bad)); err == nil {
			t.Errorf("parseStatCPU(%q) did not fail", bad)
		}
	}
}

func TestParseStatusKB(t *testing.T) {
	status := []byte("Name:\thomeserver\nVmPeak:\t  900 kB\nVmRSS:\t   12345 kB\nThreads:\t9\n")
	if got, err := parseStatusKB(status, "VmRSS"); err != nil || got != 12345*1024 {
		t.Errorf("VmRSS = %d, %v", got, err)
	}
	if _, err := parseStatusKB([]byte("Name:\tkthreadd\n"), "VmRSS"); err == nil {
		t.Error("no VmRSS: no error")
	}
	if _, err := parseStatusKB([]byte("VmRSS:\t12 MB\n"), "VmRSS"); err == nil {
		t.Error("bad unit: no error")
	}
}

func TestMonitorSelf(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux only")
	}
	m, err := Start(os.Getpid(), 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// Burn a little CPU so that the figure moves.
	deadline := time.Now().Add(100 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = x * x
	}
	samples, err := m.Stop()
	if err != nil {
		t.Fatal(err)
	}
	s := Summarize(samples, time.Time{}, time.Time{})
	if s.Samples < 3 || s.StartRSS <= 0 || s.PeakRSS < s.StartRSS || s.PeakRSS < s.EndRSS || s.CPU <= 0 || s.AvgCores <= 0 {
		t.Errorf("summary of self: %+v", s)
	}
	if _, err := Start(-1, 0); err == nil {
		t.Error("Start(-1) did not fail")
	}
}

func TestSummarizeRange(t *testing.T) {
	t0 := time.Now()
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	samples := []Sample{
		{At: at(0), RSS: 100, CPU: 0},
		{At: at(1), RSS: 300, CPU: time.Second},
		{At: at(2), RSS: 200, CPU: 1500 * time.Millisecond},
		{At: at(3), RSS: 150, CPU: 2 * time.Second},
	}
	all := Summarize(samples, time.Time{}, time.Time{})
	if all != (Summary{Samples: 4, StartRSS: 100, PeakRSS: 300, EndRSS: 150, CPU: 2 * time.Second, Elapsed: 3 * time.Second, AvgCores: 2.0 / 3}) {
		t.Errorf("all: %+v", all)
	}
	w := Summarize(samples, at(2), at(3))
	if w.Samples != 2 || w.PeakRSS != 200 || w.AvgCores != 0.5 {
		t.Errorf("window: %+v", w)
	}
	if z := Summarize(samples, at(10), time.Time{}); z != (Summary{}) {
		t.Errorf("empty range: %+v", z)
	}
}
