// Package info serves what clients read before and beside logging in: the
// spec versions served, server discovery (.well-known), capabilities, and
// the answers in shape for features this server keeps off (third-party
// ids, third-party protocols).
package info

import (
	"net/http"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/homeserver/internal/calls"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// Handlers serves the informational endpoints.
type Handlers struct {
	global *config.Global
	cfg    *config.Client
}

// New returns the handlers.
func New(global *config.Global, cfg *config.Client) *Handlers {
	return &Handlers{global: global, cfg: cfg}
}

// specVersions are the client-server API versions advertised. v1.11 is
// listed since the media component serves authenticated media
// (/_matrix/client/v1/media/…): clients switch to it only when the server
// lists v1.11, and the legacy endpoints serve only media from before
// media.legacy_freeze.
var specVersions = []string{
	"r0.0.1", "r0.1.0", "r0.2.0", "r0.3.0", "r0.4.0", "r0.5.0", "r0.6.0", "r0.6.1",
	"v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10",
	"v1.11",
}

// Versions is GET /_matrix/client/versions.
func (h *Handlers) Versions(r *http.Request) (any, error) {
	// Simplified sliding sync (MSC4186): matrix-rust-sdk, hence Element X,
	// uses it only when the server lists it here.
	unstable := map[string]bool{"org.matrix.simplified_msc3575": true}
	if h.cfg.Encryption.PrivateRooms == config.PrivateRoomsForced {
		// How Element learns that it must not offer unencrypted private
		// rooms (Synapse's encryption_enabled_by_default_for_room_type).
		unstable["io.element.e2ee_forced.public"] = false
		unstable["io.element.e2ee_forced.private"] = true
		unstable["io.element.e2ee_forced.trusted_private"] = true
	}
	// Delayed events (homeserver/internal/calls), which Element Call
	// needs so that a vanished client leaves its calls.
	unstable["org.matrix.msc4140"] = true
	return map[string]any{"versions": specVersions, "unstable_features": unstable}, nil
}

// WellKnownClient is GET /.well-known/matrix/client.
func (h *Handlers) WellKnownClient(r *http.Request) (any, error) {
	body := map[string]any{"m.homeserver": map[string]string{"base_url": h.cfg.PublicBaseURL}}
	if len(h.cfg.Calls.RTCTransports) > 0 {
		// Element Call's LiveKit services (MSC4143).
		body["org.matrix.msc4143.rtc_foci"] = calls.Transports(&h.cfg.Calls)
	}
	return body, nil
}

// WellKnownServer is GET /.well-known/matrix/server: delegation of
// federation, 404 when not configured (servers then use port 8448).
func (h *Handlers) WellKnownServer(r *http.Request) (any, error) {
	if h.cfg.WellKnownServer == "" {
		return nil, httputil.NotFound("no server delegation configured")
	}
	return map[string]string{"m.server": h.cfg.WellKnownServer}, nil
}

// roomVersions are the room versions this server can join and create.
var roomVersions = []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"}

// Capabilities is GET /capabilities.
func (h *Handlers) Capabilities(r *http.Request) (any, error) {
	available := make(map[string]string, len(roomVersions))
	for _, v := range roomVersions {
		available[v] = "stable"
	}
	enabled := func(b bool) map[string]bool { return map[string]bool{"enabled": b} }
	return map[string]any{"capabilities": map[string]any{
		"m.change_password": enabled(true),
		"m.room_versions":   map[string]any{"default": h.global.DefaultRoomVersion, "available": available},
		"m.set_displayname": enabled(true),
		"m.set_avatar_url":  enabled(true),
		// Extended profiles (spec v1.16): every field may be set.
		"m.profile_fields":  enabled(true),
		"m.3pid_changes":    enabled(false),
		"m.get_login_token": enabled(false),
	}}, nil
}

// ThirdPartyProtocols is GET /thirdparty/protocols: no bridge registers a
// protocol yet.
func (h *Handlers) ThirdPartyProtocols(r *http.Request) (any, error) {
	return map[string]any{}, nil
}
