// Package scenario holds the load tool's scenarios (chat, initial-sync,
// join, send, e2ee, media) and what they share: the run environment, the
// warm-up and measured window, room and /sync helpers.
//
// Every scenario is written against the Matrix client-server
// specification, never against one server's quirks, and follows one
// shape: a setup that creates its users and rooms (recorded as setup
// series), a warm-up, a measured window bounded by a duration and a
// count, and a drain for what is still in flight. When the server answers
// M_UNRECOGNIZED to an endpoint a scenario needs, Run returns a
// *matrix.NotImplementedError naming it.
package scenario

import (
	"context"
	"flag"
	"fmt"
	"golang.org/x/sync/errgroup"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/accounts"
	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/progress"
	"github.com/matrix-gouv/homeserver/cmd/loadtest/internal/stats"
)

// Scenario is one kind of load. The command creates one with New,
// registers its flags, parses them, calls Check, then Run once.
type Scenario interface {
	// Name is the scenario's command-line name.
	Name() string
	// Describe says in one line what the scenario measures.
	Describe() string
	// Flags registers the scenario's flags, with their defaults, on fs.
	Flags(fs *flag.FlagSet)
	// Check validates the parsed flags.
	Check() error
	// Params returns the parameters in effect, for the report.
	Params() map[string]any
	// Run runs the scenario, recording into e.Rec. ctx is cancelled only
	// to abort at once (requests in flight fail); e.Stop asks a graceful
	// early end. It returns nil when the run went to its end or was
	// stopped, and the first failure that made it impossible otherwise.
	Run(ctx context.Context, e *Env) error
}

// constructors builds every scenario, by name.
var constructors = map[string]func() Scenario{
	"chat":         func() Scenario { return &Chat{} },
	"initial-sync": func() Scenario { return &InitialSync{} },
	"join":         func() Scenario { return &Join{} },
	"e2ee":         func() Scenario { return &E2EE{} },
	"media":        func() Scenario { return &Media{} },
	"send":         func() Scenario { return &Send{} },
}

// New returns a fresh scenario called name; ok is false for an unknown
// name.
func New(name string) (s Scenario, ok bool) {
	c, ok := constructors[name]
	if !ok {
		return nil, false
	}
	return c(), true
}

// Names returns the scenario names, sorted.
func Names() []string {
	var names []string
	for n := range constructors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Env is what a scenario runs with. The command fills it; scenarios read
// it and call its methods from any goroutine.
type Env struct {
	// HS is the homeserver's base URL.
	HS string
	// HTTP is the client every simulated user shares.
	HTTP *http.Client
	// Users creates and logs in users.
	Users *accounts.Creator
	// Rec receives every measurement.
	Rec *stats.Recorder
	// Stop is closed when the operator asks to end early (Ctrl-C): the
	// scenario closes its window, stops starting work and returns.
	Stop <-chan struct{}
	// SetupConcurrency bounds setup requests in flight; zero means 8.
	SetupConcurrency int
	// Progress shows the run's progress; nil shows nothing.
	Progress *progress.Line
	// RunID is unique to the run; transaction and message IDs embed it.
	RunID string

	// mu guards notes, ended and the idle span.
	mu    sync.Mutex
	notes []string
	// ended says why the measured window ended.
	ended string
	// idleFrom and idleTo bound the scenario's idle span, if it had one.
	idleFrom, idleTo time.Time
}

// Idle returns the span the scenario held its connections open without
// load (zero times when it had none), for the server's idle memory.
func (e *Env) Idle() (from, to time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.idleFrom, e.idleTo
}

// idle keeps what runs running, without new work, for d (or until the
// operator stops the run), and records the span.
func (e *Env) idle(d time.Duration) {
	if d <= 0 || e.Stopped() {
		return
	}
	e.phase("idle", d)
	from := time.Now()
	t := time.NewTimer(d)
	select {
	case <-t.C:
	case <-e.Stop:
		t.Stop()
	}
	e.mu.Lock()
	e.idleFrom, e.idleTo = from, time.Now()
	e.mu.Unlock()
}

// WindowEnd says why the measured window ended: "duration", "count"
// (the scenario's count was reached, or its work failed), "stopped"
// (the operator), or "" when no window ran.
func (e *Env) WindowEnd() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ended
}

