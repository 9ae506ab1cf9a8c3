package mediaapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/internal/httputil"
	mediastore "github.com/matrix-gouv/homeserver/mediaapi/storage"
)

// adminMedia is a media item as the admin API shows it; SHA256 is the
// checksum users compare with their copy.
type adminMedia struct {
	MediaID       string `json:"media_id"`
	Origin        string `json:"origin"`
	MediaType     string `json:"media_type"`
	MediaLength   int64  `json:"media_length"`
	UploadName    string `json:"upload_name,omitempty"`
	UserID        string `json:"user_id,omitempty"`
	CreatedTS     int64  `json:"created_ts"`
	UploadedTS    int64  `json:"uploaded_ts,omitempty"`
	LastAccessTS  int64  `json:"last_access_ts"`
	Quarantined   bool   `json:"quarantined"`
	SHA256        string `json:"sha256"`
	PendingUpload bool   `json:"pending_upload,omitempty"`
	ContentURI    string `json:"content_uri"`
}

func toAdmin(m mediastore.Media) adminMedia {
	return adminMedia{
		MediaID: m.MediaID, Origin: m.Origin, MediaType: m.ContentType, MediaLength: m.Size, UploadName: m.UploadName,
		UserID: m.UserID, CreatedTS: m.CreatedTS, UploadedTS: m.UploadedTS, LastAccessTS: m.LastAccessTS,
		Quarantined: m.Quarantined, SHA256: m.SHA256, PendingUpload: m.Pending(), ContentURI: mxc(m.Origin, m.MediaID),
	}
}

// requireAdmin fails with 403 M_FORBIDDEN unless the requester is a
// server admin.
func requireAdmin(r *http.Request) error {
	if !device(r).IsAdmin {
		return httputil.Forbidden("you are not a server admin")
	}
	return nil
}

// adminLog returns the request's logger tagged with the media item.
func adminLog(r *http.Request, origin, id string) *logrus.Entry {
	return httputil.Log(r.Context()).WithFields(logrus.Fields{fieldOrigin: origin, fieldMediaID: id})
}

