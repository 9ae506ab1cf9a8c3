// Package accountdata serves account data, global and per room, and room
// tags (stored as the m.tag room account data). Every change moves the
// account-data stream, which wakes the user's /sync.
package accountdata

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// Notifier is told of account data changes.
type Notifier interface {
	OnAccountData(userID string, pos int64)
}

// Deps is what the handlers need.
type Deps struct {
	Store           *storage.Store
	Notifier        Notifier
	MaxRequestBytes int64
}

// Handlers serves the account data endpoints.
type Handlers struct{ Deps }

// New returns the handlers.
func New(d Deps) *Handlers { return &Handlers{d} }

// Types the server controls: clients may not set them through this API.
const (
	typeFullyRead = "m.fully_read"
	typePushRules = "m.push_rules"
	typeTag       = "m.tag"
)

// owner checks that the {userID} of the path is the caller.
func owner(r *http.Request) (string, error) {
	userID := auth.DeviceFrom(r.Context()).UserID
	if httputil.PathParam(r, "userID") != userID {
		return "", httputil.Forbidden("cannot access the account data of other users")
	}
	return userID, nil
}

// Put stores content and wakes the user's syncs. It is exported for the
// handlers of other packages that write account data (read markers).
func (h *Handlers) Put(ctx context.Context, userID, roomID, typ string, content json.RawMessage) error {
	pos, err := h.Store.PutAccountData(ctx, userID, roomID, typ, content)
	if err != nil {
		return err
	}
	h.Notifier.OnAccountData(userID, pos)
	return nil
}

// readObject reads a JSON object body.
func (h *Handlers) readObject(r *http.Request) (json.RawMessage, error) {
	body, err := httputil.ReadBody(r, h.MaxRequestBytes)
	if err != nil {
		return nil, err
	}
	var obj map[string]json.RawMessage
	if err := httputil.UnmarshalBody(body, &obj); err != nil {
		return nil, err
	}
	return body, nil
}

// PutGlobal serves PUT /user/{userID}/account_data/{type}.
func (h *Handlers) PutGlobal(r *http.Request) (any, error) { return h.put(r, "") }

// PutRoom serves PUT /user/{userID}/rooms/{roomID}/account_data/{type}.
func (h *Handlers) PutRoom(r *http.Request) (any, error) {
	return h.put(r, httputil.PathParam(r, "roomID"))
}

func (h *Handlers) put(r *http.Request, roomID string) (any, error) {
	userID, err := owner(r)
	if err != nil {
		return nil, err
	}
	typ := httputil.PathParam(r, "type")
	if typ == typeFullyRead || typ == typePushRules {
		return nil, httputil.BadJSON("%s is controlled by the server and cannot be set here", typ).WithStatus(http.StatusMethodNotAllowed)
	}
	content, err := h.readObject(r)
	if err != nil {
		return nil, err
	}
	if err := h.Put(r.Context(), userID, roomID, typ, content); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// GetGlobal serves GET /user/{userID}/account_data/{type}.
func (h *Handlers) GetGlobal(r *http.Request) (any, error) { return h.get(r, "") }

// GetRoom serves GET /user/{userID}/rooms/{roomID}/account_data/{type}.
func (h *Handlers) GetRoom(r *http.Request) (any, error) {
	return h.get(r, httputil.PathParam(r, "roomID"))
}

func (h *Handlers) get(r *http.Request, roomID string) (any, error) {
	userID, err := owner(r)
	if err != nil {
		return nil, err
	}
	content, err := h.Store.GetAccountData(r.Context(), userID, roomID, httputil.PathParam(r, "type"))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, httputil.NotFound("no account data of that type")
	}
	if err != nil {
		return nil, err
	}
	return content, nil
}
