package progress

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// buffer is a bytes.Buffer safe for the Line's goroutine and the test.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestTerminal(t *testing.T) {
	var out buffer
	l := New(&out, true, "chat", 10*time.Millisecond)
	l.Phase("measure", 30*time.Second)
	l.SetStatus(func() string { return "sent 12" })
	time.Sleep(50 * time.Millisecond)
	l.Printf("note: %s", "hello")
	l.Close()
	l.Close() // harmless
	s := out.String()
	if !strings.Contains(s, "\r\x1b[Kchat: measure 0s/30s · sent 12") || !strings.Contains(s, "\r\x1b[Knote: hello\n") {
		t.Errorf("terminal output %q", s)
	}
	if !strings.HasSuffix(s, "\r\x1b[K") {
		t.Errorf("the line is not cleared at the end: %q", s)
	}
	n := len(out.String())
	time.Sleep(30 * time.Millisecond)
	if len(out.String()) != n {
		t.Error("output after Close")
	}
}

func TestLog(t *testing.T) {
	var out buffer
	l := New(&out, false, "join", 20*time.Millisecond)
	l.Phase("setup: users", 0)
	time.Sleep(70 * time.Millisecond)
	l.Printf("a note")
	l.Close()
	s := out.String()
	if strings.ContainsAny(s, "\r\x1b") {
		t.Errorf("escape codes in a log: %q", s)
	}
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) < 3 || !strings.HasSuffix(lines[0], "join: setup: users 0s") || !strings.Contains(s, "\na note\n") {
		t.Errorf("log output:\n%s", s)
	}
}

func TestNil(t *testing.T) {
	var l *Line
	l.Phase("x", 0)
	l.SetStatus(nil)
	l.Printf("x")
	l.Close()
}
