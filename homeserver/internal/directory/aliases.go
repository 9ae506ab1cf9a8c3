package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"

	fedapi "github.com/matrix-gouv/homeserver/federation/api"
	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// maxAliasBytes is the spec's limit on the length of a room alias.
const maxAliasBytes = 255

// parseAlias checks a room alias's grammar (the spec's appendix):
// "#", a non-empty localpart without ":" or NUL, ":", a server name; at
// most 255 bytes. It returns the server name; an invalid alias is 400
// M_INVALID_PARAM.
func parseAlias(alias string) (spec.ServerName, error) {
	if len(alias) > maxAliasBytes {
		return "", httputil.InvalidParam("room alias is longer than %d bytes", maxAliasBytes)
	}
	local, server, ok := strings.Cut(strings.TrimPrefix(alias, "#"), ":")
	if !ok || !strings.HasPrefix(alias, "#") || local == "" || strings.ContainsRune(local, 0) {
		return "", httputil.InvalidParam("%q is not a valid room alias", alias)
	}
	if _, _, valid := spec.ParseAndValidateServerName(spec.ServerName(server)); !valid {
		return "", httputil.InvalidParam("%q is not a valid room alias: bad server name", alias)
	}
	return spec.ServerName(server), nil
}

// localAlias parses an alias that must be on this server: 400
// M_INVALID_PARAM for an invalid or another server's alias.
func (h *Handlers) localAlias(alias string) error {
	server, err := parseAlias(alias)
	if err != nil {
		return err
	}
	if server != h.serverName {
		return httputil.InvalidParam("room alias must be on this server (%s)", h.serverName)
	}
	return nil
}

// aliasNotFound is the answer for an alias that points nowhere.
func aliasNotFound(alias string) error {
	return httputil.NotFound("room alias %s not found", alias)
}

// SetAlias is PUT /directory/room/{roomAlias}: points a new alias of this
// server at a room the user is joined to (or any known room, for a server
// admin). A taken alias is 409 M_UNKNOWN, as the spec says.
func (h *Handlers) SetAlias(r *http.Request) (any, error) {
	ctx, dev := r.Context(), auth.DeviceFrom(r.Context())
	alias := httputil.PathParam(r, "roomAlias")
	if err := h.localAlias(alias); err != nil {
		return nil, err
	}
	var req struct {
		RoomID string `json:"room_id"`
	}
	if err := httputil.DecodeJSON(r, h.cfg.MaxRequestBytes, &req); err != nil {
		return nil, err
	}
	if req.RoomID == "" {
		return nil, httputil.MissingParam("room_id is required")
	}
	if _, err := spec.NewRoomID(req.RoomID); err != nil {
		return nil, httputil.InvalidParam("room_id is not a valid room id")
	}
	if err := h.checkAliasNotReserved(ctx, alias); err != nil {
		return nil, err
	}
	membership, _, err := h.rooms.Membership(ctx, req.RoomID, dev.UserID)
	if errors.Is(err, api.ErrRoomNotFound) {
		return nil, httputil.NotFound("unknown room %s", req.RoomID)
	}
	if err != nil {
		return nil, fmt.Errorf("read membership: %w", err)
	}
	if membership != membershipJoin && !dev.IsAdmin {
		return nil, httputil.Forbidden("you are not in this room")
	}
	err = h.rooms.SetAlias(ctx, alias, req.RoomID, dev.UserID)
	switch {
	case errors.Is(err, api.ErrAliasExists):
		return nil, httputil.Errorf(httputil.CodeUnknown, "Room alias already exists").WithStatus(http.StatusConflict)
	case errors.Is(err, api.ErrRoomNotFound):
		return nil, httputil.NotFound("unknown room %s", req.RoomID)
	case err != nil:
		return nil, fmt.Errorf("set alias: %w", err)
	}
	return struct{}{}, nil
}

// checkAliasNotReserved refuses (400 M_EXCLUSIVE) an alias of an
// application service's exclusive alias namespace to anyone but that
// application service (ctx carries the requester).
func (h *Handlers) checkAliasNotReserved(ctx context.Context, alias string) error {
	if h.appServices == nil {
		return nil
	}
	if owner := h.appServices.ExclusiveAliasOwner(alias); owner != nil && owner.ID != auth.DeviceFrom(ctx).AppServiceID {
		return httputil.Errorf(httputil.CodeExclusive, "room alias is reserved by an application service")
	}
	return nil
}

