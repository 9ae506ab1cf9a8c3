package httputil

import (
	"context"
	"errors"
	"net/http"

	"github.com/sirupsen/logrus"
)

// Response is a handler result with a status other than 200 or headers.
type Response struct {
	Status int
	Body   any
	Header http.Header
}

// HandlerFunc is how API handlers are written: return the JSON body (or a
// Response) and an error; Handle writes either.
type HandlerFunc func(r *http.Request) (any, error)

// Handle adapts a HandlerFunc to net/http. Errors that are not Matrix
// errors are logged with the request's logger and answered 500 M_UNKNOWN.
func Handle(h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res, err := h(r)
		if err != nil {
			WriteError(w, r, err)
			return
		}
		if resp, ok := res.(Response); ok {
			for k, vs := range resp.Header {
				w.Header()[k] = vs
			}
			status := resp.Status
			if status == 0 {
				status = http.StatusOK
			}
			WriteJSON(w, status, resp.Body)
			return
		}
		WriteJSON(w, http.StatusOK, res)
	})
}

// WriteError writes err as a Matrix error; the one place error JSON is made.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	e, internal := AsError(err)
	switch {
	case internal && clientGone(r, err):
		// A client that closes its connection (a long-polling /sync it
		// gives up on, a closed tab) is not a server failure.
		Log(r.Context()).WithFields(logrus.Fields{
			FieldMethod: r.Method, FieldPath: r.URL.Path,
		}).Debug("client went away")
	case internal:
		Log(r.Context()).WithError(err).WithFields(logrus.Fields{
			FieldMethod: r.Method, FieldPath: r.URL.Path,
		}).Error("request failed")
	}
	for k, vs := range e.Header {
		w.Header()[k] = vs
	}
	WriteJSON(w, e.Status, e.Body())
}

// clientGone reports whether err comes from the request being canceled
// because its client went away.
func clientGone(r *http.Request, err error) bool {
	return errors.Is(err, context.Canceled) && errors.Is(r.Context().Err(), context.Canceled)
}

// NotFoundHandler answers unknown endpoints with 404 M_UNRECOGNIZED.
func NotFoundHandler(w http.ResponseWriter, r *http.Request) {
	WriteError(w, r, Errorf(CodeUnrecognized, "unrecognized request"))
}

// MethodNotAllowedHandler answers a known path with the wrong method with
// 405 M_UNRECOGNIZED, as the spec asks.
func MethodNotAllowedHandler(w http.ResponseWriter, r *http.Request) {
	WriteError(w, r, Errorf(CodeUnrecognized, "method not allowed").WithStatus(http.StatusMethodNotAllowed))
}
