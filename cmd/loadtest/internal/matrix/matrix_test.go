package matrix

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix"
)

// answer returns a server answering every request with status and body.
func answer(t *testing.T, status int, body string, header ...string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// get sends GET /_matrix/client/v3/x to srv through a tool client.
func get(t *testing.T, url string) error {
	t.Helper()
	c, err := NewClient(url, NewHTTPClient(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	_, err = c.MakeFullRequest(context.Background(), mautrix.FullRequest{Method: http.MethodGet, URL: c.BuildClientURL("v3", "x"), ResponseJSON: &out})
	return err
}

func TestErrCode(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		err  func() error
		want string
	}{
		{"nil", func() error { return nil }, ""},
		{"matrix errcode", func() error { return get(t, answer(t, 403, `{"errcode":"M_FORBIDDEN","error":"no"}`).URL) }, "M_FORBIDDEN"},
		{"rate limit", func() error { return get(t, answer(t, 429, `{"errcode":"M_LIMIT_EXCEEDED"}`).URL) }, "M_LIMIT_EXCEEDED"},
		{"status without errcode", func() error { return get(t, answer(t, 502, `<html>bad gateway</html>`).URL) }, "HTTP_502"},
		{"bad 200 body", func() error { return get(t, answer(t, 200, `{not json`).URL) }, CodeBadResponse},
		{"connection refused", func() error { return get(t, closed.URL) }, CodeNetwork},
		{"unexpected", func() error { return fmt.Errorf("check: %w", Unexpectedf("missing %s", "x")) }, CodeUnexpected},
		{"canceled", func() error { return canceled.Err() }, CodeCanceled},
		{"deadline", func() error { return context.DeadlineExceeded }, CodeTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.err()
			if got := ErrCode(err); got != tt.want {
				t.Errorf("ErrCode(%v) = %q, want %q", err, got, tt.want)
			}
		})
	}
}

func TestCheckImplemented(t *testing.T) {
	err := CheckImplemented(get(t, answer(t, 404, `{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}`).URL), "things")
	var ni *NotImplementedError
	if !errors.As(err, &ni) || !IsNotImplemented(fmt.Errorf("wrapped: %w", err)) {
		t.Fatalf("404 M_UNRECOGNIZED: %v", err)
	}
	if want := "the server does not implement things (GET /_matrix/client/v3/x answered 404 M_UNRECOGNIZED)"; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	if err := CheckImplemented(get(t, answer(t, 405, `{"errcode":"M_UNRECOGNIZED"}`).URL), "things"); !IsNotImplemented(err) {
		t.Errorf("405 M_UNRECOGNIZED: %v", err)
	}
	for _, srv := range []*httptest.Server{
		answer(t, 404, `{"errcode":"M_NOT_FOUND"}`),    // a room that does not exist
		answer(t, 400, `{"errcode":"M_UNRECOGNIZED"}`), // a bad parameter value
		answer(t, 404, `not json`),
	} {
		if err := CheckImplemented(get(t, srv.URL), "things"); err == nil || IsNotImplemented(err) {
			t.Errorf("%v counted as not implemented", err)
		}
	}
	if CheckImplemented(nil, "x") != nil {
		t.Error("nil became an error")
	}
}

func TestRetryLimited(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			w.WriteHeader(429)
			fmt.Fprint(w, `{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":50}`)
			return
		}
		fmt.Fprint(w, `{}`)
	}))
	defer srv.Close()
	start := time.Now()
	if err := RetryLimited(context.Background(), func() error { return get(t, srv.URL) }); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 || time.Since(start) < 100*time.Millisecond {
		t.Errorf("%d calls in %v", calls.Load(), time.Since(start))
	}
	// Other failures are not retried.
	calls.Store(0)
	bad := answer(t, 403, `{"errcode":"M_FORBIDDEN"}`)
	n := 0
	if err := RetryLimited(context.Background(), func() error { n++; return get(t, bad.URL) }); ErrCode(err) != "M_FORBIDDEN" || n != 1 {
		t.Errorf("403: %v after %d calls", err, n)
	}
	// The Retry-After header serves when the body says nothing, and the
	// context bounds the waiting.
	limited := answer(t, 429, `{"errcode":"M_LIMIT_EXCEEDED"}`, "Retry-After", "30")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if d, ok := retryAfter(get(t, limited.URL), time.Second); !ok || d != 30*time.Second {
		t.Errorf("Retry-After: %v, %v", d, ok)
	}
	if err := RetryLimited(ctx, func() error { return get(t, limited.URL) }); ErrCode(err) != "M_LIMIT_EXCEEDED" {
		t.Errorf("gave up with %v", err)
	}
}
