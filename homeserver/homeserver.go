// Package homeserver is the client-server API component: accounts, devices,
// login and tokens, and (in later packages) sync, E2EE keys, to-device,
// profiles, presence, typing, receipts, account data and push rules.
//
// cmd/ builds it with New and mounts its routes on the client listener;
// other components reach it only through homeserver/api.
package homeserver

import (
	"context"
	"errors"

	"github.com/go-chi/chi/v5"
	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/internal/storage"
)

// Deps is what the component needs from cmd/.
type Deps struct {
	Global *config.Global
	Config *config.Client
	DB     *storage.DB
	Log    *logrus.Entry
}

// Component is the client-server API.
type Component struct {
	deps Deps
}

// New builds the component; it does no I/O until Start.
func New(deps Deps) (*Component, error) {
	return &Component{deps: deps}, nil
}

// Mount adds the client-server API's routes to r.
func (c *Component) Mount(r chi.Router) {}

// Start starts background work (token expiry sweeps).
func (c *Component) Start(ctx context.Context) error { return nil }

// Stop stops background work and waits for it.
func (c *Component) Stop(ctx context.Context) error { return nil }

// Tokens returns the component's TokenQuerier, for other components in the
// same process and for serving it on the bus.
func (c *Component) Tokens() api.TokenQuerier { return nil }

// CreateUser creates a local account for the admin CLI; password may be
// empty for an account that cannot log in by password.
func (c *Component) CreateUser(ctx context.Context, localpart, password string, admin bool) (userID string, err error) {
	return "", errors.New("not yet")
}

// ResetPassword sets a new password and logs out every device but none.
func (c *Component) ResetPassword(ctx context.Context, userID, password string) error {
	return errors.New("not yet")
}

// Deactivate deactivates the account, logs out all its devices and frees
// nothing: the user id is never reused.
func (c *Component) Deactivate(ctx context.Context, userID string) error {
	return errors.New("not yet")
}
