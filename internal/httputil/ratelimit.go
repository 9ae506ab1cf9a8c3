package httputil

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter is a set of token buckets, one per key (a user id, an address),
// sharing one rate. Idle buckets are forgotten. The zero rate allows all.
type Limiter struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex // guards buckets and lastGC
	buckets map[string]*rate.Limiter
	lastGC  time.Time
}

// NewLimiter makes a limiter of perSecond with burst; perSecond 0 disables.
func NewLimiter(perSecond float64, burst int) *Limiter {
	return &Limiter{limit: rate.Limit(perSecond), burst: burst, buckets: map[string]*rate.Limiter{}}
}

// Allow takes a token from key's bucket; when none is left it returns a
// 429 M_LIMIT_EXCEEDED error saying when to retry.
func (l *Limiter) Allow(key string) error {
	if l == nil || l.limit == 0 {
		return nil
	}
	now := time.Now()
	l.mu.Lock()
	if now.Sub(l.lastGC) > time.Minute {
		l.gcLocked(now)
	}
	b, ok := l.buckets[key]
	if !ok {
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[key] = b
	}
	l.mu.Unlock()
	res := b.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return LimitExceeded(d)
	}
	return nil
}

// gcLocked drops buckets that have filled up again: they hold no history.
func (l *Limiter) gcLocked(now time.Time) {
	for k, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, k)
		}
	}
	l.lastGC = now
}

// LimitExceeded is 429 M_LIMIT_EXCEEDED with both the Retry-After header
// (spec v1.10) and the older retry_after_ms field.
func LimitExceeded(after time.Duration) *Error {
	e := Errorf(CodeLimitExceeded, "too many requests").With("retry_after_ms", after.Milliseconds())
	e.Header = http.Header{"Retry-After": []string{strconv.Itoa(int(math.Ceil(after.Seconds())))}}
	return e
}

// Blocked reports, without taking a token, whether key's bucket is empty:
// for limits that count failures (failed logins) but must refuse every
// attempt while exhausted.
func (l *Limiter) Blocked(key string) error {
	if l == nil || l.limit == 0 {
		return nil
	}
	now := time.Now()
	l.mu.Lock()
	b, ok := l.buckets[key]
	l.mu.Unlock()
	if !ok {
		return nil
	}
	if tokens := b.TokensAt(now); tokens < 1 {
		return LimitExceeded(time.Duration((1 - tokens) / float64(l.limit) * float64(time.Second)))
	}
	return nil
}
