// Package profile serves users' profiles (GET/PUT/DELETE
// /profile/{userId}[/{keyName}], extended profiles of spec v1.16) and
// carries display name and avatar changes into the member events of every
// room the user is joined to (propagate.go), as Synapse does.
//
// Profiles of other servers' users are asked of their server (Deps.Remote,
// the federation component), as Synapse does.
package profile

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	hsapi "github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// Limits of profile fields.
const (
	// maxKeyBytes is the longest field name (spec v1.16).
	maxKeyBytes = 255
	// maxDisplayNameBytes and maxAvatarURLBytes are Synapse's limits.
	maxDisplayNameBytes = 256
	maxAvatarURLBytes   = 1000
	// fieldTimeZone is the spec's time zone field.
	fieldTimeZone = "m.tz"
)

// Store is the profile table.
type Store interface {
	ProfileFields(ctx context.Context, userID string) (map[string]json.RawMessage, error)
	SetProfileField(ctx context.Context, userID, field string, value json.RawMessage) error
	Account(ctx context.Context, userID string) (storage.Account, error)
}

// Deps is what the handlers need.
type Deps struct {
	ServerName      string
	Store           Store
	MaxRequestBytes int64
	// Propagator carries display name and avatar changes into member
	// events; nil when this process serves no rooms.
	Propagator *Propagator
	// Remote looks up other servers' users' profiles; nil: they answer
	// 404.
	Remote hsapi.RemoteProfiles
	Log    *logrus.Entry
}

// Handlers serves the profile endpoints.
type Handlers struct{ Deps }

// New returns the handlers.
func New(d Deps) *Handlers { return &Handlers{d} }

// localUser checks that userID is a local user with an account (404
// otherwise: remote profiles need federation).
func (h *Handlers) localUser(ctx context.Context, userID string) error {
	if !strings.HasPrefix(userID, "@") || !strings.HasSuffix(userID, ":"+h.ServerName) {
		return httputil.NotFound("profile not found")
	}
	a, err := h.Store.Account(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && a.Deactivated) {
		return httputil.NotFound("profile not found")
	}
	return err
}

// Get is GET /profile/{userID}: every field.
func (h *Handlers) Get(r *http.Request) (any, error) {
	userID := httputil.PathParam(r, "userID")
	if h.isRemote(userID) {
		return h.remote(r.Context(), userID, "")
	}
	if err := h.localUser(r.Context(), userID); err != nil {
		return nil, err
	}
	return h.Store.ProfileFields(r.Context(), userID)
}

// isRemote reports whether userID is another server's user whose server
// can be asked.
func (h *Handlers) isRemote(userID string) bool {
	_, server, ok := strings.Cut(userID, ":")
	return h.Remote != nil && ok && strings.HasPrefix(userID, "@") && server != h.ServerName
}

// remote asks userID's server for their profile (field alone when not
// empty): 404 when it has none, 502 when it cannot be asked.
func (h *Handlers) remote(ctx context.Context, userID, field string) (map[string]json.RawMessage, error) {
	fields, err := h.Remote.QueryProfile(ctx, userID, field)
	if errors.Is(err, hsapi.ErrNotFound) {
		return nil, httputil.NotFound("profile not found")
	}
	if err != nil {
		h.Log.WithError(err).Info("remote profile lookup failed")
		return nil, httputil.Errorf(httputil.CodeUnknown, "failed to fetch the profile").WithStatus(http.StatusBadGateway)
	}
	if field != "" {
		v, ok := fields[field]
		if !ok {
			return nil, httputil.NotFound("profile field not set")
		}
		return map[string]json.RawMessage{field: v}, nil
	}
	return fields, nil
}

