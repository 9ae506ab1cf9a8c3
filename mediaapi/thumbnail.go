package mediaapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/mediaapi/internal/thumbnail"
	mediastore "github.com/matrix-gouv/homeserver/mediaapi/storage"
)

// maxThumbnailSide caps the width and height a request may ask for;
// larger requests get this size (or the original, when smaller).
const maxThumbnailSide = 4096

// janitorEvery is how often lapsed async uploads are dropped.
const janitorEvery = 10 * time.Minute

// thumbJob asks the thumbnail worker for the configured thumbnails of a
// media item.
type thumbJob struct {
	m mediastore.Media
}

// handleThumbnail serves GET …/thumbnail/{serverName}/{mediaId}: the
// authenticated endpoint (legacy false) or the deprecated unauthenticated
// one, which serves only media from before the freeze. Animated
// thumbnails are not made: animated=true gets a still one, as the spec
// allows.
func (c *Component) handleThumbnail(legacy bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		width, height, method, animated, err := thumbnailParams(r)
		if err != nil {
			httputil.WriteError(w, r, err)
			return
		}
		m, err := c.resolve(r, legacy)
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
		name := "thumbnail." + strings.TrimPrefix(t.ContentType, "image/")
		c.serveFile(w, r, t.SHA256, t.ContentType, name, m.UploadedTS)
	})
}

// thumbnailParams reads width, height, method (scale by default) and
// animated.
func thumbnailParams(r *http.Request) (width, height int, method string, animated bool, err error) {
	q := r.URL.Query()
	dim := func(name string) (int, error) {
		raw := q.Get(name)
		if raw == "" {
			return 0, httputil.MissingParam("%s is required", name)
		}
		v, err := strconv.Atoi(raw)
		if err != nil || v < 1 {
			return 0, httputil.InvalidParam("%s must be a positive integer", name)
		}
		return min(v, maxThumbnailSide), nil
	}
	if width, err = dim("width"); err != nil {
		return
	}
	if height, err = dim("height"); err != nil {
		return
	}
	switch method = q.Get("method"); method {
	case "":
		method = thumbnail.Scale
	case thumbnail.Scale, thumbnail.Crop:
	default:
		return 0, 0, "", false, httputil.InvalidParam(`method must be "crop" or "scale"`)
	}
	switch q.Get("animated") {
	case "", "false":
	case "true":
		animated = true
	default:
		return 0, 0, "", false, httputil.InvalidParam("animated must be true or false")
	}
	return width, height, method, animated, nil
}

// isGIF reports whether contentType is a GIF's, the one animated format
// thumbnailed as such; other media asked for animated=true get the still
// thumbnail (and share its cache entry).
func isGIF(contentType string) bool {
	t, _, _ := mime.ParseMediaType(contentType)
	return strings.EqualFold(t, "image/gif")
}

// pickSize returns the size to make for a request: the smallest
// configured size of the method at least as large as asked (and of the
// same aspect ratio, for a crop), so that the
// thumbnails made on upload serve most requests; the size asked when none
// is large enough (made then, and kept).
func (c *Component) pickSize(width, height int, method string) (int, int) {
	bestW, bestH := 0, 0
	for _, s := range c.cfg.ThumbnailSizes {
		if s.Method != method || s.Width < width || s.Height < height {
			continue
		}
		if method == thumbnail.Crop && s.Width*height != s.Height*width {
			// A crop is in the requested aspect ratio.
			continue
		}
		if bestW == 0 || s.Width*s.Height < bestW*bestH {
			bestW, bestH = s.Width, s.Height
		}
	}
	if bestW == 0 {
		return width, height
	}
	return bestW, bestH
}

// thumbnailError turns thumbnailing errors into Matrix errors.
func thumbnailError(err error) error {
	switch {
	case errors.Is(err, thumbnail.ErrTooManyPixels):
		return httputil.Errorf(httputil.CodeTooLarge, "the image is too large to thumbnail")
	case errors.Is(err, thumbnail.ErrNotImage):
		return httputil.Errorf(httputil.CodeUnknown, "this media cannot be thumbnailed").WithStatus(http.StatusBadRequest)
	}
	return err
}

