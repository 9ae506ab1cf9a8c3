package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/internal/events"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// History visibility: what a user may see of a room, on every read path
// (/messages, /context, /event, /state, /members). The rule for one event
// is events.Visible's; this file works out, once per request, what the
// rule needs to know of the user (viewer).

// viewer is what one user may see of one room, worked out once per
// request.
type viewer struct {
	userID string
	roomID string
	// membership is the user's current membership: "" when none, or when
	// the user has forgotten the room since leaving it.
	membership string
	// memberEvent is the user's current member event, when membership is
	// not "".
	memberEvent events.Event
	// joinedUntil is a stream position just before which the user was
	// joined: MaxInt64 while joined, the position of the membership
	// change that ended a join, 0 when no join is known. An event before
	// it is one the user "joined at some point after" (rule 3).
	//
	// Only the user's latest join is known this way (the roomserver keeps
	// no membership history per user): a user who joined, left, was
	// invited and declined counts as never joined.
	joinedUntil int64
	// worldReadable says the room's current history visibility is
	// world_readable, which opens the room to anyone.
	worldReadable bool
}

// viewerOf works out what userID may see of roomID. A room the server does
// not know is 403, like a room the user was never in.
func (h *Handlers) viewerOf(ctx context.Context, roomID, userID string) (*viewer, error) {
	membership, pos, err := h.rooms.Membership(ctx, roomID, userID)
	if errors.Is(err, api.ErrRoomNotFound) {
		return nil, errNotInRoom()
	}
	if err != nil {
		return nil, fmt.Errorf("read membership: %w", err)
	}
	v := &viewer{userID: userID, roomID: roomID, membership: membership}
	if membership == membershipLeave || membership == membershipBan {
		fpos, ok, err := h.store.ForgottenAt(ctx, userID, roomID)
		if err != nil {
			return nil, err
		}
		if ok && fpos == pos {
			v.membership = ""
		}
	}
	if v.membership != "" {
		ev, err := h.rooms.CurrentStateEvent(ctx, roomID, api.StateKey{Type: typeMember, StateKey: userID})
		if err != nil {
			return nil, fmt.Errorf("read member event: %w", err)
		}
		if v.memberEvent, err = events.Parse(ev); err != nil {
			return nil, err
		}
		if v.membership == membershipJoin {
			v.joinedUntil = math.MaxInt64
		} else {
			before, err := h.rooms.StateEventsBefore(ctx, ev.EventID, []api.StateKey{{Type: typeMember, StateKey: userID}})
			if err != nil {
				return nil, fmt.Errorf("read membership before %s: %w", ev.EventID, err)
			}
			if len(before) == 1 && events.MembershipOf(contentOf(before[0])) == membershipJoin {
				v.joinedUntil = ev.StreamPos
			}
		}
	}
	hv, err := h.rooms.CurrentStateEvent(ctx, roomID, api.StateKey{Type: typeHistoryVisibility})
	switch {
	case err == nil:
		v.worldReadable = events.VisibilityOf(contentOf(hv)) == visWorldReadable
	case !errors.Is(err, api.ErrNotFound):
		return nil, fmt.Errorf("read history visibility: %w", err)
	}
	return v, nil
}

// roomViewer is viewerOf for the request's user and {roomID} path
// parameter, refusing (403) a user with no view of the room at all.
func (h *Handlers) roomViewer(r *http.Request) (*viewer, error) {
	v, err := h.viewerOf(r.Context(), httputil.PathParam(r, "roomID"), auth.DeviceFrom(r.Context()).UserID)
	if err != nil {
		return nil, err
	}
	if !v.inRoom() {
		return nil, errNotInRoom()
	}
	return v, nil
}

// inRoom reports whether the user may look at the room's timeline at all:
// they have a membership in it (not forgotten), or it is world readable.
// The events they see are then filtered one by one.
func (v *viewer) inRoom() bool { return v.membership != "" || v.worldReadable }

// departed reports whether the user left the room or was banned from it.
func (v *viewer) departed() bool {
	return v.membership == membershipLeave || v.membership == membershipBan
}

// contentOf returns an event's content, {} when it has none or is
// unreadable.
func contentOf(ev api.Event) json.RawMessage {
	var f struct {
		Content json.RawMessage `json:"content"`
	}
	if json.Unmarshal(ev.JSON, &f) != nil || len(f.Content) == 0 {
		return json.RawMessage("{}")
	}
	return f.Content
}

// visibleEvents keeps those of evs that v's user may see, in order, and
// returns, for each kept state event, the state event it replaced (for
// unsigned.prev_content), found with the same lookup.
func (h *Handlers) visibleEvents(ctx context.Context, v *viewer, evs []events.Event) ([]events.Event, map[string]*events.Event, error) {
	var out []events.Event
	prevs := map[string]*events.Event{}
	for _, e := range evs {
		ok, prev, err := h.visible(ctx, v, e)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			out = append(out, e)
			if prev != nil {
				prevs[e.EventID] = prev
			}
		}
	}
	return out, prevs, nil
}

// visible reports whether v's user may see e, with the state event e
// replaced when e is a state event and there was one.
func (h *Handlers) visible(ctx context.Context, v *viewer, e events.Event) (bool, *events.Event, error) {
	return events.Visible(ctx, h.rooms, v.userID, e, e.StreamPos < v.joinedUntil)
}

// The values of history_visibility, as the room API writes them.
const (
	visWorldReadable = events.VisWorldReadable
	visShared        = events.VisShared
)
