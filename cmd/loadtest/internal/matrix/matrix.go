// Package matrix holds what the load tool needs around mautrix-go's
// client: one tuned HTTP client for many simulated users, errors reduced
// to a Matrix errcode (or a code of the tool's own for transport
// failures), detection of endpoints a server does not implement, and
// retries on rate limits for the setup phase.
//
// It imports only mautrix and the standard library: the load tool speaks
// the Matrix specification to any homeserver and never imports this
// project's server packages.
package matrix

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"maunium.net/go/mautrix"
)

// Codes of failures that carry no Matrix errcode. A response with a
// non-2xx status and no errcode is reported as "HTTP_<status>".
const (
	// CodeTimeout is a request that timed out.
	CodeTimeout = "TIMEOUT"
	// CodeCanceled is a request cancelled by the tool itself (stop).
	CodeCanceled = "CANCELED"
	// CodeNetwork is a connection refused, reset or otherwise broken.
	CodeNetwork = "NETWORK"
	// CodeBadResponse is a 2xx response the tool could not read.
	CodeBadResponse = "BAD_RESPONSE"
	// CodeUnexpected is a response that parsed but broke the protocol:
	// a missing field, a wrong value.
	CodeUnexpected = "UNEXPECTED"
)

// ErrCode returns the code a failure is counted under: the Matrix
// errcode of the response when it has one, "HTTP_<status>" for an error
// status without one, or one of the Code constants. It returns "" for
// nil.
func ErrCode(err error) string {
	if err == nil {
		return ""
	}
	var herr mautrix.HTTPError
	if errors.As(err, &herr) {
		if herr.RespError != nil && herr.RespError.ErrCode != "" {
			return herr.RespError.ErrCode
		}
		if herr.Response != nil && (herr.Response.StatusCode < 200 || herr.Response.StatusCode >= 300) {
			return "HTTP_" + strconv.Itoa(herr.Response.StatusCode)
		}
		if herr.Response != nil && herr.WrappedError != nil && !isTransport(herr.WrappedError) {
			return CodeBadResponse
		}
	}
	var uerr *UnexpectedError
	switch {
	case errors.As(err, &uerr):
		return CodeUnexpected
	case errors.Is(err, context.Canceled):
		return CodeCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return CodeTimeout
	}
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() {
		return CodeTimeout
	}
	return CodeNetwork
}

// isTransport says whether err comes from the connection rather than
// from reading a complete response.
func isTransport(err error) bool {
	var nerr net.Error
	return errors.As(err, &nerr) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// UnexpectedError is a response that broke the protocol (counted as
// CodeUnexpected).
type UnexpectedError struct {
	// Msg says what was wrong.
	Msg string
}

// Error returns the message.
func (e *UnexpectedError) Error() string { return e.Msg }

// Unexpectedf returns an *UnexpectedError.
func Unexpectedf(format string, args ...any) error {
	return &UnexpectedError{Msg: fmt.Sprintf(format, args...)}
}

// NotImplementedError says that the server answered M_UNRECOGNIZED to an
// endpoint a scenario needs: the scenario cannot run against it.
type NotImplementedError struct {
	// What names the capability, e.g. "room creation".
	What string
	// Method and Path name the request; Status is the answer's status.
	Method, Path string
	Status       int
}

// Error names the capability and the answer.
func (e *NotImplementedError) Error() string {
	return fmt.Sprintf("the server does not implement %s (%s %s answered %d M_UNRECOGNIZED)", e.What, e.Method, e.Path, e.Status)
}

// CheckImplemented returns a *NotImplementedError naming what when err is
// the server's answer that it does not know the endpoint (404 or 405 with
// M_UNRECOGNIZED), and err unchanged otherwise (nil stays nil).
func CheckImplemented(err error, what string) error {
	var herr mautrix.HTTPError
	if err == nil || !errors.As(err, &herr) || herr.RespError == nil || herr.RespError.ErrCode != mautrix.MUnrecognized.ErrCode {
		return err
	}
	status := 0
	if herr.Response != nil {
		status = herr.Response.StatusCode
	}
	if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
		return err
	}
	e := &NotImplementedError{What: what, Status: status}
	if herr.Request != nil {
		e.Method, e.Path = herr.Request.Method, herr.Request.URL.Path
	}
	return e
}

// IsNotImplemented says whether err is or wraps a *NotImplementedError.
func IsNotImplemented(err error) bool {
	var e *NotImplementedError
	return errors.As(err, &e)
}

// NewHTTPClient returns the HTTP client all simulated users share: one
// connection pool sized for hundreds of concurrent long polls to one
// host (Go's default keeps 2 idle connections per host, which would make
// every user open a new connection per request), and timeout as a last
// resort against a server that never answers (0: none).
func NewHTTPClient(timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 0 // no global cap
	tr.MaxIdleConnsPerHost = 4096
	tr.IdleConnTimeout = 90 * time.Second
	return &http.Client{Transport: tr, Timeout: timeout}
}

// NewClient returns a mautrix client of hs, logged in as nobody, on
// httpc. It never retries by itself: the tool counts every failure and
// retries only where it says so.
func NewClient(hs string, httpc *http.Client) (*mautrix.Client, error) {
	c, err := mautrix.NewClient(hs, "", "")
	if err != nil {
		return nil, fmt.Errorf("new client for %s: %w", hs, err)
	}
	c.Client = httpc
	c.DefaultHTTPRetries = 0
	c.IgnoreRateLimit = true
	c.UserAgent = "matrix-gouv-loadtest/1"
	return c, nil
}

// retryAfter returns how long a rate-limited answer asks to wait: its
// retry_after_ms, else its Retry-After header, else fallback. ok is false
// when err is not a rate limit.
func retryAfter(err error, fallback time.Duration) (d time.Duration, ok bool) {
	var herr mautrix.HTTPError
	if !errors.As(err, &herr) || herr.Response == nil || herr.Response.StatusCode != http.StatusTooManyRequests {
		return 0, false
	}
	if herr.RespError != nil {
		if ms, isNum := herr.RespError.ExtraData["retry_after_ms"].(float64); isNum && ms > 0 {
			return time.Duration(ms) * time.Millisecond, true
		}
	}
	if s, perr := strconv.Atoi(herr.Response.Header.Get("Retry-After")); perr == nil && s > 0 {
		return time.Duration(s) * time.Second, true
	}
	return fallback, true
}

// maxRetryWait caps one wait asked by a rate-limited answer.
const maxRetryWait = 30 * time.Second

// RetryLimited calls fn until it does not fail with 429 (rate limited),
// waiting what the server asks between calls, until ctx ends. It is for
// setup requests (registration, room creation), which must succeed
// before any measurement; measured requests are never retried.
func RetryLimited(ctx context.Context, fn func() error) error {
	for {
		err := fn()
		wait, limited := retryAfter(err, time.Second)
		if !limited {
			return err
		}
		wait = min(wait, maxRetryWait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("rate limited, gave up waiting: %w", err)
		case <-t.C:
		}
	}
}
