package federation

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// TestOriginGate: concurrent requests of an origin run, maxQueued more
// wait for a turn, the next is refused with 429; a waiter whose request
// ends gives its place back; another origin has its own share.
func TestOriginGate(t *testing.T) {
	g := newOriginGate(2, 1)
	ctx := context.Background()
	enter := func(origin string) (func(), error) { return g.enter(ctx, origin) }
	r1, err1 := enter("b")
	r2, err2 := enter("b")
	if err1 != nil || err2 != nil {
		t.Fatalf("the first two: %v %v", err1, err2)
	}
	third := make(chan func())
	go func() {
		r, err := enter("b")
		if err != nil {
			t.Errorf("the queued one: %v", err)
		}
		third <- r
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not after 5 s", what)
			}
		}
	}
	pending := func(origin string) int {
		g.mu.Lock()
		defer g.mu.Unlock()
		if s := g.origins[origin]; s != nil {
			return s.pending
		}
		return 0
	}
	waitFor("the third queued", func() bool { return pending("b") == 3 })
	var herr *httputil.Error
	if _, err := enter("b"); !errors.As(err, &herr) || herr.Code != httputil.CodeLimitExceeded {
		t.Errorf("past the queue: %v, want M_LIMIT_EXCEEDED", err)
	}
	rc, err := enter("c")
	if err != nil {
		t.Errorf("another origin: %v", err)
	}
	rc()
	select {
	case <-third:
		t.Fatal("the queued one ran while two were running")
	case <-time.After(20 * time.Millisecond):
	}
	r1()
	r3 := <-third
	// A waiter whose request ends leaves the queue.
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { _, err := g.enter(cctx, "b"); done <- err }()
	waitFor("the fourth queued", func() bool { return pending("b") == 3 })
	cancel()
	if err := <-done; err == nil {
		t.Error("a cancelled waiter got a turn")
	}
	r2()
	r3()
	if n := pending("b"); n != 0 {
		t.Errorf("pending after every release = %d", n)
	}
	if len(g.origins) != 0 {
		t.Errorf("origins kept after their requests: %v", g.origins)
	}
}
