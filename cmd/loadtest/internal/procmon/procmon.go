// Package procmon samples a local process's memory and CPU from /proc
// while a load test runs, so that a report says what the server cost: its
// resident memory at the start, at its peak and at the end, and the CPU
// it used on average. It works on Linux only, for a process on the same
// machine as the tool.
package procmon

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ClockTicks is the kernel's USER_HZ, the unit of utime and stime in
// /proc/PID/stat: 100 on every architecture Linux runs this tool on
// (the value is fixed by the kernel ABI, and reading it through
// sysconf(_SC_CLK_TCK) would need cgo).
const ClockTicks = 100

// Sample is one reading.
type Sample struct {
	// At is when it was taken.
	At time.Time
	// RSS is the resident set size in bytes (VmRSS).
	RSS int64
	// CPU is the process's user plus system CPU time since it started.
	CPU time.Duration
}

// Read takes one sample of pid.
func Read(pid int) (Sample, error) {
	s := Sample{At: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Sample{}, fmt.Errorf("read cpu of process %d: %w", pid, err)
	}
	if s.CPU, err = parseStatCPU(stat); err != nil {
		return Sample{}, fmt.Errorf("process %d: %w", pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Sample{}, fmt.Errorf("read memory of process %d: %w", pid, err)
	}
	if s.RSS, err = parseStatusKB(status, "VmRSS"); err != nil {
		return Sample{}, fmt.Errorf("process %d: %w", pid, err)
	}
	return s, nil
}

// parseStatCPU returns utime+stime from the contents of /proc/PID/stat.
func parseStatCPU(stat []byte) (time.Duration, error) {
	// The command name (field 2) is in parentheses and may hold spaces
	// and parentheses: the fields that follow start after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat: no command name")
	}
	fields := strings.Fields(string(stat[i+1:]))
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(fields) < 13 {
		return 0, fmt.Errorf("malformed /proc stat: %d fields after the name", len(fields))
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed /proc stat cpu time %q: %w", f, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / ClockTicks, nil
}

// parseStatusKB returns the value of key ("VmRSS") in the contents of
// /proc/PID/status, in bytes.
func parseStatusKB(status []byte, key string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != key {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("malformed /proc status line %q", sc.Text())
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed /proc status line %q: %w", sc.Text(), err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("no %s in /proc status (a kernel thread, or a zombie)", key)
}

// Monitor samples one process at a fixed interval from Start until Stop.
type Monitor struct {
	pid      int
	interval time.Duration
	done     chan struct{}
	wg       sync.WaitGroup

	// mu guards samples and lastErr.
	mu      sync.Mutex
	samples []Sample
	lastErr error
}

// Start takes a first sample of pid, failing when the process cannot be
// read, then samples it every interval (zero: one second) until Stop.
func Start(pid int, interval time.Duration) (*Monitor, error) {
	if interval <= 0 {
		interval = time.Second
	}
	first, err := Read(pid)
	if err != nil {
		return nil, err
	}
	m := &Monitor{pid: pid, interval: interval, done: make(chan struct{}), samples: []Sample{first}}
	m.wg.Add(1)
	go m.loop()
	return m, nil
}

func (m *Monitor) loop() {
	defer m.wg.Done()
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-t.C:
			m.sample()
		}
	}
}

func (m *Monitor) sample() {
	s, err := Read(m.pid)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.lastErr = err
		return
	}
	m.samples = append(m.samples, s)
}

// Stop takes a last sample, stops sampling and returns the samples and
// the last read error (the process may have exited). Call it once.
func (m *Monitor) Stop() ([]Sample, error) {
	close(m.done)
	m.wg.Wait()
	m.sample()
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Sample(nil), m.samples...), m.lastErr
}

// Summary digests samples.
type Summary struct {
	// Samples is the number of samples.
	Samples int
	// StartRSS, PeakRSS and EndRSS are in bytes.
	StartRSS, PeakRSS, EndRSS int64
	// CPU is the CPU time used between the first and the last sample.
	CPU time.Duration
	// Elapsed is the time between the first and the last sample.
	Elapsed time.Duration
	// AvgCores is CPU/Elapsed: 1.0 is one core busy all along.
	AvgCores float64
}

// Summarize returns the Summary of samples taken in [from, to]; zero
// bounds mean no bound. It returns a zero Summary when no sample falls in
// range.
func Summarize(samples []Sample, from, to time.Time) Summary {
	var in []Sample
	for _, s := range samples {
		if (from.IsZero() || !s.At.Before(from)) && (to.IsZero() || !s.At.After(to)) {
			in = append(in, s)
		}
	}
	if len(in) == 0 {
		return Summary{}
	}
	first, last := in[0], in[len(in)-1]
	sum := Summary{Samples: len(in), StartRSS: first.RSS, EndRSS: last.RSS, CPU: last.CPU - first.CPU, Elapsed: last.At.Sub(first.At)}
	for _, s := range in {
		sum.PeakRSS = max(sum.PeakRSS, s.RSS)
	}
	if sum.Elapsed > 0 {
		sum.AvgCores = sum.CPU.Seconds() / sum.Elapsed.Seconds()
	}
	return sum
}
