package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/matrix-org/gomatrix"

	hsapi "github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// Profiles across servers: /query/profile answered for local users, and
// asked of other servers for the client API's /profile.

// QueryProfile implements hsapi.RemoteProfiles.
func (c *Component) QueryProfile(ctx context.Context, userID, field string) (map[string]json.RawMessage, error) {
	server := serverOf(userID)
	if server == "" || !c.cfg.ServerAllowed(server) {
		return nil, hsapi.ErrNotFound
	}
	q := url.Values{"user_id": {userID}}
	if field != "" {
		q.Set("field", field)
	}
	var res map[string]json.RawMessage
	err := c.request(ctx, "GET", server, "/_matrix/federation/v1/query/profile?"+q.Encode(), nil, &res)
	var herr gomatrix.HTTPError
	if errors.As(err, &herr) && herr.Code == http.StatusNotFound {
		return nil, hsapi.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("query the profile of %s: %w", userID, err)
	}
	return res, nil
}

// QueryProfileHandler answers GET /_matrix/federation/v1/query/profile.
func (c *Component) QueryProfileHandler(r *http.Request) (any, error) {
	q := r.URL.Query()
	userID, field := q.Get("user_id"), q.Get("field")
	if userID == "" {
		return nil, httputil.MissingParam("user_id is required")
	}
	fields, err := c.profiles.LocalProfile(r.Context(), userID, field)
	if errors.Is(err, hsapi.ErrNotLocal) {
		return nil, httputil.InvalidParam("%s is not a user of this server", userID)
	}
	if errors.Is(err, hsapi.ErrNotFound) {
		return nil, httputil.NotFound("profile not found")
	}
	return fields, err
}
