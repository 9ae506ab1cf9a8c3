// Package appservices runs the application services (bridges): for each
// registration with a URL, a worker consumes the roomserver's output,
// queues the events the bridge is interested in (its users, aliases and
// rooms) and pushes them as transactions, in order, retried until
// acknowledged (worker.go). Its Querier asks the bridges about unknown
// users and aliases, pings them and forwards third-party lookups for the
// client API; the admin route lists the registrations and their queues.
//
// Registrations are read and checked by config (app_services); as_token
// authentication and masquerading are the client component's (its auth
// package), which only needs the registrations.
//
// Only cmd/ builds it; it reads rooms through the roomserver's api and
// authenticates admins through homeserver/api.
package appservices

import (
	"context"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/appservices/storage"
	"github.com/matrix-gouv/homeserver/config"
	hsapi "github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/internal/bus"
	dbstorage "github.com/matrix-gouv/homeserver/internal/storage"
)

// Deps is what the appservices component needs from cmd/.
type Deps struct {
	// Global holds the server name.
	Global *config.Global
	// Config holds the registrations (already read and checked).
	Config *config.AppServices
	// DB holds the appservices' tables (queues and their state).
	DB *dbstorage.DB
	// Bus carries the roomserver's output.
	Bus *bus.Bus
	// Rooms reads rooms' members and aliases, to decide interest.
	Rooms RoomReader
	// Tokens authenticates the admin route's callers.
	Tokens hsapi.TokenQuerier
	// Log is already tagged with component=appservices.
	Log *logrus.Entry
}

// Component runs the application services.
type Component struct {
	cfg     *config.AppServices
	store   *storage.Store
	tokens  hsapi.TokenQuerier
	log     *logrus.Entry
	workers []*worker
	querier *Querier
}

// New builds the component; it does no I/O until Start.
func New(deps Deps) (*Component, error) {
	if deps.Config == nil {
		deps.Config = &config.AppServices{}
	}
	c := &Component{cfg: deps.Config, store: storage.New(deps.DB), tokens: deps.Tokens, log: deps.Log,
		querier: NewQuerier(deps.Config, deps.Log)}
	client := newClient(deps.Config)
	for _, as := range deps.Config.Registrations {
		if !as.HasURL() {
			continue
		}
		if deps.Bus == nil || deps.Rooms == nil {
			return nil, fmt.Errorf("appservice %s: the component needs the bus and the roomserver", as.ID)
		}
		c.workers = append(c.workers, &worker{
			as: as, store: c.store, bus: deps.Bus, cache: newRoomCache(as, deps.Rooms), client: client,
			log: deps.Log.WithField(fieldAppService, as.ID), maxWait: deps.Config.MaxRetryInterval.Std(),
			wake: make(chan struct{}, 1),
		})
	}
	return c, nil
}

// Querier returns the component's questions to bridges, for the client
// API.
func (c *Component) Querier() *Querier { return c.querier }

// Start starts a worker per application service with a URL. Call it
// once, before any other method.
func (c *Component) Start(ctx context.Context) error {
	for i, w := range c.workers {
		if err := w.start(ctx); err != nil {
			for _, started := range c.workers[:i] {
				started.stop()
			}
			return err
		}
	}
	return nil
}

// Stop stops the workers and waits for them; transactions in flight are
// sent again at the next start.
func (c *Component) Stop(ctx context.Context) error {
	for _, w := range c.workers {
		w.stop()
	}
	return nil
}
