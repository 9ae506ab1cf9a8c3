package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/internal/events"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// Room upgrades: POST /rooms/{roomId}/upgrade replaces a room by a new one
// of another version, following the spec's server behaviour:
//
//  1. the user must have the power to send m.room.tombstone;
//  2. the new room is created (one CreateRoom: all of it or nothing) with
//     predecessor and the old room's type in its create event;
//  3. with copies of the transferable state (and the bans, as Synapse
//     does): name, topic, avatar, join rules, history visibility, guest
//     access, encryption, server ACLs, power levels, a space's children;
//  4. the local aliases move to the new room, and the room's place in the
//     public directory too (the directory's MoveRoom);
//  5. m.room.tombstone is sent in the old room;
//  6. the old room's power levels are raised so that only moderators may
//     still talk or invite (events_default and invite at least
//     max(50, users_default+1)), and its canonical alias loses the local
//     aliases, which the new room's now names.
//
// Steps 4 to 6 come after the new room exists: a failure there leaves the
// new room in place (and is reported), as with Synapse. Steps of 6 that
// the user lacks the power for are skipped, as Synapse does.

// Event types the upgrade reads or writes.
const (
	typeTombstone      = "m.room.tombstone"
	typeCanonicalAlias = "m.room.canonical_alias"
	typeSpaceChild     = "m.space.child"
	roomTypeSpace      = "m.space"
)

// transferable are the state events (state key "") an upgrade copies as
// they are: the spec's recommended list, less m.room.power_levels, which
// needs more care (upgradePowerLevels).
var transferable = []string{
	"m.room.server_acl",
	"m.room.encryption",
	typeName,
	"m.room.avatar",
	typeTopic,
	typeGuestAccess,
	typeHistoryVisibility,
	typeJoinRules,
}

// restrictedLevel is the least power the old room asks, after an upgrade,
// to send events and to invite (the spec's example, Synapse's value).
const restrictedLevel = 50

// tombstoneBody is the body of the tombstone an upgrade sends.
const tombstoneBody = "This room has been replaced"

// upgradeRequest is the body of POST /upgrade.
type upgradeRequest struct {
	NewVersion string `json:"new_version"`
	// AdditionalCreators are the new room's additional creators, for
	// versions that have them (12 on); ignored for others. Those of the
	// old room are not carried over: the spec wants them named again.
	AdditionalCreators []string `json:"additional_creators"`
}

// Upgrade is POST /rooms/{roomID}/upgrade: see the top of this file. An
// unknown room is 404, a user not joined or without the power to send
// m.room.tombstone 403, a room version this server does not run 400
// M_UNSUPPORTED_ROOM_VERSION.
func (h *Handlers) Upgrade(r *http.Request) (any, error) {
	ctx := r.Context()
	dev := auth.DeviceFrom(ctx)
	roomID := httputil.PathParam(r, "roomID")
	var req upgradeRequest
	if err := h.decode(r, &req); err != nil {
		return nil, err
	}
	if req.NewVersion == "" {
		return nil, httputil.MissingParam("new_version is required")
	}
	v, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(req.NewVersion))
	if err != nil || !v.Stable() {
		return nil, httputil.Errorf(httputil.CodeUnsupportedRoom, "room version %q is not supported", req.NewVersion)
	}
	membership, err := h.currentMembership(ctx, roomID, dev.UserID)
	if err != nil {
		return nil, err
	}
	if membership != membershipJoin {
		return nil, errNotInRoom()
	}
	p, err := h.powerOf(ctx, roomID, dev.UserID)
	if err != nil {
		return nil, err
	}
	if !p.infinite && p.level < p.levels.EventLevel(typeTombstone, true) {
		return nil, httputil.Forbidden("you do not have the power to upgrade this room")
	}

	cr, err := h.buildReplacement(ctx, roomID, dev.UserID, p, v, req)
	if err != nil {
		return nil, err
	}
	newRoomID, _, err := h.rooms.CreateRoom(ctx, cr)
	if err != nil {
		return nil, writeError("create replacement room", err, httputil.NotFound("room not found"))
	}

	if h.dir != nil {
		if err := h.dir.MoveRoom(ctx, roomID, newRoomID, dev.UserID); err != nil {
			return nil, fmt.Errorf("move aliases to %s: %w", newRoomID, err)
		}
	}
	tombstone, err := json.Marshal(map[string]string{"body": tombstoneBody, "replacement_room": newRoomID})
	if err != nil {
		return nil, fmt.Errorf("encode tombstone: %w", err)
	}
	if _, err := h.send(ctx, roomID, api.ProtoEvent{Type: typeTombstone, StateKey: stateKeyPtr(""), Sender: dev.UserID, Content: tombstone}); err != nil {
		return nil, err
	}
	if err := h.restrictOldRoom(ctx, roomID, dev.UserID); err != nil {
		return nil, err
	}
	return map[string]string{"replacement_room": newRoomID}, nil
}

