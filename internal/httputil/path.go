package httputil

import (
	"net/http"
	"net/url"

	"github.com/go-chi/chi/v5"
)

// PathParam returns a path parameter of a chi route, percent-decoded.
// chi routes on the escaped path when the request had escapes that matter
// (a "/" in a state key arrives as %2F), and then hands back parameters
// still escaped.
func PathParam(r *http.Request, name string) string {
	v := chi.URLParam(r, name)
	if r.URL.RawPath == "" {
		return v
	}
	if u, err := url.PathUnescape(v); err == nil {
		return u
	}
	return v
}