// adminMediaInfo is GET /_synapse/admin/v1/media/{serverName}/{mediaId}.
func (c *Component) adminMediaInfo(r *http.Request) (any, error) {
	if err := requireAdmin(r); err != nil {
		return nil, err
	}
	m, err := c.store.GetMedia(r.Context(), httputil.PathParam(r, "serverName"), httputil.PathParam(r, "mediaId"))
	if errors.Is(err, mediastore.ErrNotFound) {
		return nil, httputil.NotFound("media not found")
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{"media_info": toAdmin(m)}, nil
}

// adminMediaByHash is GET /_synapse/admin/v1/media_by_sha256/{sha256}
// (this server's own path): every media item, local or cached remote,
// whose content has that SHA-256, e.g. every copy of a leaked document.
func (c *Component) adminMediaByHash(r *http.Request) (any, error) {
	if err := requireAdmin(r); err != nil {
		return nil, err
	}
	sha := strings.ToLower(httputil.PathParam(r, "sha256"))
	if len(sha) != 64 || strings.Trim(sha, "0123456789abcdef") != "" {
		return nil, httputil.InvalidParam("sha256 must be 64 hexadecimal digits")
	}
	list, err := c.store.MediaByHash(r.Context(), sha)
	if err != nil {
		return nil, err
	}
	out := make([]adminMedia, 0, len(list))
	for _, m := range list {
		out = append(out, toAdmin(m))
	}
	return map[string]any{"media": out, "total": len(out)}, nil
}

// adminDeleteMedia is DELETE /_synapse/admin/v1/media/{serverName}/{mediaId}:
// the row, its thumbnails, and every file nothing else points at.
func (c *Component) adminDeleteMedia(r *http.Request) (any, error) {
	if err := requireAdmin(r); err != nil {
		return nil, err
	}
	origin, id := httputil.PathParam(r, "serverName"), httputil.PathParam(r, "mediaId")
	if err := c.deleteMedia(r.Context(), origin, id); err != nil {
		if errors.Is(err, mediastore.ErrNotFound) {
			return nil, httputil.NotFound("media not found")
		}
		return nil, err
	}
	adminLog(r, origin, id).Info("media deleted by an admin")
	return map[string]any{"deleted_media": []string{id}, "total": 1}, nil
}

// deleteMedia deletes a media item and the files only it used.
func (c *Component) deleteMedia(ctx context.Context, origin, id string) error {
	orphans, err := c.store.DeleteMedia(ctx, origin, id)
	if err != nil {
		return err
	}
	for _, sha := range orphans {
		if err := c.removeIfOrphan(ctx, sha); err != nil {
			return err
		}
	}
	return nil
}

// adminQuarantine is POST /_synapse/admin/v1/media/[un]quarantine/{serverName}/{mediaId}.
func (c *Component) adminQuarantine(quarantine bool) httputil.HandlerFunc {
	return func(r *http.Request) (any, error) {
		if err := requireAdmin(r); err != nil {
			return nil, err
		}
		origin, id := httputil.PathParam(r, "serverName"), httputil.PathParam(r, "mediaId")
		err := c.store.SetQuarantined(r.Context(), origin, id, quarantine)
		if errors.Is(err, mediastore.ErrNotFound) {
			return nil, httputil.NotFound("media not found")
		}
		if err != nil {
			return nil, err
		}
		adminLog(r, origin, id).WithField("quarantined", quarantine).Info("media quarantine changed by an admin")
		return struct{}{}, nil
	}
}

// adminQuarantineUser is POST /_synapse/admin/v1/user/{userId}/media/quarantine.
func (c *Component) adminQuarantineUser(r *http.Request) (any, error) {
	if err := requireAdmin(r); err != nil {
		return nil, err
	}
	userID := httputil.PathParam(r, "userId")
	n, err := c.store.QuarantineUser(r.Context(), userID)
	if err != nil {
		return nil, err
	}
	httputil.Log(r.Context()).WithField("target_user_id", userID).WithField("count", n).Info("user media quarantined by an admin")
	return map[string]any{"num_quarantined": n}, nil
}

// adminUserMedia is GET /_synapse/admin/v1/users/{userId}/media?from=&limit=.
func (c *Component) adminUserMedia(r *http.Request) (any, error) {
	if err := requireAdmin(r); err != nil {
		return nil, err
	}
	from, err := intParam(r, "from", 0)
	if err != nil {
		return nil, err
	}
	limit, err := intParam(r, "limit", 100)
	if err != nil {
		return nil, err
	}
	list, total, err := c.store.UserMedia(r.Context(), httputil.PathParam(r, "userId"), from, min(limit, 1000))
	if err != nil {
		return nil, err
	}
	out := make([]adminMedia, 0, len(list))
	for _, m := range list {
		out = append(out, toAdmin(m))
	}
	body := map[string]any{"media": out, "total": total}
	if from+len(list) < total {
		body["next_token"] = from + len(list)
	}
	return body, nil
}

// adminPurgeRemote is POST /_synapse/admin/v1/purge_media_cache?before_ts=:
// cached remote media last served before before_ts (ms) are dropped.
func (c *Component) adminPurgeRemote(r *http.Request) (any, error) {
	if err := requireAdmin(r); err != nil {
		return nil, err
	}
	raw := r.URL.Query().Get("before_ts")
	if raw == "" {
		return nil, httputil.MissingParam("before_ts is required")
	}
	before, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || before < 0 {
		return nil, httputil.InvalidParam("before_ts must be a timestamp in milliseconds")
	}
	deleted := 0
	for {
		batch, err := c.store.RemoteMediaBefore(r.Context(), c.global.ServerName, before, 500)
		if err != nil {
			return nil, err
		}
		for _, m := range batch {
			if err := c.deleteMedia(r.Context(), m.Origin, m.MediaID); err != nil && !errors.Is(err, mediastore.ErrNotFound) {
				return nil, err
			}
			deleted++
		}
		if len(batch) < 500 {
			break
		}
	}
	httputil.Log(r.Context()).WithField("count", deleted).Info("remote media cache purged by an admin")
	return map[string]any{"deleted": deleted}, nil
}

// intParam reads a non-negative integer query parameter, def when absent.
func intParam(r *http.Request, name string, def int) (int, error) {
	raw := r.URL.Query().Get(name)
	if raw == "" {
		return def, nil
	}
	v, err := strconv.Atoi(raw)
	if err != nil || v < 0 {
		return 0, httputil.InvalidParam("%s must be a non-negative integer", name)
	}
	return v, nil
}