// buildReplacement builds the creation of roomID's replacement of version
// v by creator, whose power in the old room is p: createRoom's building
// (buildCreateRoom) fed with the old room's transferable state as
// initial_state, and the bans (and, when the creator's power had to be
// raised for the copy, the old power levels) after.
func (h *Handlers) buildReplacement(ctx context.Context, roomID, creator string, p power, v gomatrixserverlib.IRoomVersion, req upgradeRequest) (api.CreateRoomRequest, error) {
	state, err := h.currentState(ctx, roomID, nil)
	if err != nil {
		return api.CreateRoomRequest{}, err
	}
	byKey := make(map[api.StateKey]events.Event, len(state))
	for _, e := range state {
		byKey[e.Key()] = e
	}

	creation, err := h.replacementCreateContent(ctx, roomID, byKey[api.StateKey{Type: typeCreate}], v, req)
	if err != nil {
		return api.CreateRoomRequest{}, err
	}
	var initial []initialStateEvent
	for _, typ := range transferable {
		if e, ok := byKey[api.StateKey{Type: typ}]; ok {
			initial = append(initial, initialStateEvent{Type: typ, Content: e.Content})
		}
	}
	if roomType(byKey) == roomTypeSpace {
		for _, e := range state {
			if e.Type == typeSpaceChild && e.IsState() {
				initial = append(initial, initialStateEvent{Type: typeSpaceChild, StateKey: *e.StateKey, Content: e.Content})
			}
		}
	}
	if alias, ok := byKey[api.StateKey{Type: typeCanonicalAlias}]; ok {
		if local, _ := h.splitCanonicalAlias(alias.Content); local != nil {
			initial = append(initial, initialStateEvent{Type: typeCanonicalAlias, Content: local})
		}
	}
	var finalLevels json.RawMessage
	if pl, ok := byKey[api.StateKey{Type: typePowerLevels}]; ok {
		var first json.RawMessage
		first, finalLevels, err = h.upgradePowerLevels(ctx, roomID, creator, p, v, pl.Content)
		if err != nil {
			return api.CreateRoomRequest{}, err
		}
		initial = append(initial, initialStateEvent{Type: typePowerLevels, Content: first})
	}

	cr, err := h.buildCreateRoom(creator, createRoomRequest{RoomVersion: req.NewVersion, CreationContent: creation, InitialState: initial}, "")
	if err != nil {
		return api.CreateRoomRequest{}, err
	}
	for _, e := range state {
		if e.Membership() != membershipBan {
			continue
		}
		var old struct {
			Reason string `json:"reason"`
		}
		_ = json.Unmarshal(e.Content, &old)
		raw, err := json.Marshal(memberContent(membershipBan, old.Reason))
		if err != nil {
			return api.CreateRoomRequest{}, fmt.Errorf("encode ban: %w", err)
		}
		cr.Events = append(cr.Events, api.ProtoEvent{Type: typeMember, StateKey: stateKeyPtr(*e.StateKey), Sender: creator, Content: raw})
	}
	if finalLevels != nil {
		cr.Events = append(cr.Events, api.ProtoEvent{Type: typePowerLevels, StateKey: stateKeyPtr(""), Sender: creator, Content: finalLevels})
	}
	return cr, nil
}

