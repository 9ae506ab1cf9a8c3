// Package appservices will own application services (bridges): their
// registrations and namespaces, the transactions pushed to them from the
// bus (the roomserver's output events the bridge is interested in, in
// order, retried until acknowledged), /ping, and masquerading (a bridge
// acting as one of its users).
//
// Only cmd/ builds it; it will consume the roomserver's output stream and
// query other components through their api/ packages. For now the
// component is a shell with the shared lifecycle.
package appservices

import (
	"context"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/internal/storage"
)

// Deps is what the appservices component needs from cmd/.
type Deps struct {
	// Global holds the server name.
	Global *config.Global
	// DB holds the appservices' tables (transaction positions).
	DB *storage.DB
	// Log is already tagged with component=appservices.
	Log *logrus.Entry
}

// Component runs the application services.
type Component struct {
	global *config.Global
	db     *storage.DB
	log    *logrus.Entry
}

// New builds the component; it does no I/O until Start.
func New(deps Deps) (*Component, error) {
	return &Component{global: deps.Global, db: deps.DB, log: deps.Log}, nil
}

// Start starts pushing transactions to the application services (none
// yet). Call it once, before any other method.
func (c *Component) Start(ctx context.Context) error { return nil }

// Stop stops the background work Start began and waits for it.
func (c *Component) Stop(ctx context.Context) error { return nil }
