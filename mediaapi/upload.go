package mediaapi

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/mediaapi/internal/antivirus"
	"github.com/matrix-gouv/homeserver/mediaapi/internal/blob"
	mediastore "github.com/matrix-gouv/homeserver/mediaapi/storage"
)

// Log field names of this component.
const (
	fieldMediaID = "media_id"
	fieldOrigin  = "origin"
	fieldSHA256  = "sha256"
	fieldSize    = "size"
	fieldRoomID  = "room_id"
)

// uploadResponse is the body of POST /upload.
type uploadResponse struct {
	ContentURI string `json:"content_uri"`
}

// createResponse is the body of POST /_matrix/media/v1/create.
type createResponse struct {
	ContentURI      string `json:"content_uri"`
	UnusedExpiresAt int64  `json:"unused_expires_at"`
}

// upload is POST /_matrix/media/v3/upload: the body is the file, streamed
// to disk and stored under its hash.
func (c *Component) upload(r *http.Request) (any, error) {
	id, err := newMediaID()
	if err != nil {
		return nil, err
	}
	m := mediastore.Media{
		Origin: c.global.ServerName, MediaID: id, UserID: device(r).UserID,
		ContentType: uploadType(r), UploadName: r.URL.Query().Get("filename"),
	}
	err = c.receive(r, &m, func(ctx context.Context, m mediastore.Media, quota int64) error {
		return c.store.InsertMedia(ctx, m, quota)
	})
	if err != nil {
		return nil, err
	}
	return uploadResponse{ContentURI: mxc(m.Origin, m.MediaID)}, nil
}

// create is POST /_matrix/media/v1/create: a media id reserved for an
// upload to come (PUT /upload/{serverName}/{mediaId}).
func (c *Component) create(r *http.Request) (any, error) {
	id, err := newMediaID()
	if err != nil {
		return nil, err
	}
	expires := time.Now().Add(c.cfg.PendingUploadLifetime.Std()).UnixMilli()
	err = c.store.CreatePending(r.Context(), c.global.ServerName, id, device(r).UserID, expires, c.cfg.MaxPendingUploads)
	if errors.Is(err, mediastore.ErrTooManyPending) {
		return nil, httputil.Errorf(httputil.CodeLimitExceeded, "too many media created and not yet uploaded")
	}
	if err != nil {
		return nil, err
	}
	return createResponse{ContentURI: mxc(c.global.ServerName, id), UnusedExpiresAt: expires}, nil
}

