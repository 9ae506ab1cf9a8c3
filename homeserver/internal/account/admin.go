package account

import (
	"context"
	"errors"
	"fmt"

	"github.com/matrix-gouv/homeserver/homeserver/storage"
)

// Errors of the admin operations, for the CLI to report.
var (
	// ErrNotLocal: the user id belongs to another server.
	ErrNotLocal = errors.New("not a user of this server")
	// ErrNoSuchUser: no account has that id.
	ErrNoSuchUser = errors.New("no such user")
)

// AdminCreateUser creates an account without logging it in, for the admin
// CLI. The password may be empty: such an account cannot log in by
// password (an appservice or SSO account).
func (h *Handlers) AdminCreateUser(ctx context.Context, localpart, password string, admin bool) (string, error) {
	userID, err := h.validateLocalpart(localpart)
	if err != nil {
		return "", err
	}
	if password != "" {
		if err := h.checkPasswordPolicy(password); err != nil {
			return "", err
		}
	}
	if _, err := h.createAccount(ctx, createParams{userID: userID, password: password, admin: admin}); err != nil {
		return "", err
	}
	return userID, nil
}

// AdminResetPassword sets a new password and logs out every device.
func (h *Handlers) AdminResetPassword(ctx context.Context, user, password string) (string, error) {
	userID, ok := h.resolveUser(user)
	if !ok {
		return "", ErrNotLocal
	}
	if err := h.checkPasswordPolicy(password); err != nil {
		return "", err
	}
	hash, err := h.hashPassword(ctx, password)
	if err != nil {
		return "", err
	}
	none := ""
	if err := h.store.SetPassword(ctx, userID, hash, &none); errors.Is(err, storage.ErrNotFound) {
		return "", fmt.Errorf("%s: %w", userID, ErrNoSuchUser)
	} else if err != nil {
		return "", err
	}
	h.devicesChanged(userID)
	return userID, nil
}

// AdminDeactivate deactivates an account and logs out all its devices.
func (h *Handlers) AdminDeactivate(ctx context.Context, user string) (string, error) {
	userID, ok := h.resolveUser(user)
	if !ok {
		return "", ErrNotLocal
	}
	if err := h.store.Deactivate(ctx, userID); errors.Is(err, storage.ErrNotFound) {
		return "", fmt.Errorf("%s: %w", userID, ErrNoSuchUser)
	} else if err != nil {
		return "", err
	}
	return userID, nil
}