// GetAlias is GET /directory/room/{roomAlias}, open to anyone: the room an
// alias points to and the servers to join it through; another server's
// alias is asked of that server.
func (h *Handlers) GetAlias(r *http.Request) (any, error) {
	roomID, servers, err := h.ResolveRoomAlias(r.Context(), httputil.PathParam(r, "roomAlias"))
	if err != nil {
		return nil, err
	}
	return map[string]any{"room_id": roomID, "servers": servers}, nil
}

// DeleteAlias is DELETE /directory/room/{roomAlias}: allowed to the
// alias's creator, to a member with power to send m.room.canonical_alias
// in its room, and to server admins. The room's m.room.canonical_alias
// event is left as it is (the spec allows servers to update it; clients
// such as Element do it themselves).
func (h *Handlers) DeleteAlias(r *http.Request) (any, error) {
	ctx, dev := r.Context(), auth.DeviceFrom(r.Context())
	alias := httputil.PathParam(r, "roomAlias")
	if err := h.localAlias(alias); err != nil {
		return nil, err
	}
	a, err := h.rooms.ResolveAlias(ctx, alias)
	if errors.Is(err, api.ErrNotFound) {
		return nil, aliasNotFound(alias)
	}
	if err != nil {
		return nil, fmt.Errorf("resolve alias: %w", err)
	}
	if a.Creator != dev.UserID && !dev.IsAdmin {
		ok, err := h.canSendCanonicalAlias(ctx, a.RoomID, dev.UserID)
		if err != nil && !errors.Is(err, api.ErrRoomNotFound) {
			return nil, fmt.Errorf("check power: %w", err)
		}
		if !ok {
			return nil, httputil.Forbidden("you may not delete this alias")
		}
	}
	// What was checked is what is deleted: an alias recreated meanwhile
	// is not found.
	if err := h.rooms.DeleteAlias(ctx, a); errors.Is(err, api.ErrNotFound) {
		return nil, aliasNotFound(alias)
	} else if err != nil {
		return nil, fmt.Errorf("delete alias: %w", err)
	}
	return struct{}{}, nil
}

// RoomAliases is GET /rooms/{roomId}/aliases: this server's aliases of a
// room, for its members or anyone when the room is world readable. Others
// (and unknown rooms, so that room ids cannot be probed) get 403.
func (h *Handlers) RoomAliases(r *http.Request) (any, error) {
	ctx, dev := r.Context(), auth.DeviceFrom(r.Context())
	roomID := httputil.PathParam(r, "roomID")
	membership, _, err := h.rooms.Membership(ctx, roomID, dev.UserID)
	if errors.Is(err, api.ErrRoomNotFound) {
		return nil, httputil.Forbidden("you are not in this room")
	}
	if err != nil {
		return nil, fmt.Errorf("read membership: %w", err)
	}
	if membership != membershipJoin {
		_, content, err := h.eventContent(ctx, roomID, typeHistoryVisibility)
		if err != nil {
			return nil, err
		}
		var hv struct {
			HistoryVisibility string `json:"history_visibility"`
		}
		_ = json.Unmarshal(content, &hv)
		if hv.HistoryVisibility != "world_readable" {
			return nil, httputil.Forbidden("you are not in this room")
		}
	}
	aliases, err := h.rooms.AliasesOf(ctx, roomID)
	if err != nil {
		return nil, fmt.Errorf("list aliases: %w", err)
	}
	if aliases == nil {
		aliases = []string{}
	}
	return map[string]any{"aliases": aliases}, nil
}

// CheckCanonicalAlias checks an m.room.canonical_alias event's content
// before it is sent to roomID, as the spec asks of PUT /state: every alias
// it adds (alias and alt_aliases not already in the room's current event)
// must be a valid alias (else 400 M_INVALID_PARAM) that points to the room
// (else 400 M_BAD_ALIAS). Aliases of other servers cannot be checked
// without federation and are refused with M_BAD_ALIAS. Content of the wrong
// shape is 400 M_BAD_JSON. The state endpoint calls it before sending.
func (h *Handlers) CheckCanonicalAlias(ctx context.Context, roomID string, content json.RawMessage) error {
	next, err := canonicalAliases(content)
	if err != nil {
		return httputil.BadJSON("m.room.canonical_alias: %v", err)
	}
	_, current, err := h.eventContent(ctx, roomID, typeCanonicalAlias)
	if err != nil && !errors.Is(err, api.ErrRoomNotFound) {
		return err
	}
	// An invalid current event (sent before the check) validates nothing.
	old, _ := canonicalAliases(current)
	known := map[string]bool{}
	for _, a := range old {
		known[a] = true
	}
	for _, alias := range next {
		if known[alias] {
			continue
		}
		server, err := parseAlias(alias)
		if err != nil {
			return err
		}
		if server != h.serverName {
			return httputil.Errorf(httputil.CodeBadAlias, "cannot check alias %s of another server", alias)
		}
		a, err := h.rooms.ResolveAlias(ctx, alias)
		if errors.Is(err, api.ErrNotFound) {
			return httputil.Errorf(httputil.CodeBadAlias, "room alias %s does not exist", alias)
		}
		if err != nil {
			return fmt.Errorf("resolve alias: %w", err)
		}
		if a.RoomID != roomID {
			return httputil.Errorf(httputil.CodeBadAlias, "room alias %s points to another room", alias)
		}
	}
	return nil
}

