// Package roomserver will own the room DAG: it builds, authorises and
// persists events (with gomatrixserverlib), holds room state as shared
// snapshots keyed by numeric ids, resolves state (v2) when the DAG forks,
// serves history, and publishes every accepted event on the bus, in order
// per room, for sync, federation, appservices and push to consume.
//
// Events of one room are processed strictly in order by a per-room
// sequencer; different rooms never wait on each other. An event is
// acknowledged only once it and the new state are committed.
//
// Only cmd/ builds it; other components will reach it through
// roomserver/api (a direct call in one process, NATS request/reply across
// processes). For now the component is a shell with the shared lifecycle.
package roomserver

import (
	"context"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/internal/storage"
)

// Deps is what the roomserver needs from cmd/.
type Deps struct {
	// Global holds the server name and signing key events are signed with.
	Global *config.Global
	// DB holds the roomserver's tables (events, state snapshots, rooms).
	DB *storage.DB
	// Log is already tagged with component=roomserver.
	Log *logrus.Entry
}

// Component is the roomserver.
type Component struct {
	global *config.Global
	db     *storage.DB
	log    *logrus.Entry
}

// New builds the roomserver; it does no I/O until Start.
func New(deps Deps) (*Component, error) {
	return &Component{global: deps.Global, db: deps.DB, log: deps.Log}, nil
}

// Start starts the roomserver's background work (none yet). Call it once,
// before any other method.
func (c *Component) Start(ctx context.Context) error { return nil }

// Stop stops the background work Start began and waits for it.
func (c *Component) Stop(ctx context.Context) error { return nil }
