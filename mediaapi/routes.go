package mediaapi

import (
	"context"
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
		{http.MethodGet, "/_matrix/client/v1/media/download/{serverName}/{mediaId}", true, c.handleDownload(false)},
		{http.MethodGet, "/_matrix/client/v1/media/download/{serverName}/{mediaId}/{fileName}", true, c.handleDownload(false)},
		{http.MethodGet, "/_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}", true, c.handleThumbnail(false)},
		{http.MethodGet, "/_matrix/client/v1/media/preview_url", true, h(c.previewURL)},

		{http.MethodPost, "/_matrix/media/v3/upload", true, h(c.upload)},
		{http.MethodPost, "/_matrix/media/r0/upload", true, h(c.upload)},
		{http.MethodPost, "/_matrix/media/v1/create", true, h(c.create)},
		{http.MethodPut, "/_matrix/media/v3/upload/{serverName}/{mediaId}", true, h(c.uploadAsync)},

		// Deprecated by the authenticated media of spec v1.11; still used
		// by older clients. Downloads and thumbnails serve only media from
		// before media.legacy_freeze.
		{http.MethodGet, "/_matrix/media/v3/config", true, h(c.getConfig)},
		{http.MethodGet, "/_matrix/media/v3/preview_url", true, h(c.previewURL)},
		{http.MethodGet, "/_matrix/media/v3/download/{serverName}/{mediaId}", false, c.handleDownload(true)},
		{http.MethodGet, "/_matrix/media/v3/download/{serverName}/{mediaId}/{fileName}", false, c.handleDownload(true)},
		{http.MethodGet, "/_matrix/media/v3/thumbnail/{serverName}/{mediaId}", false, c.handleThumbnail(true)},
		{http.MethodGet, "/_matrix/media/r0/download/{serverName}/{mediaId}", false, c.handleDownload(true)},
		{http.MethodGet, "/_matrix/media/r0/download/{serverName}/{mediaId}/{fileName}", false, c.handleDownload(true)},
		{http.MethodGet, "/_matrix/media/r0/thumbnail/{serverName}/{mediaId}", false, c.handleThumbnail(true)},

		// Admin API (Synapse's paths), for server admins only.
		{http.MethodGet, "/_synapse/admin/v1/media/{serverName}/{mediaId}", true, h(c.adminMediaInfo)},
		{http.MethodDelete, "/_synapse/admin/v1/media/{serverName}/{mediaId}", true, h(c.adminDeleteMedia)},
		{http.MethodPost, "/_synapse/admin/v1/media/quarantine/{serverName}/{mediaId}", true, h(c.adminQuarantine(true))},
		{http.MethodPost, "/_synapse/admin/v1/media/unquarantine/{serverName}/{mediaId}", true, h(c.adminQuarantine(false))},
		{http.MethodPost, "/_synapse/admin/v1/user/{userId}/media/quarantine", true, h(c.adminQuarantineUser)},
		{http.MethodPost, "/_synapse/admin/v1/room/{roomId}/media/quarantine", true, h(c.adminQuarantineRoom)},
		{http.MethodGet, "/_synapse/admin/v1/users/{userId}/media", true, h(c.adminUserMedia)},
		{http.MethodPost, "/_synapse/admin/v1/purge_media_cache", true, h(c.adminPurgeRemote)},
		// Not Synapse's: media by checksum.
		{http.MethodGet, "/_synapse/admin/v1/media_by_sha256/{sha256}", true, h(c.adminMediaByHash)},
	}
}

// deviceKey is the context key of the authenticated device.
type deviceKey struct{}

// device returns the device requireAuth admitted.
func device(r *http.Request) api.Device {
	d, _ := r.Context().Value(deviceKey{}).(api.Device)
	return d
}

// requireAuth is middleware that admits only requests with a valid access
// token, puts the device in the request's context (see device) and tags
// the request's logger with it.
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
		ctx := context.WithValue(r.Context(), deviceKey{}, dev)
		ctx = httputil.WithLog(ctx, httputil.Log(ctx).WithField(httputil.FieldUserID, dev.UserID).WithField(httputil.FieldDeviceID, dev.DeviceID))
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