// canonicalAliases returns the aliases an m.room.canonical_alias content
// names (alias, then alt_aliases), or why the content is malformed.
// Empty content names none.
func canonicalAliases(content json.RawMessage) ([]string, error) {
	if len(content) == 0 {
		return nil, nil
	}
	var c struct {
		Alias      *string   `json:"alias"`
		AltAliases *[]string `json:"alt_aliases"`
	}
	if err := json.Unmarshal(content, &c); err != nil {
		return nil, errors.New("alias must be a string and alt_aliases a list of strings")
	}
	var out []string
	if c.Alias != nil && *c.Alias != "" {
		out = append(out, *c.Alias)
	}
	if c.AltAliases != nil {
		out = append(out, *c.AltAliases...)
	}
	return out, nil
}

// ResolveRoomAlias resolves a room alias for the endpoints that take one
// (GET /directory/room, POST /join/{alias}, room_summary): the room id and the servers
// to join it through. 400 M_INVALID_PARAM for an invalid alias, 404
// M_NOT_FOUND for an unknown one; another server's is asked of that
// server (403 when this one does not federate with it, 502 when it does
// not answer).
func (h *Handlers) ResolveRoomAlias(ctx context.Context, alias string) (string, []string, error) {
	server, err := parseAlias(alias)
	if err != nil {
		return "", nil, err
	}
	if server != h.serverName {
		return h.remoteAlias(ctx, alias)
	}
	roomID, err := h.resolveLocalAlias(ctx, alias)
	if err != nil {
		return "", nil, err
	}
	return roomID, []string{string(h.serverName)}, nil
}

// remoteAlias asks another server about one of its aliases.
func (h *Handlers) remoteAlias(ctx context.Context, alias string) (string, []string, error) {
	if h.remote == nil {
		return "", nil, aliasNotFound(alias)
	}
	a, err := h.remote.QueryRoomAlias(ctx, alias)
	switch {
	case errors.Is(err, fedapi.ErrNotFound):
		return "", nil, aliasNotFound(alias)
	case errors.Is(err, fedapi.ErrNoServer):
		return "", nil, httputil.Forbidden("this server does not federate with the server of %s", alias)
	case errors.Is(err, fedapi.ErrRefused):
		return "", nil, httputil.Forbidden("%v", err)
	case err != nil:
		h.log.WithError(err).Info("resolve a room alias over federation")
		return "", nil, httputil.Errorf(httputil.CodeUnknown, "the server of %s did not answer", alias).WithStatus(http.StatusBadGateway)
	}
	return a.RoomID, a.Servers, nil
}

// resolveLocalAlias resolves one of this server's aliases, asking the
// bridges about one in their namespaces that it does not know.
func (h *Handlers) resolveLocalAlias(ctx context.Context, alias string) (string, error) {
	a, err := h.rooms.ResolveAlias(ctx, alias)
	if errors.Is(err, api.ErrNotFound) && h.bridges != nil {
		// An alias in a bridge's namespace may exist once the bridge
		// is asked (it then creates the room and the alias).
		var made bool
		if made, err = h.bridges.QueryAlias(ctx, alias); err != nil {
			return "", fmt.Errorf("query application services: %w", err)
		}
		err = api.ErrNotFound
		if made {
			a, err = h.rooms.ResolveAlias(ctx, alias)
		}
	}
	if errors.Is(err, api.ErrNotFound) {
		return "", aliasNotFound(alias)
	}
	if err != nil {
		return "", fmt.Errorf("resolve alias: %w", err)
	}
	return a.RoomID, nil
}
