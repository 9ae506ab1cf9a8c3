package httputil

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/sirupsen/logrus"
)

// Log field names shared by every component.
const (
	FieldRequestID = "request_id"
	FieldMethod    = "method"
	FieldPath      = "path"
	FieldStatus    = "status"
	FieldDuration  = "duration_ms"
	FieldUserID    = "user_id"
	FieldDeviceID  = "device_id"
	FieldRoomID    = "room_id"
	FieldEventID   = "event_id"
	FieldComponent = "component"
)

type logKey struct{}

// Log returns the request's logger, tagged with its request id; a logger
// that discards when the context has none.
func Log(ctx context.Context) *logrus.Entry {
	if l, ok := ctx.Value(logKey{}).(*logrus.Entry); ok {
		return l
	}
	l := logrus.New()
	l.SetOutput(discard{})
	return logrus.NewEntry(l)
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// WithLog returns ctx carrying the logger l.
func WithLog(ctx context.Context, l *logrus.Entry) context.Context {
	return context.WithValue(ctx, logKey{}, l)
}

// statusRecorder remembers the status a handler wrote, for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer (flushes).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Observe gives each request an id and a logger, logs it when done (method,
// path, status, duration; never query strings, which may hold tokens), and
// turns a panic into 500 M_UNKNOWN instead of a dropped connection.
func Observe(log *logrus.Entry) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			var b [8]byte
			_, _ = rand.Read(b[:])
			reqLog := log.WithField(FieldRequestID, hex.EncodeToString(b[:]))
			r = r.WithContext(WithLog(r.Context(), reqLog))
			rec := &statusRecorder{ResponseWriter: w}
			defer func() {
				if p := recover(); p != nil {
					if p == http.ErrAbortHandler {
						panic(p)
					}
					reqLog.WithField("panic", fmt.Sprint(p)).WithField("stack", string(debug.Stack())).Error("handler panicked")
					if rec.status == 0 {
						WriteError(rec, r, Errorf(CodeUnknown, "internal server error"))
					}
				}
				reqLog.WithFields(logrus.Fields{
					FieldMethod: r.Method, FieldPath: r.URL.Path, FieldStatus: rec.status,
					FieldDuration: time.Since(start).Milliseconds(),
				}).Debug("request")
			}()
			next.ServeHTTP(rec, r)
		})
	}
}

// CORS adds the headers browser clients (Element Web) need, and answers
// preflight OPTIONS requests itself.
func CORS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Authorization, Date")
		h.Set("Access-Control-Expose-Headers", "Content-Disposition, Retry-After")
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusOK)
			return
		}
		next.ServeHTTP(w, r)
	})
}
