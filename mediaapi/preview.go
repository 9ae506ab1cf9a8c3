package mediaapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/mediaapi/internal/preview"
	"github.com/matrix-gouv/homeserver/mediaapi/internal/thumbnail"
	mediastore "github.com/matrix-gouv/homeserver/mediaapi/storage"
)

// Limits of URL previews.
const (
	// previewPageBytes is how much of a page is read for its head.
	previewPageBytes = 1 << 20
	// previewImageBytes caps an image kept for a preview.
	previewImageBytes = 10 << 20
	// previewTTL is how long a preview is reused.
	previewTTL = time.Hour
	// previewCacheSize bounds the previews kept in memory.
	previewCacheSize = 1000
)

// previewCache keeps recent previews, per process.
type previewCache struct {
	// mu guards entries.
	mu      sync.Mutex
	entries map[string]previewEntry
}

type previewEntry struct {
	body    map[string]any
	expires time.Time
}

func (pc *previewCache) get(url string) (map[string]any, bool) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	e, ok := pc.entries[url]
	if !ok || time.Now().After(e.expires) {
		return nil, false
	}
	return e.body, true
}

func (pc *previewCache) put(url string, body map[string]any) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.entries == nil {
		pc.entries = map[string]previewEntry{}
	}
	now := time.Now()
	if len(pc.entries) >= previewCacheSize {
		for k, e := range pc.entries {
			if now.After(e.expires) {
				delete(pc.entries, k)
			}
		}
		for k := range pc.entries {
			if len(pc.entries) < previewCacheSize {
				break
			}
			delete(pc.entries, k)
		}
	}
	pc.entries[url] = previewEntry{body: body, expires: now.Add(previewTTL)}
}

// previewURL is GET /_matrix/client/v1/media/preview_url?url=: the
// OpenGraph summary of a page (or an image), its image kept as media.
// It answers 404 M_UNRECOGNIZED unless media.url_previews is on.
func (c *Component) previewURL(r *http.Request) (any, error) {
	if c.previews == nil {
		return nil, httputil.Errorf(httputil.CodeUnrecognized, "URL previews are disabled on this server")
	}
	raw := r.URL.Query().Get("url")
	if raw == "" {
		return nil, httputil.MissingParam("url is required")
	}
	if body, ok := c.previewCache.get(raw); ok {
		return body, nil
	}
	v, err, _ := c.flight.Do("preview "+raw, func() (any, error) {
		return c.makePreview(context.WithoutCancel(r.Context()), raw)
	})
	if err != nil {
		switch {
		case errors.Is(err, preview.ErrBadURL):
			return nil, httputil.InvalidParam("url must be an http or https URL")
		case errors.Is(err, preview.ErrBlocked):
			return nil, httputil.Forbidden("this address may not be previewed")
		}
		var merr *httputil.Error
		if errors.As(err, &merr) {
			return nil, err
		}
		httputil.Log(r.Context()).WithError(err).Info("URL preview failed")
		return nil, httputil.Errorf(httputil.CodeUnknown, "could not fetch the page").WithStatus(http.StatusBadGateway)
	}
	body := v.(map[string]any)
	c.previewCache.put(raw, body)
	return body, nil
}

// makePreview fetches raw and builds its preview.
func (c *Component) makePreview(ctx context.Context, raw string) (map[string]any, error) {
	page, err := c.previews.Get(ctx, raw, previewImageBytes)
	if err != nil {
		return nil, err
	}
	body := map[string]any{}
	if isImageType(page.ContentType) {
		// An image that cannot be kept (not a supported format, too
		// large, infected) gets an empty preview.
		_ = c.previewImage(ctx, page, body)
		return body, nil
	}
	if !preview.IsHTML(page.ContentType) {
		return body, nil
	}
	head := page.Body
	if len(head) > previewPageBytes {
		head = head[:previewPageBytes]
	}
	og := preview.ParseOpenGraph(head, page.ContentType, page.URL)
	for k, v := range map[string]string{"og:title": og.Title, "og:description": og.Description, "og:site_name": og.SiteName, "og:type": og.Type} {
		if v != "" {
			body[k] = v
		}
	}
	if og.Image != "" {
		img, err := c.previews.Get(ctx, og.Image, previewImageBytes)
		if err == nil && isImageType(img.ContentType) {
			// An image that cannot be kept leaves the preview without one.
			_ = c.previewImage(ctx, img, body)
		}
	}
	return body, nil
}

// previewImage keeps a fetched image as local media and describes it in
// body (og:image as an mxc URI, its size and type).
func (c *Component) previewImage(ctx context.Context, img preview.Response, body map[string]any) error {
	if img.Truncated {
		return fmt.Errorf("preview image larger than %d bytes", previewImageBytes)
	}
	info, err := thumbnail.Probe(bytes.NewReader(img.Body), c.cfg.MaxImagePixels)
	if err != nil {
		return err
	}
	id, err := newMediaID()
	if err != nil {
		return err
	}
	p, err := c.blobs.Write(bytes.NewReader(img.Body), previewImageBytes)
	if err != nil {
		return err
	}
	defer p.Discard()
	m := mediastore.Media{Origin: c.global.ServerName, MediaID: id, ContentType: "image/" + info.Format, SHA256: p.SHA256, Size: p.Size}
	infected, err := c.scan(ctx, p)
	if err != nil {
		return err
	}
	if infected != nil {
		return infected
	}
	err = c.commit(ctx, p, m, -1, func(ctx context.Context, m mediastore.Media, _ int64) error {
		return c.store.InsertMedia(ctx, m, -1)
	})
	if err != nil {
		return err
	}
	body["og:image"] = mxc(m.Origin, m.MediaID)
	body["og:image:type"] = m.ContentType
	body["og:image:width"] = info.Width
	body["og:image:height"] = info.Height
	body["matrix:image:size"] = m.Size
	return nil
}

// isImageType reports whether contentType is an image/ type.
func isImageType(contentType string) bool {
	t, _, _ := mime.ParseMediaType(contentType)
	return strings.HasPrefix(t, "image/")
}
