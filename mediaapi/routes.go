package mediaapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// route is one line of the route table.
type route struct {
	method string
	path   string
	// auth admits only requests with a valid access token.
	auth    bool
	handler http.Handler
}

// routes is the media API's route table.
func (c *Component) routes() []route {
	h := httputil.Handle
	return []route{
		{http.MethodGet, "/_matrix/client/v1/media/config", true, h(c.getConfig)},
		// Deprecated by the authenticated media of spec v1.11; still used
		// by older clients.
		{http.MethodGet, "/_matrix/media/v3/config", true, h(c.getConfig)},
	}
}

// requireAuth is middleware that admits only requests with a valid access
// token and tags the request's logger with the device. (Uploads will also
// need the device itself in the context.)
func (c *Component) requireAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, err := httputil.AccessToken(r)
		if err != nil {
			httputil.WriteError(w, r, err)
			return
		}
		dev, err := c.tokens.QueryAccessToken(r.Context(), token)
		if err != nil {
			httputil.WriteError(w, r, tokenError(err))
			return
		}
		ctx := httputil.WithLog(r.Context(), httputil.Log(r.Context()).WithField(httputil.FieldUserID, dev.UserID).WithField(httputil.FieldDeviceID, dev.DeviceID))
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// tokenError turns a TokenQuerier error into the client's Matrix error:
// 401 M_UNKNOWN_TOKEN, with soft_logout saying whether the device survives.
// Other errors (the homeserver unreachable) stay internal: 500.
func tokenError(err error) error {
	switch {
	case errors.Is(err, api.ErrSoftLogout):
		return httputil.UnknownToken(true)
	case errors.Is(err, api.ErrUnknownToken):
		return httputil.UnknownToken(false)
	}
	return fmt.Errorf("query access token: %w", err)
}
