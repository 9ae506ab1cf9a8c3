package mediaapi

import (
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"

	"github.com/go-chi/chi/v5"

	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/mediaapi/internal/serving"
	mediastore "github.com/matrix-gouv/homeserver/mediaapi/storage"
)

// MountFederation adds the federation media endpoints (spec v1.11) to r:
// GET /_matrix/federation/v1/media/download/{mediaId} and …/thumbnail/{mediaId},
// which serve this server's media to other servers as multipart/mixed.
// They do not check who asks: cmd/ mounts them on the federation
// listener behind the federation component's request signature check
// (X-Matrix) and allow-list, and must not mount them without it.
func (c *Component) MountFederation(r chi.Router) {
	r.Method(http.MethodGet, "/_matrix/federation/v1/media/download/{mediaId}", http.HandlerFunc(c.federationDownload))
	r.Method(http.MethodGet, "/_matrix/federation/v1/media/thumbnail/{mediaId}", http.HandlerFunc(c.federationThumbnail))
}

// federationDownload serves a local media item to another server.
func (c *Component) federationDownload(w http.ResponseWriter, r *http.Request) {
	m, err := c.federationMedia(r)
	if err != nil {
		httputil.WriteError(w, r, err)
		return
	}
	c.writeMultipart(w, r, m.SHA256, m.ContentType, m.UploadName)
}

// federationThumbnail serves a thumbnail of a local media item to another
// server.
func (c *Component) federationThumbnail(w http.ResponseWriter, r *http.Request) {
	width, height, method, animated, err := thumbnailParams(r)
	if err != nil {
		httputil.WriteError(w, r, err)
		return
	}
	m, err := c.federationMedia(r)
	if err != nil {
		httputil.WriteError(w, r, err)
		return
	}
	width, height = c.pickSize(width, height, method)
	t, err := c.thumbnail(r.Context(), m, width, height, method, animated && isGIF(m.ContentType))
	if err != nil {
		httputil.WriteError(w, r, thumbnailError(err))
		return
	}
	c.writeMultipart(w, r, t.SHA256, t.ContentType, "")
}

// federationMedia returns the local, uploaded, not quarantined media item
// the request names, or 404 M_NOT_FOUND.
func (c *Component) federationMedia(r *http.Request) (mediastore.Media, error) {
	m, err := c.store.GetMedia(r.Context(), c.global.ServerName, httputil.PathParam(r, "mediaId"))
	if errors.Is(err, mediastore.ErrNotFound) || err == nil && (m.Pending() || m.Quarantined) {
		return m, httputil.NotFound("media not found")
	}
	return m, err
}

// writeMultipart writes the spec's federation answer: multipart/mixed
// with a JSON metadata part ({}) and the file.
func (c *Component) writeMultipart(w http.ResponseWriter, r *http.Request, sha, contentType, name string) {
	f, err := c.blobs.Open(sha)
	if err != nil {
		httputil.WriteError(w, r, fmt.Errorf("open media file: %w", err))
		return
	}
	defer f.Close()
	mw := multipart.NewWriter(w)
	w.Header().Set("Content-Type", "multipart/mixed; boundary="+mw.Boundary())
	w.WriteHeader(http.StatusOK)
	meta, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/json"}})
	if err == nil {
		_, err = meta.Write([]byte("{}"))
	}
	if err == nil {
		h := http.Header{}
		serving.SetHeaders(h, contentType, name)
		var part io.Writer
		part, err = mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":        {h.Get("Content-Type")},
			"Content-Disposition": {h.Get("Content-Disposition")},
		})
		if err == nil {
			_, err = io.Copy(part, f)
		}
	}
	if err == nil {
		err = mw.Close()
	}
	if err != nil {
		// The status is sent: all that is left is to log.
		httputil.Log(r.Context()).WithError(err).Warn("write federation media")
	}
}
