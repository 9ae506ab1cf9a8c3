// Package httputil is the HTTP plumbing every API surface shares: Matrix
// errors and the one function that writes them, JSON request decoding with
// size limits, the handler adapter, CORS, request ids and access logs, panic
// recovery and rate limiting.
//
// Handlers return (response, error); they never write error JSON themselves.
package httputil

import (
	"errors"
	"fmt"
	"net/http"
)

// Code is a Matrix error code (errcode).
type Code string

// The error codes the server uses, each with its usual HTTP status in
// statusOf. Add a code here, never as a string in place.
const (
	CodeForbidden        Code = "M_FORBIDDEN"
	CodeUnknownToken     Code = "M_UNKNOWN_TOKEN"
	CodeMissingToken     Code = "M_MISSING_TOKEN"
	CodeBadJSON          Code = "M_BAD_JSON"
	CodeNotJSON          Code = "M_NOT_JSON"
	CodeNotFound         Code = "M_NOT_FOUND"
	CodeLimitExceeded    Code = "M_LIMIT_EXCEEDED"
	CodeUnrecognized     Code = "M_UNRECOGNIZED"
	CodeUnknown          Code = "M_UNKNOWN"
	CodeUnauthorized     Code = "M_UNAUTHORIZED"
	CodeUserDeactivated  Code = "M_USER_DEACTIVATED"
	CodeUserInUse        Code = "M_USER_IN_USE"
	CodeInvalidUsername  Code = "M_INVALID_USERNAME"
	CodeRoomInUse        Code = "M_ROOM_IN_USE"
	CodeInvalidRoomState Code = "M_INVALID_ROOM_STATE"
	CodeUnsupportedRoom  Code = "M_UNSUPPORTED_ROOM_VERSION"
	CodeIncompatibleRoom Code = "M_INCOMPATIBLE_ROOM_VERSION"
	CodeBadState         Code = "M_BAD_STATE"
	CodeGuestForbidden   Code = "M_GUEST_ACCESS_FORBIDDEN"
	CodeMissingParam     Code = "M_MISSING_PARAM"
	CodeInvalidParam     Code = "M_INVALID_PARAM"
	CodeTooLarge         Code = "M_TOO_LARGE"
	CodeExclusive        Code = "M_EXCLUSIVE"
	CodeWeakPassword     Code = "M_WEAK_PASSWORD"
	CodeThreepidNotFound Code = "M_THREEPID_NOT_FOUND"
	CodeUserLocked       Code = "M_USER_LOCKED"
	CodeUnknownPos       Code = "M_UNKNOWN_POS"
	CodeBadAlias         Code = "M_BAD_ALIAS"
	CodeUnableToGrant    Code = "M_UNABLE_TO_GRANT_JOIN"
	// E2EE (homeserver/internal/keys).
	CodeInvalidSignature Code = "M_INVALID_SIGNATURE"
	CodeWrongKeysVersion Code = "M_WRONG_ROOM_KEYS_VERSION"
	// Media repository.
	CodeCannotOverwriteMedia Code = "M_CANNOT_OVERWRITE_MEDIA"
	CodeNotYetUploaded       Code = "M_NOT_YET_UPLOADED"
	CodeResourceLimit        Code = "M_RESOURCE_LIMIT_EXCEEDED"
	// Profiles (spec v1.16).
	CodeProfileTooLarge Code = "M_PROFILE_TOO_LARGE"
	CodeKeyTooLarge     Code = "M_KEY_TOO_LARGE"
	// Delayed events (MSC4140).
	CodeMaxDelayExceeded Code = "M_MAX_DELAY_EXCEEDED"
	// Application service ping (POST /appservice/{id}/ping).
	CodeURLNotSet         Code = "M_URL_NOT_SET"
	CodeBadStatus         Code = "M_BAD_STATUS"
	CodeConnectionTimeout Code = "M_CONNECTION_TIMEOUT"
	CodeConnectionFailed  Code = "M_CONNECTION_FAILED"
)

