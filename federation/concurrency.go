package federation

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// originGate bounds the signed requests of each other server handled at
// once (federation.origin_concurrency): concurrent run, up to maxQueued
// more wait for a turn, and the rest are refused at once with 429, so
// that one peer cannot hold every handler of the listener (the rate
// limit alone lets a burst of slow requests pile up).
type originGate struct {
	concurrent, maxQueued int

	mu sync.Mutex // guards origins
	// origins holds the origins with requests running or waiting.
	origins map[string]*originSlots
}

// originSlots is one origin's share of the gate.
type originSlots struct {
	// sem holds a token per running request.
	sem chan struct{}
	// pending counts running and waiting requests (guarded by the
	// gate's mu).
	pending int
}

func newOriginGate(concurrent, maxQueued int) *originGate {
	return &originGate{concurrent: max(concurrent, 1), maxQueued: max(maxQueued, 0), origins: map[string]*originSlots{}}
}

// gateRetryAfter is the delay a refused request is told to wait.
const gateRetryAfter = time.Second

// enter waits for a turn of origin and returns its release; it refuses
// with 429 M_LIMIT_EXCEEDED when the origin already has concurrent
// requests running and maxQueued waiting, and gives up when ctx ends.
func (g *originGate) enter(ctx context.Context, origin string) (func(), error) {
	g.mu.Lock()
	s, ok := g.origins[origin]
	if !ok {
		s = &originSlots{sem: make(chan struct{}, g.concurrent)}
		g.origins[origin] = s
	}
	if s.pending >= g.concurrent+g.maxQueued {
		g.mu.Unlock()
		return nil, httputil.LimitExceeded(gateRetryAfter)
	}
	s.pending++
	g.mu.Unlock()
	leave := func() {
		g.mu.Lock()
		if s.pending--; s.pending == 0 {
			delete(g.origins, origin)
		}
		g.mu.Unlock()
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		leave()
		return nil, httputil.Errorf(httputil.CodeUnknown, "request cancelled while waiting for its turn").WithStatus(http.StatusServiceUnavailable)
	}
	return func() {
		<-s.sem
		leave()
	}, nil
}