// Note records a remark for the report and prints it.
func (e *Env) Note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	e.mu.Lock()
	e.notes = append(e.notes, msg)
	e.mu.Unlock()
	e.Progress.Printf("note: %s", msg)
}

// Notes returns the remarks recorded so far.
func (e *Env) Notes() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.notes...)
}

// Stopped says whether the operator asked to stop.
func (e *Env) Stopped() bool {
	select {
	case <-e.Stop:
		return true
	default:
		return false
	}
}

// setupContext returns ctx, also cancelled when the operator stops: setup
// work is abandoned at once, since nothing of it is measured.
func (e *Env) setupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-e.Stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func (e *Env) setupConcurrency() int {
	if e.SetupConcurrency > 0 {
		return e.SetupConcurrency
	}
	return 8
}

// phase shows a new phase on the progress line.
func (e *Env) phase(name string, length time.Duration) { e.Progress.Phase(name, length) }

// Reasons a measured window ended.
const (
	endDuration = "duration"
	endCount    = "count"
	endStopped  = "stopped"
	endDone     = "done"
)

// window runs the warm-up, then the measured window: it opens the
// recorder's window when the warm-up ends and closes it after duration,
// when done is closed (the count is reached, or the work failed) or when
// the operator stops. It returns why the window ended; when stopped
// during the warm-up, the window never opens.
func (e *Env) window(warmup, duration time.Duration, done <-chan struct{}) string {
	if warmup > 0 {
		e.phase("warm-up", warmup)
		t := time.NewTimer(warmup)
		select {
		case <-t.C:
		case <-e.Stop:
			t.Stop()
			return endStopped
		case <-done:
			t.Stop()
			return endDone
		}
	}
	e.Rec.BeginWindow(time.Now())
	e.phase("measure", duration)
	t := time.NewTimer(duration)
	defer t.Stop()
	reason := endDuration
	select {
	case <-t.C:
	case <-e.Stop:
		reason = endStopped
	case <-done:
		reason = endCount
	}
	e.Rec.EndWindow(time.Now())
	e.mu.Lock()
	e.ended = reason
	e.mu.Unlock()
	return reason
}

// waitFor polls cond until it holds, limit passes or the operator stops;
// it returns cond's last answer.
func (e *Env) waitFor(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) || e.Stopped() {
			return cond()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// forEach calls fn for 0..n-1, at most concurrency at a time, and returns
// the first error; after one, the calls not yet started are skipped and
// ctx (the one fn gets) is cancelled.
func forEach(ctx context.Context, n, concurrency int, fn func(ctx context.Context, i int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, concurrency))
	for i := range n {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return fn(gctx, i) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// gctx ends with Wait; only the caller's ctx says the loop was cut.
	return ctx.Err()
}

// timing holds the flags every scenario with a steady load shares.
type timing struct {
	warmup, duration time.Duration
}

func (t *timing) flags(fs *flag.FlagSet, warmup, duration time.Duration) {
	fs.DurationVar(&t.warmup, "warmup", warmup, "load before the measured window, not measured")
	fs.DurationVar(&t.duration, "duration", duration, "the measured window's length (the run may end sooner at its count)")
}

func (t *timing) check() error {
	if t.warmup < 0 || t.duration <= 0 {
		return fmt.Errorf("--warmup must be at least 0 and --duration positive")
	}
	return nil
}

func (t *timing) params(p map[string]any) map[string]any {
	p["warmup"], p["duration"] = t.warmup.String(), t.duration.String()
	return p
}

// ender returns the done channel of window and the function that ends
// the window early (its count is reached, or the work failed): it closes
// the recorder's window at once, so that nothing started after the
// count is measured, then the channel. It is safe to call many times.
func (e *Env) ender() (done <-chan struct{}, finish func()) {
	ch := make(chan struct{})
	var o sync.Once
	return ch, func() {
		o.Do(func() {
			e.Rec.EndWindow(time.Now())
			close(ch)
		})
	}
}

// firstError keeps the first error it is given; safe for concurrent use.
type firstError struct {
	mu  sync.Mutex
	err error
}

func (f *firstError) set(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

func (f *firstError) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}
