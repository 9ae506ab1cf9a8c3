package mediaapi

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io/fs"
	"net/http"
	"strconv"
	"time"

	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/mediaapi/internal/serving"
	mediastore "github.com/matrix-gouv/homeserver/mediaapi/storage"
)

// Waiting for an async upload's content (timeout_ms).
const (
	defaultWait = 20 * time.Second
	maxWait     = 2 * time.Minute
	// pollEvery is how often a download waiting for its content looks
	// again: the upload may arrive at another process of the split
	// deployment, so the database is the one place to look.
	pollEvery = 200 * time.Millisecond
)

// handleDownload serves GET …/download/{serverName}/{mediaId}[/{fileName}]:
// the authenticated endpoint (legacy false) or the deprecated
// unauthenticated one, which serves only media from before the freeze.
func (c *Component) handleDownload(legacy bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, err := c.resolve(r, legacy)
		if err != nil {
			httputil.WriteError(w, r, err)
			return
		}
		name := m.UploadName
		if fn := httputil.PathParam(r, "fileName"); fn != "" {
			name = fn
		}
		c.serveFile(w, r, m.SHA256, m.ContentType, name, m.UploadedTS)
	})
}

// resolve finds the media item a download or thumbnail request names:
// local (waiting for an async upload's content up to timeout_ms) or
// remote (fetched and cached). Unknown, quarantined and, on the legacy
// endpoints, frozen media are 404 M_NOT_FOUND.
func (c *Component) resolve(r *http.Request, legacy bool) (mediastore.Media, error) {
	ctx := r.Context()
	origin, id := httputil.PathParam(r, "serverName"), httputil.PathParam(r, "mediaId")
	wait, err := waitParam(r)
	if err != nil {
		return mediastore.Media{}, err
	}
	var m mediastore.Media
	if origin == c.global.ServerName {
		m, err = c.awaitMedia(ctx, origin, id, wait)
	} else {
		m, err = c.remoteMedia(ctx, origin, id, legacy && r.URL.Query().Get("allow_remote") == "false")
	}
	if err != nil {
		return mediastore.Media{}, err
	}
	if m.Quarantined {
		return mediastore.Media{}, httputil.NotFound("media not found")
	}
	if legacy && !c.servedUnauthenticated(m) {
		return mediastore.Media{}, httputil.NotFound("media not found (this media is served by /_matrix/client/v1/media only)")
	}
	return m, nil
}

// servedUnauthenticated reports whether the legacy endpoints serve m: only
// media that arrived before media.legacy_freeze.
func (c *Component) servedUnauthenticated(m mediastore.Media) bool {
	freeze, err := c.cfg.Freeze()
	if err != nil || freeze.IsZero() {
		return false
	}
	return m.UploadedTS < freeze.UnixMilli()
}

// waitParam reads timeout_ms: how long to wait for an async upload.
func waitParam(r *http.Request) (time.Duration, error) {
	raw := r.URL.Query().Get("timeout_ms")
	if raw == "" {
		return defaultWait, nil
	}
	ms, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || ms < 0 {
		return 0, httputil.InvalidParam("timeout_ms must be a non-negative integer")
	}
	return min(time.Duration(ms)*time.Millisecond, maxWait), nil
}

// awaitMedia returns a local media item, waiting up to wait for the
// content of an async upload: 504 M_NOT_YET_UPLOADED when it does not come.
func (c *Component) awaitMedia(ctx context.Context, origin, id string, wait time.Duration) (mediastore.Media, error) {
	deadline := time.Now().Add(wait)
	for {
		m, err := c.store.GetMedia(ctx, origin, id)
		if errors.Is(err, mediastore.ErrNotFound) {
			return m, httputil.NotFound("media not found")
		}
		if err != nil || !m.Pending() {
			return m, err
		}
		if m.ExpiresTS < time.Now().UnixMilli() {
			return m, httputil.NotFound("media not found")
		}
		if !time.Now().Before(deadline) {
			return m, httputil.Errorf(httputil.CodeNotYetUploaded, "the media's content has not been uploaded yet")
		}
		t := time.NewTimer(min(pollEvery, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return m, ctx.Err()
		case <-t.C:
		}
	}
}

// serveFile writes the file of content sha with the safe-serving headers,
// answering Range and conditional requests (http.ServeContent).
func (c *Component) serveFile(w http.ResponseWriter, r *http.Request, sha, contentType, name string, modifiedMS int64) {
	f, err := c.blobs.Open(sha)
	if errors.Is(err, fs.ErrNotExist) {
		httputil.Log(r.Context()).WithField(fieldSHA256, sha).Error("media file missing from the store")
		httputil.WriteError(w, r, httputil.NotFound("media not found"))
		return
	}
	if err != nil {
		httputil.WriteError(w, r, err)
		return
	}
	defer f.Close()
	h := w.Header()
	serving.SetHeaders(h, contentType, name)
	// The content of a media id never changes: its hash is a strong ETag.
	h.Set("ETag", `"`+sha+`"`)
	if raw, err := hex.DecodeString(sha); err == nil {
		// RFC 9530: the whole file's checksum, also on a range.
		h.Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(raw)+":")
	}
	h.Set("Cache-Control", "private, max-age=86400")
	http.ServeContent(w, r, "", time.UnixMilli(modifiedMS), f)
}