// statusOf is each code's HTTP status when the caller gives none.
var statusOf = map[Code]int{
	CodeForbidden:        http.StatusForbidden,
	CodeUnknownToken:     http.StatusUnauthorized,
	CodeMissingToken:     http.StatusUnauthorized,
	CodeBadJSON:          http.StatusBadRequest,
	CodeNotJSON:          http.StatusBadRequest,
	CodeNotFound:         http.StatusNotFound,
	CodeLimitExceeded:    http.StatusTooManyRequests,
	CodeUnrecognized:     http.StatusNotFound,
	CodeUnknown:          http.StatusInternalServerError,
	CodeUnauthorized:     http.StatusUnauthorized,
	CodeUserDeactivated:  http.StatusForbidden,
	CodeUserInUse:        http.StatusBadRequest,
	CodeInvalidUsername:  http.StatusBadRequest,
	CodeRoomInUse:        http.StatusBadRequest,
	CodeInvalidRoomState: http.StatusBadRequest,
	CodeUnsupportedRoom:  http.StatusBadRequest,
	CodeIncompatibleRoom: http.StatusBadRequest,
	CodeBadState:         http.StatusBadRequest,
	CodeGuestForbidden:   http.StatusForbidden,
	CodeMissingParam:     http.StatusBadRequest,
	CodeInvalidParam:     http.StatusBadRequest,
	CodeTooLarge:         http.StatusRequestEntityTooLarge,
	CodeExclusive:        http.StatusBadRequest,
	CodeWeakPassword:     http.StatusBadRequest,
	CodeThreepidNotFound: http.StatusBadRequest,
	CodeUserLocked:       http.StatusUnauthorized,
	CodeUnknownPos:       http.StatusBadRequest,
	CodeBadAlias:         http.StatusBadRequest,
	CodeUnableToGrant:    http.StatusBadRequest,
	CodeInvalidSignature: http.StatusBadRequest,
	CodeWrongKeysVersion: http.StatusForbidden,
	// Media repository.
	CodeCannotOverwriteMedia: http.StatusConflict,
	CodeNotYetUploaded:       http.StatusGatewayTimeout,
	CodeResourceLimit:        http.StatusForbidden,
	CodeProfileTooLarge:      http.StatusBadRequest,
	CodeKeyTooLarge:          http.StatusBadRequest,
	CodeMaxDelayExceeded:     http.StatusBadRequest,
}

// Error is a Matrix error: an HTTP status and a JSON body with errcode and
// error, plus any extra fields (soft_logout, retry_after_ms, UIA flows).
// A zero Code writes no errcode, as a first UIA challenge does.
type Error struct {
	Status  int
	Code    Code
	Message string
	// Extra fields merged into the body.
	Extra map[string]any
	// Header is added to the response (Retry-After).
	Header http.Header
}

// Error implements error.
func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf makes an error of the code's usual status.
func Errorf(code Code, format string, args ...any) *Error {
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusBadRequest
	}
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// WithStatus returns e with another HTTP status.
func (e *Error) WithStatus(status int) *Error { e.Status = status; return e }

// With returns e with an extra body field.
func (e *Error) With(key string, value any) *Error {
	if e.Extra == nil {
		e.Extra = map[string]any{}
	}
	e.Extra[key] = value
	return e
}

// Body returns the JSON body of e.
func (e *Error) Body() map[string]any {
	body := make(map[string]any, len(e.Extra)+2)
	for k, v := range e.Extra {
		body[k] = v
	}
	if e.Code != "" {
		body["errcode"] = e.Code
		body["error"] = e.Message
	}
	return body
}

// Shorthands for the commonest errors.

// Forbidden is 403 M_FORBIDDEN.
func Forbidden(format string, args ...any) *Error { return Errorf(CodeForbidden, format, args...) }

// NotFound is 404 M_NOT_FOUND.
func NotFound(format string, args ...any) *Error { return Errorf(CodeNotFound, format, args...) }

// BadJSON is 400 M_BAD_JSON.
func BadJSON(format string, args ...any) *Error { return Errorf(CodeBadJSON, format, args...) }

// InvalidParam is 400 M_INVALID_PARAM.
func InvalidParam(format string, args ...any) *Error {
	return Errorf(CodeInvalidParam, format, args...)
}

// MissingParam is 400 M_MISSING_PARAM.
func MissingParam(format string, args ...any) *Error {
	return Errorf(CodeMissingParam, format, args...)
}

// AsError turns any error into a Matrix error: a wrapped *Error as is,
// anything else as 500 M_UNKNOWN with a message that reveals nothing.
// internal reports whether err was not a Matrix error (and so needs logging).
func AsError(err error) (e *Error, internal bool) {
	if errors.As(err, &e) {
		return e, false
	}
	return Errorf(CodeUnknown, "internal server error"), true
}
