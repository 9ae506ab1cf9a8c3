// Package uia implements user-interactive authentication (client-server
// API, "User-interactive authentication API"): the 401 challenge listing
// flows, sessions that remember completed stages across requests (kept in
// the database so that any client API process can continue them), and the
// stages the server offers.
package uia

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// Stage types the server offers.
const (
	StagePassword          = "m.login.password"
	StageDummy             = "m.login.dummy"
	StageRegistrationToken = "m.login.registration_token"
)

// ResultRegistrationToken is the Results key holding the token that a
// completed m.login.registration_token stage accepted.
const ResultRegistrationToken = "registration_token"

// AuthDict is the "auth" object of a request.
type AuthDict struct {
	Type    string `json:"type"`
	Session string `json:"session"`
	// m.login.password
	Identifier *Identifier `json:"identifier"`
	User       string      `json:"user"` // deprecated form of identifier
	Password   string      `json:"password"`
	// m.login.registration_token
	Token string `json:"token"`
}

// Identifier is a user identifier (only m.id.user is supported).
type Identifier struct {
	Type string `json:"type"`
	User string `json:"user"`
}

// Stage checks one stage's credentials for the operation's user (empty
// during registration). It returns the results to remember, or an error:
// a *httputil.Error is shown to the client beside the flows.
type Stage func(ctx context.Context, auth AuthDict, userID string) (results map[string]string, err error)

// Server runs UIA with a fixed set of stage implementations.
type Server struct {
	store  *storage.Store
	stages map[string]Stage
}

// New returns a UIA server offering stages.
func New(store *storage.Store, stages map[string]Stage) *Server {
	return &Server{store: store, stages: stages}
}

// Request is one attempt at an operation protected by UIA.
type Request struct {
	// Auth is the raw "auth" field of the body; nil or null when absent.
	Auth json.RawMessage
	// Flows are the acceptable stage sequences.
	Flows [][]string
	// UserID is who must authenticate; empty for registration.
	UserID string
	// Operation names what is being authorised (method and path), so a
	// session cannot be reused for another operation.
	Operation string
}

// Verify returns the completed session when the request's auth completes
// a flow (the session is then deleted: it cannot be replayed). Otherwise it
// returns the 401 challenge as an error.
func (s *Server) Verify(ctx context.Context, req Request) (storage.UIASession, error) {
	var auth AuthDict
	if len(req.Auth) > 0 && string(req.Auth) != "null" {
		if err := json.Unmarshal(req.Auth, &auth); err != nil {
			return storage.UIASession{}, httputil.BadJSON("auth must be an object")
		}
	}
	var sess storage.UIASession
	if auth.Session != "" {
		var err error
		sess, err = s.store.UIASession(ctx, auth.Session)
		if errors.Is(err, storage.ErrNotFound) {
			return storage.UIASession{}, httputil.Errorf(httputil.CodeUnknown, "unknown UIA session").WithStatus(http.StatusBadRequest)
		}
		if err != nil {
			return storage.UIASession{}, err
		}
		if sess.Operation != req.Operation || sess.UserID != req.UserID {
			return storage.UIASession{}, httputil.Forbidden("the UIA session was started for another operation")
		}
	} else {
		sess = storage.UIASession{ID: newSessionID(), UserID: req.UserID, Operation: req.Operation, Results: map[string]string{}}
		if err := s.store.CreateUIASession(ctx, sess); err != nil {
			return storage.UIASession{}, err
		}
	}
	if auth.Type == "" {
		return storage.UIASession{}, s.challenge(req, sess, nil)
	}
	stage, ok := s.stages[auth.Type]
	if !ok || !offered(req.Flows, auth.Type) {
		return storage.UIASession{}, s.challenge(req, sess, httputil.Errorf(httputil.CodeUnrecognized, "stage %q is not offered", auth.Type).WithStatus(http.StatusBadRequest))
	}
	results, err := stage(ctx, auth, req.UserID)
	if err != nil {
		var merr *httputil.Error
		if errors.As(err, &merr) {
			return storage.UIASession{}, s.challenge(req, sess, merr)
		}
		return storage.UIASession{}, err
	}
	if !slices.Contains(sess.Completed, auth.Type) {
		sess.Completed = append(sess.Completed, auth.Type)
	}
	for k, v := range results {
		sess.Results[k] = v
	}
	if complete(req.Flows, sess.Completed) {
		if err := s.store.DeleteUIASession(ctx, sess.ID); err != nil {
			return storage.UIASession{}, err
		}
		return sess, nil
	}
	if err := s.store.UpdateUIASession(ctx, sess); err != nil {
		return storage.UIASession{}, err
	}
	return storage.UIASession{}, s.challenge(req, sess, nil)
}

// challenge is the 401 answer: flows, params, session and completed
// stages, with the failed stage's errcode when there was one.
func (s *Server) challenge(req Request, sess storage.UIASession, failure *httputil.Error) error {
	flows := make([]map[string][]string, len(req.Flows))
	for i, f := range req.Flows {
		flows[i] = map[string][]string{"stages": f}
	}
	completed := sess.Completed
	if completed == nil {
		completed = []string{}
	}
	e := &httputil.Error{Status: http.StatusUnauthorized}
	if failure != nil {
		e.Code, e.Message = failure.Code, failure.Message
		if failure.Status == http.StatusBadRequest {
			e.Status = http.StatusBadRequest
		}
	}
	return e.With("flows", flows).With("params", map[string]any{}).With("session", sess.ID).With("completed", completed)
}

func offered(flows [][]string, stage string) bool {
	for _, f := range flows {
		if slices.Contains(f, stage) {
			return true
		}
	}
	return false
}

func complete(flows [][]string, done []string) bool {
	for _, f := range flows {
		all := true
		for _, st := range f {
			if !slices.Contains(done, st) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

func newSessionID() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Operation names a request for Request.Operation.
func Operation(r *http.Request) string { return fmt.Sprintf("%s %s", r.Method, r.URL.Path) }
