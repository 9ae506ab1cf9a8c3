package federation

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// maxRequestBytes bounds a signed request's body: a full transaction (50
// PDUs of at most 64 KiB and 100 EDUs) fits well within it.
const maxRequestBytes = 8 << 20

// requestKey is the context key of the verified request.
type requestKey struct{}

// RequireSignature is the middleware of every federation endpoint the
// spec authenticates: it refuses requests without a valid X-Matrix
// signature (401 M_UNAUTHORIZED), addressed to another server (401), or
// from a server outside the allow-list (403 M_FORBIDDEN, before any of
// that server's keys are fetched). The handler finds the verified
// request, its origin and JSON body, with verified.
func (c *Component) RequireSignature(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, origin, dest, _, _ := fclient.ParseAuthorization(r.Header.Get("Authorization"))
		switch {
		case scheme != "X-Matrix" || origin == "":
			httputil.WriteError(w, r, httputil.Errorf(httputil.CodeUnauthorized, "missing X-Matrix authorization"))
			return
		case dest != "" && dest != c.serverName:
			httputil.WriteError(w, r, httputil.Errorf(httputil.CodeUnauthorized, "request is for another server"))
			return
		case !c.cfg.ServerAllowed(string(origin)):
			httputil.WriteError(w, r, httputil.Forbidden("federation with %s is not allowed", origin))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxRequestBytes)
		fr, resp := fclient.VerifyHTTPRequest(r, c.now(), c.serverName, nil, c.keyRing)
		if fr == nil {
			// A request that cannot be read (bad header, body not JSON)
			// cannot carry a valid signature either: 401 for all but a
			// failure of ours to check.
			var m struct {
				Message string `json:"message"`
			}
			if js, err := json.Marshal(resp.JSON); err == nil {
				_ = json.Unmarshal(js, &m)
			}
			if resp.Code >= http.StatusInternalServerError {
				httputil.WriteError(w, r, fmt.Errorf("check request signature from %s: %s", origin, m.Message))
				return
			}
			httputil.WriteError(w, r, httputil.Errorf(httputil.CodeUnauthorized, "invalid request signature: %s", m.Message))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestKey{}, fr)))
	})
}

// verified returns the request RequireSignature verified.
func verified(r *http.Request) *fclient.FederationRequest {
	fr, _ := r.Context().Value(requestKey{}).(*fclient.FederationRequest)
	return fr
}

// originOf returns the verified origin of a signed request.
func originOf(r *http.Request) spec.ServerName {
	if fr := verified(r); fr != nil {
		return fr.Origin()
	}
	return ""
}

// decodeContent decodes the verified request's JSON body into v.
func decodeContent(r *http.Request, v any) error {
	fr := verified(r)
	if fr == nil || len(fr.Content()) == 0 {
		return httputil.BadJSON("request body required")
	}
	if err := json.Unmarshal(fr.Content(), v); err != nil {
		return httputil.BadJSON("request body: %v", err)
	}
	return nil
}
