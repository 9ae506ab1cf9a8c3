package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/matrix-gouv/homeserver/homeserver/internal/events"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// Restricted joins (room versions 8 and later; knock_restricted from 10):
// a room whose join rule is restricted admits the members of the rooms its
// allow list names. The auth rules cannot check those memberships (they
// are in other rooms), so the server that makes the join event vouches for
// them: it puts in content.join_authorised_via_users_server one of its
// users who is joined to the room with the power to invite, and the auth
// rules check that user's membership and power. Without such a user the
// auth rules treat the room as invite-only. (Spec, "Restricted rooms".)

// Join rules and allow list entry types the package reads.
const (
	joinRulePublic          = "public"
	joinRuleInvite          = "invite"
	joinRuleKnock           = "knock"
	joinRuleRestricted      = "restricted"
	joinRuleKnockRestricted = "knock_restricted"

	// allowRoomMembership is the allow list entry naming a room whose
	// members may join.
	allowRoomMembership = "m.room_membership"

	// fieldAuthorisedVia is the member event content key naming the
	// user who vouches for a restricted join.
	fieldAuthorisedVia = "join_authorised_via_users_server"
)

// joinRules reads a room's current join rule ("invite" when the room has
// no m.room.join_rules event, as the auth rules treat it) and the rooms
// its allow list names (m.room_membership entries; others are ignored as
// the spec says). api.ErrRoomNotFound for an unknown room.
func (h *Handlers) joinRules(ctx context.Context, roomID string) (rule string, allowed []string, err error) {
	ev, err := h.rooms.CurrentStateEvent(ctx, roomID, api.StateKey{Type: typeJoinRules})
	if errors.Is(err, api.ErrNotFound) {
		return joinRuleInvite, nil, nil
	}
	if err != nil {
		return "", nil, err
	}
	var c struct {
		JoinRule string            `json:"join_rule"`
		Allow    []json.RawMessage `json:"allow"`
	}
	_ = json.Unmarshal(contentOf(ev), &c)
	for _, raw := range c.Allow {
		// Entries are checked one by one: a malformed one does not hide
		// the others.
		var a struct {
			Type   string `json:"type"`
			RoomID string `json:"room_id"`
		}
		if json.Unmarshal(raw, &a) == nil && a.Type == allowRoomMembership && a.RoomID != "" {
			allowed = appendUnique(allowed, a.RoomID)
		}
	}
	if c.JoinRule == "" {
		c.JoinRule = joinRuleInvite
	}
	return c.JoinRule, allowed, nil
}

// restrictedRule reports whether rule is a restricted join rule in a room
// of roomVersion: restricted from version 8, knock_restricted from 10.
// In earlier versions the rule means nothing to the auth rules, which then
// refuse the join as for an invite-only room.
func restrictedRule(roomVersion, rule string) bool {
	v, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(roomVersion))
	if err != nil || v.CheckRestrictedJoinsAllowed() != nil {
		return false
	}
	switch rule {
	case joinRuleRestricted:
		return true
	case joinRuleKnockRestricted:
		// Versions 8 and 9 have restricted joins but not this rule.
		return roomVersion != "8" && roomVersion != "9"
	}
	return false
}

// inAnyRoom reports whether userID is joined to one of rooms; rooms this
// server does not know count as not joined (they would need federation).
func (h *Handlers) inAnyRoom(ctx context.Context, userID string, rooms []string) (bool, error) {
	for _, roomID := range rooms {
		m, _, err := h.rooms.Membership(ctx, roomID, userID)
		if errors.Is(err, api.ErrRoomNotFound) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("read membership in allowed room %s: %w", roomID, err)
		}
		if m == membershipJoin {
			return true, nil
		}
	}
	return false, nil
}

