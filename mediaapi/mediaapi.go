// Package mediaapi is the media repository component: upload, authenticated
// download, thumbnails, remote media over federation, quotas and
// quarantine. For now it serves only the media configuration, which shows
// the component's shape: it needs to know who a client is, and asks an
// api.TokenQuerier, which is the homeserver component itself in one process
// or a homeserver/remote client over the bus when media runs on its own.
//
// cmd/ builds it with New and mounts its routes on the client listener.
package mediaapi

import (
	"context"
	"errors"

	"github.com/go-chi/chi/v5"
	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/homeserver/api"
)

// Deps is what the component needs from cmd/.
type Deps struct {
	// Global is the shared configuration.
	Global *config.Global
	// Config is the media section.
	Config *config.Media
	// Tokens resolves access tokens: the homeserver component, or a
	// remote.TokenClient when it runs in another process.
	Tokens api.TokenQuerier
	// Log is tagged component=mediaapi.
	Log *logrus.Entry
}

// Component is the media repository.
type Component struct {
	global *config.Global
	cfg    *config.Media
	tokens api.TokenQuerier
	log    *logrus.Entry
}

// New builds the component from deps, all of which are required; it does
// no I/O until Start.
func New(deps Deps) (*Component, error) {
	switch {
	case deps.Global == nil:
		return nil, errors.New("new media component: no global config")
	case deps.Config == nil:
		return nil, errors.New("new media component: no media config")
	case deps.Tokens == nil:
		return nil, errors.New("new media component: no token querier")
	case deps.Log == nil:
		return nil, errors.New("new media component: no logger")
	}
	return &Component{global: deps.Global, cfg: deps.Config, tokens: deps.Tokens, log: deps.Log}, nil
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

// Start starts background work (none yet).
func (c *Component) Start(ctx context.Context) error { return nil }

// Stop stops background work and waits for it (none yet).
func (c *Component) Stop(ctx context.Context) error { return nil }
