package httputil

import (
	"net/http"
	"strings"
)

// AccessToken returns the access token of r: from the "Authorization:
// Bearer" header, or else from the access_token query parameter (deprecated
// since spec v1.11, still sent by older clients). The error is a 401
// M_MISSING_TOKEN Matrix error when there is none, or when the request is
// ambiguous: both a header and a parameter, several of either, or an
// Authorization header of another scheme.
func AccessToken(r *http.Request) (string, error) {
	headers := r.Header.Values("Authorization")
	params, inQuery := r.URL.Query()["access_token"]
	switch {
	case len(headers) > 0 && inQuery:
		return "", Errorf(CodeMissingToken, "access token given both in the Authorization header and the access_token parameter")
	case len(headers) > 1:
		return "", Errorf(CodeMissingToken, "too many Authorization headers")
	case len(headers) == 1:
		// The scheme is case-insensitive (RFC 9110, section 11.1).
		scheme, token, ok := strings.Cut(strings.TrimSpace(headers[0]), " ")
		token = strings.TrimSpace(token)
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
			return "", Errorf(CodeMissingToken, "invalid Authorization header: want Bearer and an access token")
		}
		return token, nil
	case len(params) > 1:
		return "", Errorf(CodeMissingToken, "too many access_token parameters")
	case len(params) == 1 && params[0] != "":
		return params[0], nil
	}
	return "", Errorf(CodeMissingToken, "missing access token")
}

// UnknownToken is 401 M_UNKNOWN_TOKEN. softLogout says the token merely
// expired: the client may refresh it, or log in again to the same device
// and keep its encryption keys.
func UnknownToken(softLogout bool) *Error {
	msg := "unknown access token"
	if softLogout {
		msg = "access token has expired"
	}
	return Errorf(CodeUnknownToken, "%s", msg).With("soft_logout", softLogout)
}
