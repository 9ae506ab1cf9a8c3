package rooms

import (
	"context"
	"errors"
	"fmt"

	"github.com/matrix-gouv/homeserver/homeserver/internal/events"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// Who may see what, for the packages beside this one that serve rooms
// without owning the rules: /hierarchy (homeserver/internal/spaces) and
// /report (homeserver/internal/reports). The rules stay here, next to the
// history visibility and join rules they come from.

// MayPreview reports whether userID may see roomID's summary (name,
// topic, members count… and, for a space, its children) without being
// joined, as /hierarchy shows it. As Synapse has it: a user joined or
// invited may; so may a member of a room the join rules' allow list names
// (restricted rooms); so may anyone when the join rule is public or knock
// (or knock_restricted, from room version 10) or the history is world
// readable. False for a room this server does not know.
func (h *Handlers) MayPreview(ctx context.Context, roomID, userID string) (bool, error) {
	m, _, err := h.rooms.Membership(ctx, roomID, userID)
	if errors.Is(err, api.ErrRoomNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read membership: %w", err)
	}
	if m == membershipJoin || m == membershipInvite {
		return true, nil
	}
	version, err := h.rooms.RoomVersion(ctx, roomID)
	if err != nil {
		return false, fmt.Errorf("read room version: %w", err)
	}
	rule, allowed, err := h.joinRules(ctx, roomID)
	if err != nil {
		return false, fmt.Errorf("read join rules: %w", err)
	}
	switch {
	case rule == joinRulePublic, rule == joinRuleKnock:
		return true, nil
	case restrictedRule(version, rule):
		if rule == joinRuleKnockRestricted {
			return true, nil
		}
		ok, err := h.inAnyRoom(ctx, userID, allowed)
		if err != nil || ok {
			return ok, err
		}
	}
	hv, err := h.rooms.CurrentStateEvent(ctx, roomID, api.StateKey{Type: typeHistoryVisibility})
	switch {
	case errors.Is(err, api.ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read history visibility: %w", err)
	}
	return events.VisibilityOf(contentOf(hv)) == visWorldReadable, nil
}

// SeesEvent reports whether userID may see eventID, an event of roomID,
// under the room's history visibility: what GET /event would show them.
// False for an unknown room or event, an event of another room, and a
// user who has forgotten the room.
func (h *Handlers) SeesEvent(ctx context.Context, roomID, userID, eventID string) (bool, error) {
	v, err := h.viewerOf(ctx, roomID, userID)
	if err != nil {
		if _, internal := httputil.AsError(err); internal {
			return false, err
		}
		return false, nil
	}
	if !v.inRoom() {
		return false, nil
	}
	if _, _, err := h.visibleEvent(ctx, v, eventID); err != nil {
		if _, internal := httputil.AsError(err); internal {
			return false, err
		}
		return false, nil
	}
	return true, nil
}
