package mediaapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/internal/httputil"
	mediaapi "github.com/matrix-gouv/homeserver/mediaapi/api"
	"github.com/matrix-gouv/homeserver/mediaapi/internal/blob"
	mediastore "github.com/matrix-gouv/homeserver/mediaapi/storage"
)

// remoteMedia returns another server's media item from the cache, or
// fetches it (once, however many requests ask together), scans it and
// caches it. noFetch (allow_remote=false) keeps to the cache.
func (c *Component) remoteMedia(ctx context.Context, origin, id string, noFetch bool) (mediastore.Media, error) {
	m, err := c.store.GetMedia(ctx, origin, id)
	if err == nil {
		// Served: the purge of the remote cache keeps it a while.
		if terr := c.store.TouchMedia(ctx, origin, id, time.Now().UnixMilli()); terr != nil {
			httputil.Log(ctx).WithError(terr).Warn("record remote media access")
		}
		return m, nil
	}
	if !errors.Is(err, mediastore.ErrNotFound) {
		return m, err
	}
	if noFetch || c.remote == nil {
		return m, httputil.NotFound("remote media is not available on this server")
	}
	v, err, _ := c.flight.Do("fetch "+origin+"/"+id, func() (any, error) {
		// Not the request's context: the fetch serves every request
		// waiting on it, and one giving up must not cancel it for all.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), maxWait)
		defer cancel()
		return c.fetchRemote(fctx, origin, id)
	})
	if err != nil {
		return mediastore.Media{}, err
	}
	return v.(mediastore.Media), nil
}

// fetchRemote fetches mxc://origin/id through the RemoteFetcher, keeps it
// and records it.
func (c *Component) fetchRemote(ctx context.Context, origin, id string) (mediastore.Media, error) {
	f, err := c.remote.FetchMedia(ctx, origin, id)
	if errors.Is(err, mediaapi.ErrNotFound) {
		return mediastore.Media{}, httputil.NotFound("media not found")
	}
	if err != nil {
		httputil.Log(ctx).WithError(err).WithFields(logrus.Fields{fieldOrigin: origin, fieldMediaID: id}).Warn("fetch remote media")
		return mediastore.Media{}, httputil.Errorf(httputil.CodeUnknown, "could not fetch the media from %s", origin).WithStatus(http.StatusBadGateway)
	}
	defer f.Body.Close()
	p, err := c.blobs.Write(f.Body, c.cfg.MaxUploadBytes)
	if errors.Is(err, blob.ErrTooLarge) {
		return mediastore.Media{}, httputil.Errorf(httputil.CodeTooLarge, "remote media larger than this server's limit").WithStatus(http.StatusBadGateway)
	}
	if err != nil {
		return mediastore.Media{}, fmt.Errorf("fetch remote media: %w", err)
	}
	defer p.Discard()
	m := mediastore.Media{Origin: origin, MediaID: id, ContentType: f.ContentType, UploadName: f.FileName, SHA256: p.SHA256, Size: p.Size}
	infected, err := c.scan(ctx, p)
	if err != nil {
		return m, err
	}
	m.Quarantined = infected != nil
	err = c.commit(ctx, p, m, -1, func(ctx context.Context, m mediastore.Media, _ int64) error {
		return c.store.InsertMedia(ctx, m, -1)
	})
	if errors.Is(err, mediastore.ErrExists) {
		// Another process cached it first.
		return c.store.GetMedia(ctx, origin, id)
	}
	if err != nil {
		return m, err
	}
	if infected != nil {
		httputil.Log(ctx).WithError(infected).WithFields(logrus.Fields{fieldOrigin: origin, fieldMediaID: id}).Warn("infected remote media quarantined")
	}
	c.queueThumbnails(origin, id, m.SHA256)
	return c.store.GetMedia(ctx, origin, id)
}

// OpenLocalMedia returns the content of a media item uploaded to this
// server, for the federation component to serve to other servers. It
// implements api.LocalMedia.
func (c *Component) OpenLocalMedia(ctx context.Context, mediaID string) (mediaapi.RemoteFile, error) {
	m, err := c.store.GetMedia(ctx, c.global.ServerName, mediaID)
	if errors.Is(err, mediastore.ErrNotFound) || err == nil && (m.Pending() || m.Quarantined) {
		return mediaapi.RemoteFile{}, mediaapi.ErrNotFound
	}
	if err != nil {
		return mediaapi.RemoteFile{}, err
	}
	f, err := c.blobs.Open(m.SHA256)
	if err != nil {
		return mediaapi.RemoteFile{}, fmt.Errorf("open local media: %w", err)
	}
	return mediaapi.RemoteFile{ContentType: m.ContentType, FileName: m.UploadName, Body: f}, nil
}

var _ mediaapi.LocalMedia = (*Component)(nil)
