// Package progress shows what a running load test is doing on one line
// of stderr: the phase, its elapsed and planned time, and the scenario's
// own status (messages sent, errors). On a terminal the line is redrawn
// in place a few times a second; otherwise (a log file, CI) a plain line
// is written every few seconds, so that logs stay readable.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Intervals between updates.
const (
	// TerminalInterval is how often the line is redrawn on a terminal.
	TerminalInterval = 250 * time.Millisecond
	// LogInterval is how often a line is written elsewhere.
	LogInterval = 5 * time.Second
)

// IsTerminal says whether f is a terminal (a character device), which is
// all the line needs to know to redraw in place.
func IsTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Line is the progress display. Its methods are safe for concurrent use;
// a nil *Line discards everything, for tests.
type Line struct {
	w        io.Writer
	tty      bool
	interval time.Duration
	prefix   string
	done     chan struct{}
	stopped  sync.WaitGroup

	// mu guards the fields below and writes to w.
	mu         sync.Mutex
	phase      string
	phaseStart time.Time
	phaseLen   time.Duration
	status     func() string
	// drawn says a progress line is on screen (terminal only).
	drawn bool
	// closed says Close ran.
	closed bool
}

// New starts a Line on w, labelled prefix (the scenario's name). tty says
// whether to redraw in place; interval zero means the default for the
// kind of output. Call Close when the run ends.
func New(w io.Writer, tty bool, prefix string, interval time.Duration) *Line {
	if interval <= 0 {
		interval = LogInterval
		if tty {
			interval = TerminalInterval
		}
	}
	l := &Line{w: w, tty: tty, interval: interval, prefix: prefix, done: make(chan struct{}), phaseStart: time.Now()}
	l.stopped.Add(1)
	go l.loop()
	return l
}

func (l *Line) loop() {
	defer l.stopped.Done()
	t := time.NewTicker(l.interval)
	defer t.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-t.C:
			l.mu.Lock()
			l.drawLocked()
			l.mu.Unlock()
		}
	}
}

// Phase starts a phase called name, planned to last length (zero: no
// planned length).
func (l *Line) Phase(name string, length time.Duration) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.phase, l.phaseStart, l.phaseLen = name, time.Now(), length
	if !l.tty {
		l.writeLocked(l.textLocked())
	}
}

// SetStatus sets the function giving the scenario's status; it is called
// at each update and must be quick. Nil clears it.
func (l *Line) SetStatus(fn func() string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.status = fn
}

// Printf writes a line of its own (a note, a warning) without mixing it
// with the progress line.
func (l *Line) Printf(format string, args ...any) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.clearLocked()
	fmt.Fprintf(l.w, strings.TrimRight(format, "\n")+"\n", args...)
	if l.tty {
		l.drawLocked()
	}
}

// Close stops updates and clears the line; the Line is then silent.
func (l *Line) Close() {
	if l == nil {
		return
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	close(l.done)
	l.mu.Unlock()
	l.stopped.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.clearLocked()
}

// textLocked is the line's text.
func (l *Line) textLocked() string {
	var b strings.Builder
	b.WriteString(l.prefix)
	if l.phase != "" {
		el := time.Since(l.phaseStart).Truncate(time.Second)
		fmt.Fprintf(&b, ": %s %s", l.phase, el)
		if l.phaseLen > 0 {
			fmt.Fprintf(&b, "/%s", l.phaseLen)
		}
	}
	if l.status != nil {
		if s := l.status(); s != "" {
			b.WriteString(" · ")
			b.WriteString(s)
		}
	}
	return b.String()
}

func (l *Line) drawLocked() {
	if l.closed {
		return
	}
	if !l.tty {
		l.writeLocked(l.textLocked())
		return
	}
	// \r then erase to the end of the line: the new text replaces the old.
	fmt.Fprintf(l.w, "\r\x1b[K%s", l.textLocked())
	l.drawn = true
}

func (l *Line) clearLocked() {
	if l.tty && l.drawn {
		fmt.Fprint(l.w, "\r\x1b[K")
		l.drawn = false
	}
}

// writeLocked writes a plain line (not a terminal).
func (l *Line) writeLocked(s string) {
	fmt.Fprintf(l.w, "%s %s\n", time.Now().Format("15:04:05"), s)
}