// replacementCreateContent is the creation content of the replacement
// room: predecessor (with the old room's last event before versions with
// room ids derived from the create event, where the spec lets it be left
// out: the tombstone's own id cannot be known before the new room's), the
// old room's type and m.federate, and the additional creators asked for.
func (h *Handlers) replacementCreateContent(ctx context.Context, roomID string, oldCreate events.Event, v gomatrixserverlib.IRoomVersion, req upgradeRequest) (map[string]json.RawMessage, error) {
	predecessor := map[string]string{"room_id": roomID}
	if !v.DomainlessRoomIDs() {
		last, err := h.rooms.Timeline(ctx, roomID, api.TimelineEnd, api.Backward, 1)
		if err != nil {
			return nil, fmt.Errorf("read the last event of %s: %w", roomID, err)
		}
		if len(last) > 0 {
			predecessor["event_id"] = last[0].EventID
		}
	}
	out := map[string]json.RawMessage{}
	raw, err := json.Marshal(predecessor)
	if err != nil {
		return nil, fmt.Errorf("encode predecessor: %w", err)
	}
	out["predecessor"] = raw
	var old map[string]json.RawMessage
	_ = json.Unmarshal(oldCreate.Content, &old)
	for _, k := range []string{"type", "m.federate"} {
		if val, ok := old[k]; ok {
			out[k] = val
		}
	}
	if v.PrivilegedCreators() && len(req.AdditionalCreators) > 0 {
		raw, err := json.Marshal(req.AdditionalCreators)
		if err != nil {
			return nil, fmt.Errorf("encode additional creators: %w", err)
		}
		out["additional_creators"] = raw
	}
	return out, nil
}

// roomType returns the type in a room's create event, "" for none.
func roomType(byKey map[api.StateKey]events.Event) string {
	var c struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(byKey[api.StateKey{Type: typeCreate}].Content, &c)
	return c.Type
}

// upgradePowerLevels returns the power levels the replacement room starts
// with (first) and, when they differ, those it must end with (final).
//
// They are the old room's. From room version 12 the creators have
// unlimited power and must not be listed (buildCreateRoom removes them);
// before, the creator keeps its old level, raised while the room is built
// to the most any state event or ban needs (as Synapse does), so that the
// copy cannot fail for want of power: first has the raised level and
// final the old one. A creator of a version 12 room moving to an earlier
// version keeps 100, or what the copy needs if more.
func (h *Handlers) upgradePowerLevels(ctx context.Context, roomID, creator string, p power, v gomatrixserverlib.IRoomVersion, old json.RawMessage) (first, final json.RawMessage, err error) {
	if v.PrivilegedCreators() {
		return old, nil, nil
	}
	var content map[string]json.RawMessage
	if err := json.Unmarshal(old, &content); err != nil {
		return nil, nil, httputil.BadJSON("the room's power levels are not an object")
	}
	var users map[string]json.RawMessage
	if raw, ok := content["users"]; ok {
		if err := json.Unmarshal(raw, &users); err != nil {
			return nil, nil, httputil.BadJSON("the room's power levels users are not an object")
		}
	}
	if users == nil {
		users = map[string]json.RawMessage{}
	}
	// The room's levels, as nobody sees them: p.levels is empty when the
	// creator's power is unlimited.
	room, err := h.powerOf(ctx, roomID, "")
	if err != nil {
		return nil, nil, err
	}
	needed := max(room.levels.StateDefault, room.levels.Ban)
	for _, level := range room.levels.Events {
		needed = max(needed, level)
	}
	withUser := func(level int64) (json.RawMessage, error) {
		u := make(map[string]json.RawMessage, len(users)+1)
		for k, val := range users {
			u[k] = val
		}
		u[creator] = json.RawMessage(fmt.Sprint(level))
		rawUsers, err := json.Marshal(u)
		if err != nil {
			return nil, err
		}
		c := make(map[string]json.RawMessage, len(content))
		for k, val := range content {
			c[k] = val
		}
		c["users"] = rawUsers
		return json.Marshal(c)
	}
	if p.infinite {
		first, err = withUser(max(100, needed))
		return first, nil, err
	}
	if p.level >= needed {
		return old, nil, nil
	}
	first, err = withUser(needed)
	return first, old, err
}