// uploadAsync is PUT /_matrix/media/v3/upload/{serverName}/{mediaId}: the
// content of a media id reserved by create, by the user who reserved it,
// once.
func (c *Component) uploadAsync(r *http.Request) (any, error) {
	origin, id := httputil.PathParam(r, "serverName"), httputil.PathParam(r, "mediaId")
	if origin != c.global.ServerName {
		return nil, httputil.NotFound("media %s is not of this server", mxc(origin, id))
	}
	m, err := c.store.GetMedia(r.Context(), origin, id)
	if errors.Is(err, mediastore.ErrNotFound) {
		return nil, httputil.NotFound("unknown media id")
	}
	if err != nil {
		return nil, err
	}
	switch {
	case m.UserID != device(r).UserID:
		return nil, httputil.Forbidden("this media id was created by another user")
	case !m.Pending():
		return nil, httputil.Errorf(httputil.CodeCannotOverwriteMedia, "media already uploaded")
	case m.ExpiresTS < time.Now().UnixMilli():
		return nil, httputil.NotFound("this media id expired unused")
	}
	m.ContentType, m.UploadName = uploadType(r), r.URL.Query().Get("filename")
	err = c.receive(r, &m, func(ctx context.Context, m mediastore.Media, quota int64) error {
		return c.store.CompletePending(ctx, m, quota)
	})
	if errors.Is(err, mediastore.ErrAlreadyUploaded) {
		return nil, httputil.Errorf(httputil.CodeCannotOverwriteMedia, "media already uploaded")
	}
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// receive streams the request body to the file store within the size
// limit and the user's quota, has it scanned, and records it with record
// (given the quota to enforce, -1 for none) while holding the content's
// hash lock. It fills m's hash and size. An infected file is recorded
// quarantined and refused.
func (c *Component) receive(r *http.Request, m *mediastore.Media, record func(context.Context, mediastore.Media, int64) error) error {
	ctx := r.Context()
	limit, quota := c.cfg.MaxUploadBytes, c.cfg.UserQuotaBytes
	if r.ContentLength > limit {
		return tooLarge(limit)
	}
	byQuota := false
	if quota >= 0 {
		used, err := c.store.UserUsage(ctx, m.UserID)
		if err != nil {
			return err
		}
		if remaining := quota - used; remaining < limit {
			limit, byQuota = max(remaining, 0), true
		}
		if r.ContentLength > limit {
			return quotaExceeded(quota)
		}
	}
	p, err := c.blobs.Write(r.Body, limit)
	if errors.Is(err, blob.ErrTooLarge) {
		if byQuota {
			return quotaExceeded(quota)
		}
		return tooLarge(limit)
	}
	if err != nil {
		return fmt.Errorf("receive upload: %w", err)
	}
	defer p.Discard()
	m.SHA256, m.Size = p.SHA256, p.Size
	log := httputil.Log(ctx).WithFields(logrus.Fields{fieldMediaID: m.MediaID, fieldSHA256: m.SHA256, fieldSize: m.Size})
	infected, err := c.scan(ctx, p)
	if err != nil {
		return err
	}
	if infected != nil {
		m.Quarantined = true
		quota = -1
	}
	if err := c.commit(ctx, p, *m, quota, record); err != nil {
		if errors.Is(err, mediastore.ErrQuotaExceeded) {
			return quotaExceeded(quota)
		}
		return err
	}
	if infected != nil {
		log.WithError(infected).Warn("infected upload refused and quarantined")
		return httputil.Forbidden("the file was refused by the antivirus")
	}
	log.Info("media uploaded")
	c.queueThumbnails(m.Origin, m.MediaID, m.SHA256)
	return nil
}

// commit puts p in the file store and records it with record, under the
// content's hash lock; when record fails, a file no row points at is
// removed.
func (c *Component) commit(ctx context.Context, p *blob.Pending, m mediastore.Media, quota int64, record func(context.Context, mediastore.Media, int64) error) error {
	l := c.hashLock(m.SHA256)
	l.Lock()
	defer l.Unlock()
	if err := p.Commit(); err != nil {
		return err
	}
	err := record(ctx, m, quota)
	if err == nil {
		return nil
	}
	if used, uerr := c.store.HashUsed(ctx, m.SHA256); uerr == nil && !used {
		_ = c.blobs.Remove(m.SHA256)
	}
	return err
}

// scan has the antivirus look at p. It returns the infection (an error
// wrapping antivirus.ErrInfected) when there is one, and an error when the
// scan could not be made: the upload is refused then too.
func (c *Component) scan(ctx context.Context, p *blob.Pending) (infected, err error) {
	if c.scanner == nil {
		return nil, nil
	}
	f, err := p.Open()
	if err != nil {
		return nil, fmt.Errorf("open upload for scan: %w", err)
	}
	defer f.Close()
	err = c.scanner.Scan(ctx, f)
	if errors.Is(err, antivirus.ErrInfected) {
		return err, nil
	}
	if err != nil {
		return nil, fmt.Errorf("scan upload: %w", err)
	}
	return nil, nil
}

// tooLarge is 413 M_TOO_LARGE.
func tooLarge(limit int64) error {
	return httputil.Errorf(httputil.CodeTooLarge, "file larger than the server's limit of %d bytes", limit)
}

// quotaExceeded is the error of an upload past the user's quota: 400
// M_RESOURCE_LIMIT_EXCEEDED, as Synapse answers for its media upload
// limits.
func quotaExceeded(quota int64) error {
	return httputil.Errorf(httputil.CodeResourceLimit, "media quota of %d bytes exceeded", quota).WithStatus(http.StatusBadRequest)
}

// uploadType is the uploaded file's type: the Content-Type header, or
// application/octet-stream.
func uploadType(r *http.Request) string {
	if t := r.Header.Get("Content-Type"); t != "" {
		return t
	}
	return "application/octet-stream"
}

// mxc returns the content URI of a media item.
func mxc(origin, mediaID string) string { return "mxc://" + origin + "/" + mediaID }

// mediaIDAlphabet is the alphabet of media ids: URL- and file-safe.
const mediaIDAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// newMediaID returns 24 random characters (143 bits).
func newMediaID() (string, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("new media id: %w", err)
	}
	for i := range b {
		// 256 % 62 bias is harmless for an identifier.
		b[i] = mediaIDAlphabet[int(b[i])%len(mediaIDAlphabet)]
	}
	return string(b[:]), nil
}