// restrictedJoinVia returns the user to name in join_authorised_via_users_
// server when userID joins roomID, "" when the join needs none: the room
// is not restricted (in its version), or the user is joined or invited
// already (the auth rules then let the join through on their own). A user
// in none of the allowed rooms is refused with 403, as Synapse does; one
// who is, in a room where no local member could have invited them, with
// 400 M_UNABLE_TO_GRANT_JOIN (another server might: the spec's code for
// it). An unknown room is left to the join itself to report.
func (h *Handlers) restrictedJoinVia(ctx context.Context, roomID, userID string) (string, error) {
	current, _, err := h.rooms.Membership(ctx, roomID, userID)
	if errors.Is(err, api.ErrRoomNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read membership: %w", err)
	}
	if current == membershipJoin || current == membershipInvite {
		return "", nil
	}
	version, err := h.rooms.RoomVersion(ctx, roomID)
	if err != nil {
		return "", fmt.Errorf("read room version: %w", err)
	}
	rule, allowed, err := h.joinRules(ctx, roomID)
	if err != nil {
		return "", fmt.Errorf("read join rules: %w", err)
	}
	if !restrictedRule(version, rule) {
		return "", nil
	}
	ok, err := h.inAnyRoom(ctx, userID, allowed)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", httputil.Forbidden("you are not a member of any of the rooms whose members may join this room")
	}
	via, err := h.authorisingUser(ctx, roomID)
	if err != nil {
		return "", err
	}
	if via == "" {
		return "", httputil.Errorf(httputil.CodeUnableToGrant, "no user of this server in the room can let you in")
	}
	return via, nil
}

// authorisingUser picks the local user to vouch for a restricted join: a
// member joined to roomID with the power to invite, the most powerful
// first (the creators of a version 12 room before anyone), then by user
// id so that the choice is stable. "" when there is none.
func (h *Handlers) authorisingUser(ctx context.Context, roomID string) (string, error) {
	// Nobody's power is the room's levels with no user entry: it gives
	// the invite level and users_default.
	room, err := h.powerOf(ctx, roomID, "")
	if err != nil {
		return "", err
	}
	invite := room.levels.Invite
	candidates, err := h.creators(ctx, roomID)
	if err != nil {
		return "", err
	}
	for u, level := range room.levels.Users {
		if level >= invite {
			candidates = appendUnique(candidates, u)
		}
	}
	type choice struct {
		userID string
		p      power
	}
	var found []choice
	for _, u := range candidates {
		ok, err := h.localMember(ctx, roomID, u)
		if err != nil {
			return "", err
		}
		if !ok {
			continue
		}
		p, err := h.powerOf(ctx, roomID, u)
		if err != nil {
			return "", err
		}
		if p.atLeast(invite) {
			found = append(found, choice{u, p})
		}
	}
	if len(found) > 0 {
		sort.Slice(found, func(i, j int) bool {
			a, b := found[i].p, found[j].p
			if a.infinite != b.infinite {
				return a.infinite
			}
			if a.level != b.level {
				return a.level > b.level
			}
			return found[i].userID < found[j].userID
		})
		return found[0].userID, nil
	}
	if room.levels.UsersDefault < invite {
		return "", nil
	}
	// Everyone may invite: any local member will do.
	state, err := h.currentState(ctx, roomID, nil)
	if err != nil {
		return "", err
	}
	var members []string
	for _, e := range state {
		if e.Membership() == membershipJoin && h.isLocal(*e.StateKey) {
			members = append(members, *e.StateKey)
		}
	}
	sort.Strings(members)
	if len(members) == 0 {
		return "", nil
	}
	return members[0], nil
}

// creators returns the creators of a room whose version gives them
// unlimited power (the create event's sender and additional_creators,
// room version 12); none for other versions.
func (h *Handlers) creators(ctx context.Context, roomID string) ([]string, error) {
	ev, err := h.rooms.CurrentStateEvent(ctx, roomID, api.StateKey{Type: typeCreate})
	if err != nil {
		return nil, fmt.Errorf("read create event: %w", err)
	}
	v, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(ev.RoomVersion))
	if err != nil {
		return nil, fmt.Errorf("room version of %s: %w", roomID, err)
	}
	if !v.PrivilegedCreators() {
		return nil, nil
	}
	create, err := events.Parse(ev)
	if err != nil {
		return nil, err
	}
	var c struct {
		AdditionalCreators []string `json:"additional_creators"`
	}
	_ = json.Unmarshal(create.Content, &c)
	return appendUnique([]string{create.Sender}, c.AdditionalCreators...), nil
}

// localMember reports whether userID is a user of this server joined to
// roomID.
func (h *Handlers) localMember(ctx context.Context, roomID, userID string) (bool, error) {
	if !h.isLocal(userID) {
		return false, nil
	}
	m, _, err := h.rooms.Membership(ctx, roomID, userID)
	if err != nil {
		return false, fmt.Errorf("read membership: %w", err)
	}
	return m == membershipJoin, nil
}

// isLocal reports whether userID is a valid user id of this server.
func (h *Handlers) isLocal(userID string) bool {
	u, err := spec.NewUserID(userID, true)
	return err == nil && string(u.Domain()) == h.global.ServerName
}