// LocalProfile implements hsapi.ProfileServer.
func (h *Handlers) LocalProfile(ctx context.Context, userID, field string) (map[string]json.RawMessage, error) {
	if !strings.HasPrefix(userID, "@") || !strings.HasSuffix(userID, ":"+h.ServerName) {
		return nil, hsapi.ErrNotLocal
	}
	a, err := h.Store.Account(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && a.Deactivated) {
		return nil, hsapi.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	fields, err := h.Store.ProfileFields(ctx, userID)
	if err != nil {
		return nil, err
	}
	if field == "" {
		return fields, nil
	}
	v, ok := fields[field]
	if !ok {
		return nil, hsapi.ErrNotFound
	}
	return map[string]json.RawMessage{field: v}, nil
}

// GetField is GET /profile/{userID}/{keyName}: {keyName: value}, 404
// when the field is not set.
func (h *Handlers) GetField(r *http.Request) (any, error) {
	userID, key := httputil.PathParam(r, "userID"), httputil.PathParam(r, "keyName")
	if h.isRemote(userID) {
		return h.remote(r.Context(), userID, key)
	}
	if err := h.localUser(r.Context(), userID); err != nil {
		return nil, err
	}
	fields, err := h.Store.ProfileFields(r.Context(), userID)
	if err != nil {
		return nil, err
	}
	v, ok := fields[key]
	if !ok {
		return nil, httputil.NotFound("profile field not set")
	}
	return map[string]json.RawMessage{key: v}, nil
}

// Put is PUT /profile/{userID}/{keyName}: the body holds exactly the one
// field named by the path.
func (h *Handlers) Put(r *http.Request) (any, error) {
	userID, key, err := h.ownField(r)
	if err != nil {
		return nil, err
	}
	body, err := httputil.ReadBody(r, h.MaxRequestBytes)
	if err != nil {
		return nil, err
	}
	var obj map[string]json.RawMessage
	if err := httputil.UnmarshalBody(body, &obj); err != nil {
		return nil, err
	}
	v, ok := obj[key]
	if !ok {
		return nil, httputil.MissingParam("the body must hold the field %s", key)
	}
	if len(obj) != 1 {
		return nil, httputil.BadJSON("the body must hold only the field %s", key)
	}
	if err := checkValue(key, v); err != nil {
		return nil, err
	}
	return h.set(r.Context(), userID, key, v)
}

// Delete is DELETE /profile/{userID}/{keyName}.
func (h *Handlers) Delete(r *http.Request) (any, error) {
	userID, key, err := h.ownField(r)
	if err != nil {
		return nil, err
	}
	return h.set(r.Context(), userID, key, nil)
}

// ownField checks that the caller changes their own profile and that the
// field name is acceptable.
func (h *Handlers) ownField(r *http.Request) (userID, key string, err error) {
	userID, key = httputil.PathParam(r, "userID"), httputil.PathParam(r, "keyName")
	if auth.DeviceFrom(r.Context()).UserID != userID {
		return "", "", httputil.Forbidden("cannot change the profile of another user")
	}
	if len(key) > maxKeyBytes {
		return "", "", httputil.Errorf(httputil.CodeKeyTooLarge, "profile field names are at most %d bytes", maxKeyBytes)
	}
	if key == "" {
		return "", "", httputil.InvalidParam("empty profile field name")
	}
	return userID, key, nil
}

// checkValue checks the fields the spec types.
func checkValue(key string, v json.RawMessage) error {
	var s string
	switch key {
	case storage.ProfileDisplayName:
		if json.Unmarshal(v, &s) != nil {
			return httputil.BadJSON("displayname must be a string")
		}
		if len(s) > maxDisplayNameBytes {
			return httputil.BadJSON("displayname is at most %d bytes", maxDisplayNameBytes)
		}
	case storage.ProfileAvatarURL:
		if json.Unmarshal(v, &s) != nil {
			return httputil.BadJSON("avatar_url must be a string")
		}
		if len(s) > maxAvatarURLBytes || (s != "" && !strings.HasPrefix(s, "mxc://")) {
			return httputil.BadJSON("avatar_url must be an mxc:// URI of at most %d bytes", maxAvatarURLBytes)
		}
	case fieldTimeZone:
		if json.Unmarshal(v, &s) != nil {
			return httputil.BadJSON("m.tz must be a string")
		}
		if _, err := time.LoadLocation(s); err != nil || s == "" || s == "Local" {
			return httputil.BadJSON("m.tz must be an IANA time zone")
		}
	}
	return nil
}

// set stores the change and, for the display name and avatar, has the
// member events follow.
func (h *Handlers) set(ctx context.Context, userID, key string, v json.RawMessage) (any, error) {
	err := h.Store.SetProfileField(ctx, userID, key, v)
	switch {
	case errors.Is(err, storage.ErrProfileTooLarge):
		return nil, httputil.Errorf(httputil.CodeProfileTooLarge, "the profile would be larger than %d bytes", storage.MaxProfileBytes)
	case errors.Is(err, storage.ErrNotFound):
		return nil, httputil.NotFound("profile not found")
	case err != nil:
		return nil, err
	}
	if h.Propagator != nil && (key == storage.ProfileDisplayName || key == storage.ProfileAvatarURL) {
		h.Propagator.Changed(userID)
	}
	return struct{}{}, nil
}

// MemberProfile returns the display name and avatar URL a member event
// of userID carries (nil when unset), for joins and invites.
func (h *Handlers) MemberProfile(ctx context.Context, userID string) (displayName, avatarURL *string, err error) {
	fields, err := h.Store.ProfileFields(ctx, userID)
	if err != nil {
		return nil, nil, err
	}
	return stringField(fields[storage.ProfileDisplayName]), stringField(fields[storage.ProfileAvatarURL]), nil
}

// stringField reads a JSON string; nil when absent, null or empty.
func stringField(raw json.RawMessage) *string {
	var s string
	if raw == nil || json.Unmarshal(raw, &s) != nil || s == "" {
		return nil
	}
	return &s
}
