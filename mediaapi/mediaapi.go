// Package mediaapi is the media repository component: upload (plain and
// async), authenticated download and thumbnails (spec v1.11) beside the
// frozen legacy endpoints, per-user quotas, an antivirus hook, remote media
// fetched through an api.RemoteFetcher, and the admin operations
// (quarantine, delete, list, purge).
//
// It needs to know who a client is, and asks an api.TokenQuerier: the
// homeserver component itself in one process, or a homeserver/remote client
// over the bus when media runs on its own. Its rows live in the database
// (mediaapi/storage); the bytes live on disk under media.store_dir, once per
// distinct content (mediaapi/internal/blob).
//
// cmd/ builds it with New and mounts its routes on the client listener.
package mediaapi

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/go-chi/chi/v5"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/singleflight"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/internal/storage"
	mediaapi "github.com/matrix-gouv/homeserver/mediaapi/api"
	"github.com/matrix-gouv/homeserver/mediaapi/internal/antivirus"
	"github.com/matrix-gouv/homeserver/mediaapi/internal/blob"
	"github.com/matrix-gouv/homeserver/mediaapi/internal/preview"
	mediastore "github.com/matrix-gouv/homeserver/mediaapi/storage"
)

// Deps is what the component needs from cmd/.
type Deps struct {
	// Global is the shared configuration.
	Global *config.Global
	// Config is the media section.
	Config *config.Media
	// DB is the database, migrated.
	DB *storage.DB
	// Tokens resolves access tokens: the homeserver component, or a
	// remote.TokenClient when it runs in another process.
	Tokens api.TokenQuerier
	// Remote fetches other servers' media; nil means remote media is not
	// available (404 M_NOT_FOUND).
	Remote mediaapi.RemoteFetcher
	// Rooms reads room timelines for the admin's room quarantine; nil
	// turns that endpoint off.
	Rooms RoomTimeline
	// Log is tagged component=mediaapi.
	Log *logrus.Entry
}

// Component is the media repository.
type Component struct {
	global *config.Global
	cfg    *config.Media
	db     *storage.DB
	store  *mediastore.Store
	tokens api.TokenQuerier
	remote mediaapi.RemoteFetcher
	rooms  RoomTimeline
	log    *logrus.Entry
	// scanner is nil when no clamd is configured.
	scanner *antivirus.Clamd
	// blobs is opened by Start.
	blobs *blob.Store
	// hashLocks serialise, per content hash, committing a file with
	// recording its row, against removing a file no row points at, so
	// that a new upload of a file being deleted keeps its file.
	hashLocks [64]sync.Mutex
	// flight makes each thumbnail, and each remote fetch, once when
	// several requests ask for it together.
	flight singleflight.Group
	// previews fetches pages for URL previews; nil when they are off.
	previews *preview.Fetcher
	// previewCache keeps recent previews.
	previewCache previewCache
	// jobs feeds the thumbnail worker the uploads to pre-thumbnail.
	jobs chan thumbJob
	// cancel stops the background goroutines; wg waits for them.
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New builds the component from deps, all of which but Remote and Rooms
// are required; it does no I/O until Start.
func New(deps Deps) (*Component, error) {
	switch {
	case deps.Global == nil:
		return nil, errors.New("new media component: no global config")
	case deps.Config == nil:
		return nil, errors.New("new media component: no media config")
	case deps.DB == nil:
		return nil, errors.New("new media component: no database")
	case deps.Tokens == nil:
		return nil, errors.New("new media component: no token querier")
	case deps.Log == nil:
		return nil, errors.New("new media component: no logger")
	}
	c := &Component{
		global: deps.Global, cfg: deps.Config, db: deps.DB, store: mediastore.New(deps.DB),
		tokens: deps.Tokens, remote: deps.Remote, rooms: deps.Rooms, log: deps.Log,
		jobs: make(chan thumbJob, 64),
	}
	if deps.Config.ClamdAddress != "" {
		sc, err := antivirus.New(deps.Config.ClamdAddress)
		if err != nil {
			return nil, fmt.Errorf("new media component: %w", err)
		}
		c.scanner = sc
	}
	if deps.Config.URLPreviews {
		allowed, err := deps.Config.PreviewAllowed()
		if err != nil {
			return nil, fmt.Errorf("new media component: %w", err)
		}
		c.previews = preview.NewFetcher(allowed)
	}
	return c, nil
}

// Mount adds the component's routes (see routes.go) to r, the client
// listener's router.
func (c *Component) Mount(r chi.Router) {
	authed := r.With(c.requireAuth)
	for _, rt := range c.routes() {
		if rt.auth {
			authed.Method(rt.method, rt.path, rt.handler)
		} else {
			r.Method(rt.method, rt.path, rt.handler)
		}
	}
}

// Start opens the file store and starts the thumbnail worker and the
// janitor that drops lapsed async uploads.
func (c *Component) Start(ctx context.Context) error {
	blobs, err := blob.Open(c.global.Path(c.cfg.StoreDir))
	if err != nil {
		return fmt.Errorf("start media component: %w", err)
	}
	c.blobs = blobs
	bg, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.wg.Add(2)
	go func() { defer c.wg.Done(); c.thumbnailWorker(bg) }()
	go func() { defer c.wg.Done(); c.janitor(bg) }()
	return nil
}

// Stop stops background work and waits for it, until ctx ends.
func (c *Component) Stop(ctx context.Context) error {
	if c.cancel == nil {
		return nil
	}
	c.cancel()
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop media component: %w", ctx.Err())
	}
}

// hashLock returns the lock of content hash sha.
func (c *Component) hashLock(sha string) *sync.Mutex {
	var n byte
	if len(sha) > 1 {
		n = sha[0] ^ sha[1]
	}
	return &c.hashLocks[int(n)%len(c.hashLocks)]
}

// removeIfOrphan removes the file of content sha when no row points at it
// any more.
func (c *Component) removeIfOrphan(ctx context.Context, sha string) error {
	l := c.hashLock(sha)
	l.Lock()
	defer l.Unlock()
	used, err := c.store.HashUsed(ctx, sha)
	if err != nil {
		return err
	}
	if used {
		return nil
	}
	return c.blobs.Remove(sha)
}