// thumbnail returns the thumbnail of m for a size, method and animation,
// made now (once, however many requests ask together) and kept when it
// was not made before.
func (c *Component) thumbnail(ctx context.Context, m mediastore.Media, width, height int, method string, animated bool) (mediastore.Thumbnail, error) {
	t, err := c.store.GetThumbnail(ctx, m.Origin, m.MediaID, width, height, method, animated)
	if !errors.Is(err, mediastore.ErrNotFound) {
		return t, err
	}
	key := fmt.Sprintf("thumb %s/%s %dx%d %s %v", m.Origin, m.MediaID, width, height, method, animated)
	v, err, _ := c.flight.Do(key, func() (any, error) {
		return c.makeThumbnail(context.WithoutCancel(ctx), m, width, height, method, animated)
	})
	if err != nil {
		return mediastore.Thumbnail{}, err
	}
	return v.(mediastore.Thumbnail), nil
}

// makeThumbnail makes, stores and records a thumbnail of m.
func (c *Component) makeThumbnail(ctx context.Context, m mediastore.Media, width, height int, method string, animated bool) (mediastore.Thumbnail, error) {
	f, err := c.blobs.Open(m.SHA256)
	if err != nil {
		return mediastore.Thumbnail{}, fmt.Errorf("open media for thumbnail: %w", err)
	}
	makeFn := thumbnail.Make
	if animated {
		makeFn = thumbnail.MakeAnimated
	}
	res, err := makeFn(f, width, height, method, c.cfg.MaxImagePixels)
	f.Close()
	if err != nil {
		return mediastore.Thumbnail{}, err
	}
	t := mediastore.Thumbnail{ReqWidth: width, ReqHeight: height, Method: method, Animated: animated,
		Width: res.Width, Height: res.Height, ContentType: res.ContentType}
	if res.Original {
		t.SHA256, t.Size = m.SHA256, m.Size
	} else {
		sha, size, err := c.blobs.Put(bytes.NewReader(res.Data), int64(len(res.Data)))
		if err != nil {
			return t, err
		}
		t.SHA256, t.Size = sha, size
	}
	if err := c.recordThumbnail(ctx, m, t); err != nil {
		return t, err
	}
	return t, nil
}

// recordThumbnail records t under its file's hash lock, so that the file
// just put cannot be removed as unused before its row exists.
func (c *Component) recordThumbnail(ctx context.Context, m mediastore.Media, t mediastore.Thumbnail) error {
	l := c.hashLock(t.SHA256)
	l.Lock()
	defer l.Unlock()
	if !c.blobs.Has(t.SHA256) {
		return fmt.Errorf("record thumbnail: its file was removed")
	}
	return c.store.PutThumbnail(ctx, m.Origin, m.MediaID, t)
}

// queueThumbnails asks the worker for m's configured thumbnails; when the
// queue is full they are made on first request instead.
func (c *Component) queueThumbnails(origin, id, sha string) {
	select {
	case c.jobs <- thumbJob{m: mediastore.Media{Origin: origin, MediaID: id, SHA256: sha}}:
	default:
		c.log.WithField(fieldMediaID, id).Debug("thumbnail queue full; thumbnails will be made on request")
	}
}

// thumbnailWorker makes the configured thumbnails of new images until ctx
// ends.
func (c *Component) thumbnailWorker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-c.jobs:
			c.pregenerate(ctx, j.m)
		}
	}
}

// pregenerate makes m's configured thumbnails when it is an image that
// can be thumbnailed.
func (c *Component) pregenerate(ctx context.Context, m mediastore.Media) {
	f, err := c.blobs.Open(m.SHA256)
	if err != nil {
		return
	}
	_, err = thumbnail.Probe(f, c.cfg.MaxImagePixels)
	f.Close()
	if err != nil {
		return // not an image, or too large: nothing to make
	}
	full, err := c.store.GetMedia(ctx, m.Origin, m.MediaID)
	if err != nil {
		return
	}
	for _, s := range c.cfg.ThumbnailSizes {
		if ctx.Err() != nil {
			return
		}
		if _, err := c.thumbnail(ctx, full, s.Width, s.Height, s.Method, false); err != nil {
			c.log.WithError(err).WithFields(logrus.Fields{fieldMediaID: m.MediaID}).Warn("make thumbnail")
			return
		}
	}
}

// janitor drops lapsed async uploads until ctx ends.
func (c *Component) janitor(ctx context.Context) {
	t := time.NewTicker(janitorEvery)
	defer t.Stop()
	for {
		lapsed, err := c.store.ExpiredPending(ctx, time.Now().UnixMilli(), 500)
		if err != nil && ctx.Err() == nil {
			c.log.WithError(err).Warn("list lapsed uploads")
		}
		for _, m := range lapsed {
			if _, err := c.store.DeleteMedia(ctx, m.Origin, m.MediaID); err != nil && !errors.Is(err, mediastore.ErrNotFound) {
				c.log.WithError(err).Warn("drop lapsed upload")
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
