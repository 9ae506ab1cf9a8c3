package tests

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The Node programs the tests run (matrix-js-sdk clients in tests/jssdk,
// a matrix-appservice-bridge bridge in tests/asbridge) talk line by line:
// the test writes commands to their stdin and waits for lines on their
// stdout that start with a known word.

// requireNode returns the node binary (Node 20 or later) when dir has
// package pkg installed, or skips the test saying what is missing; what
// names the test in the message.
func requireNode(t *testing.T, what, dir, pkg string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skipf("%s test skipped: node is not installed (Node 20 or later is needed)", what)
	}
	out, err := exec.Command(node, "-p", "process.versions.node.split('.')[0]").Output()
	if major, _ := strconv.Atoi(strings.TrimSpace(string(out))); err != nil || major < 20 {
		t.Skipf("%s test skipped: node %s is older than 20 (err %v)", what, strings.TrimSpace(string(out)), err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
		t.Skipf("%s test skipped: its packages are not installed; run `npm ci` in tests/%s", what, dir)
	}
	return node
}

// nodeTimeout bounds a Node program's whole run.
const nodeTimeout = 90 * time.Second

// nodeProgram is a running Node program.
type nodeProgram struct {
	t     *testing.T
	name  string
	cmd   *exec.Cmd
	ctx   context.Context
	stdin io.WriteCloser
	// lines carries the program's stdout; closed at its end.
	lines chan string
	// giveUp starts a line that means the program ended early (its
	// final result, or an error): next fails on it.
	giveUp string
}

// startNode runs node with args in dir, with env added to this process's
// environment; its stderr goes to the test log. It is killed when the
// test ends, or after nodeTimeout.
func startNode(t *testing.T, node, dir, giveUp string, env []string, args ...string) *nodeProgram {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = testLogLines{t}
	p := &nodeProgram{t: t, name: args[len(args)-1], cmd: cmd, ctx: ctx, lines: make(chan string, 16), giveUp: giveUp}
	for _, a := range args {
		if strings.HasSuffix(a, ".mjs") {
			p.name = a
		}
	}
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	return p
}

// send writes a command line to the program.
func (p *nodeProgram) send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		p.t.Fatalf("write to %s: %v", p.name, err)
	}
}

// next waits for the program's next line that is prefix, or starts with
// prefix and a space, and returns the rest; the program ending, giving
// up or running out of time first fails the test.
func (p *nodeProgram) next(prefix string) string {
	p.t.Helper()
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("%s ended before %s", p.name, prefix)
			}
			if strings.HasPrefix(line, p.giveUp) {
				p.t.Fatalf("%s gave up before %s: %s", p.name, prefix, line)
			}
			if rest, ok := strings.CutPrefix(line, prefix+" "); ok {
				return strings.TrimSpace(rest)
			}
			if line == prefix {
				return ""
			}
		case <-p.ctx.Done():
			p.t.Fatalf("%s: no %s in time", p.name, prefix)
		}
	}
}

// wait reads the program's remaining output and waits for its end: it
// returns the rest of its last giveUp line (its final result) and how
// it exited.
func (p *nodeProgram) wait() (last string, err error) {
	for line := range p.lines {
		if rest, ok := strings.CutPrefix(line, p.giveUp); ok {
			last = strings.TrimSpace(rest)
		}
	}
	return last, p.cmd.Wait()
}

// testLogLines sends a child process's output to the test log, a line at
// a time.
type testLogLines struct{ t *testing.T }

func (w testLogLines) Write(p []byte) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(p))
	for sc.Scan() {
		w.t.Log(sc.Text())
	}
	return len(p), nil
}