// splitCanonicalAlias splits an m.room.canonical_alias content between
// this server's aliases, which move to the replacement room (local, nil
// when none), and the rest, which stay (rest: the content without the
// local aliases).
func (h *Handlers) splitCanonicalAlias(content json.RawMessage) (local, rest json.RawMessage) {
	var c map[string]json.RawMessage
	if json.Unmarshal(content, &c) != nil {
		return nil, content
	}
	var alias string
	var alt []string
	_ = json.Unmarshal(c["alias"], &alias)
	_ = json.Unmarshal(c["alt_aliases"], &alt)
	moved := map[string]any{}
	if alias != "" && h.isLocalAlias(alias) {
		moved["alias"] = alias
		delete(c, "alias")
	}
	var keep, move []string
	for _, a := range alt {
		if h.isLocalAlias(a) {
			move = append(move, a)
		} else {
			keep = append(keep, a)
		}
	}
	if len(move) > 0 {
		moved["alt_aliases"] = move
		if len(keep) > 0 {
			c["alt_aliases"], _ = json.Marshal(keep)
		} else {
			delete(c, "alt_aliases")
		}
	}
	if len(moved) == 0 {
		return nil, content
	}
	local, _ = json.Marshal(moved)
	rest, _ = json.Marshal(c)
	return local, rest
}

// isLocalAlias reports whether alias is one of this server's.
func (h *Handlers) isLocalAlias(alias string) bool {
	return strings.HasPrefix(alias, "#") && strings.HasSuffix(alias, ":"+h.global.ServerName)
}

// restrictOldRoom raises the old room's power levels so that only
// moderators may still send events or invite, and takes the local aliases
// (now the new room's) out of its canonical alias. Each change the user
// lacks the power for is skipped.
func (h *Handlers) restrictOldRoom(ctx context.Context, roomID, sender string) error {
	plEv, err := h.rooms.CurrentStateEvent(ctx, roomID, api.StateKey{Type: typePowerLevels})
	switch {
	case errors.Is(err, api.ErrNotFound):
	case err != nil:
		return fmt.Errorf("read power levels: %w", err)
	default:
		room, err := h.powerOf(ctx, roomID, "")
		if err != nil {
			return err
		}
		var content map[string]json.RawMessage
		if err := json.Unmarshal(contentOf(plEv), &content); err != nil {
			return fmt.Errorf("parse power levels of %s: %w", roomID, err)
		}
		level := max(int64(restrictedLevel), room.levels.UsersDefault+1)
		changed := false
		for key, current := range map[string]int64{"events_default": room.levels.EventsDefault, "invite": room.levels.Invite} {
			if current < level {
				content[key] = json.RawMessage(fmt.Sprint(level))
				changed = true
			}
		}
		if changed {
			if err := h.sendBestEffort(ctx, roomID, sender, typePowerLevels, content); err != nil {
				return err
			}
		}
	}
	aliasEv, err := h.rooms.CurrentStateEvent(ctx, roomID, api.StateKey{Type: typeCanonicalAlias})
	switch {
	case errors.Is(err, api.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("read canonical alias: %w", err)
	}
	local, rest := h.splitCanonicalAlias(contentOf(aliasEv))
	if local == nil {
		return nil
	}
	return h.sendBestEffort(ctx, roomID, sender, typeCanonicalAlias, rest)
}

// sendBestEffort sends a state event (state key "") that the auth rules
// may refuse without harm: a refusal is not an error.
func (h *Handlers) sendBestEffort(ctx context.Context, roomID, sender, typ string, content any) error {
	raw, err := json.Marshal(content)
	if err != nil {
		return fmt.Errorf("encode %s: %w", typ, err)
	}
	_, err = h.rooms.Send(ctx, roomID, api.ProtoEvent{Type: typ, StateKey: stateKeyPtr(""), Sender: sender, Content: raw})
	var na *api.NotAllowedError
	if errors.As(err, &na) {
		return nil
	}
	return writeError("send "+typ, err, errNotInRoom())
}
