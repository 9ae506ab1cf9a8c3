package httputil

import (
	"net/http"
	"strings"
)

// AccessToken returns the request's access token: the Authorization
// Bearer header, or the deprecated access_token query parameter. A request
// with neither gets 401 M_MISSING_TOKEN.
func AccessToken(r *http.Request) (string, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		if tok, ok := strings.CutPrefix(h, "Bearer "); ok && tok != "" {
			return tok, nil
		}
		return "", Errorf(CodeMissingToken, "Authorization header must be Bearer <token>")
	}
	if tok := r.URL.Query().Get("access_token"); tok != "" {
		return tok, nil
	}
	return "", Errorf(CodeMissingToken, "missing access token")
}
