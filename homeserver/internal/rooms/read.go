package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/internal/events"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// Event is GET /rooms/{roomID}/event/{eventID}. A user with no view of
// the room gets 403; an event that is not there, not in this room, or
// hidden from the user by history visibility gets 404, as the spec says.
func (h *Handlers) Event(r *http.Request) (any, error) {
	ctx := r.Context()
	dev := auth.DeviceFrom(ctx)
	v, err := h.roomViewer(r)
	if err != nil {
		return nil, err
	}
	e, prev, err := h.visibleEvent(ctx, v, httputil.PathParam(r, "eventID"))
	if err != nil {
		return nil, err
	}
	f, err := h.newFormatter(ctx, dev, []events.Event{e})
	if err != nil {
		return nil, err
	}
	return f.Format(e, prev), nil
}

// visibleEvent returns an event of v's room that v's user may see (and
// the state it replaced), or 404.
func (h *Handlers) visibleEvent(ctx context.Context, v *viewer, eventID string) (events.Event, *events.Event, error) {
	notFound := httputil.NotFound("event not found")
	ev, err := h.rooms.Event(ctx, eventID)
	if errors.Is(err, api.ErrNotFound) {
		return events.Event{}, nil, notFound
	}
	if err != nil {
		return events.Event{}, nil, fmt.Errorf("read event: %w", err)
	}
	if ev.RoomID != v.roomID {
		return events.Event{}, nil, notFound
	}
	e, err := events.Parse(ev)
	if err != nil {
		return events.Event{}, nil, err
	}
	ok, prev, err := h.visible(ctx, v, e)
	if err != nil {
		return events.Event{}, nil, err
	}
	if !ok {
		return events.Event{}, nil, notFound
	}
	return e, prev, nil
}

// JoinedRooms is GET /joined_rooms.
func (h *Handlers) JoinedRooms(r *http.Request) (any, error) {
	dev := auth.DeviceFrom(r.Context())
	ids, err := h.rooms.RoomsOf(r.Context(), dev.UserID, membershipJoin)
	if err != nil {
		return nil, fmt.Errorf("list joined rooms: %w", err)
	}
	if ids == nil {
		ids = []string{}
	}
	return map[string][]string{"joined_rooms": ids}, nil
}

// Members is GET /rooms/{roomID}/members: the member events of the state
// State would show, or of the state at the ?at token (never later than
// the user's departure), filtered by membership and not_membership (the
// two together are an "or", as the spec says).
func (h *Handlers) Members(r *http.Request) (any, error) {
	ctx := r.Context()
	dev := auth.DeviceFrom(ctx)
	q := r.URL.Query()
	v, err := h.viewerOf(ctx, httputil.PathParam(r, "roomID"), dev.UserID)
	if err != nil {
		return nil, err
	}
	var state []events.Event
	if at := q.Get("at"); at != "" {
		pos, err := parseToken(at)
		if err != nil {
			return nil, err
		}
		state, err = h.membersAt(ctx, v, pos)
		if err != nil {
			return nil, err
		}
	} else if state, err = h.readableState(ctx, v, nil); err != nil {
		return nil, err
	}
	only, not := q.Get("membership"), q.Get("not_membership")
	var members []events.Event
	for _, e := range state {
		if e.Type != typeMember {
			continue
		}
		m := e.Membership()
		switch {
		case only != "" && not != "":
			if m != only && m == not {
				continue
			}
		case only != "" && m != only, not != "" && m == not:
			continue
		}
		members = append(members, e)
	}
	sort.Slice(members, func(i, j int) bool { return *members[i].StateKey < *members[j].StateKey })
	f, err := h.newFormatter(ctx, dev, members)
	if err != nil {
		return nil, err
	}
	return map[string][]events.Client{"chunk": f.FormatAll(members, nil)}, nil
}

// membersAt returns the room state after the last event at or before
// stream position pos, for a user allowed to see the room's state, and
// never later than the user's departure.
func (h *Handlers) membersAt(ctx context.Context, v *viewer, pos int64) ([]events.Event, error) {
	switch {
	case v.membership == membershipJoin, v.worldReadable && !v.departed():
	case v.departed():
		if pos >= v.memberEvent.StreamPos {
			return h.stateAfter(ctx, v.memberEvent, nil)
		}
	default:
		return nil, errNotInRoom()
	}
	evs, err := h.rooms.Timeline(ctx, v.roomID, pos+1, api.Backward, 1)
	if err != nil {
		return nil, fmt.Errorf("find the event at %d: %w", pos, err)
	}
	if len(evs) == 0 {
		return nil, nil
	}
	last, err := events.Parse(evs[0])
	if err != nil {
		return nil, err
	}
	return h.stateAfter(ctx, last, nil)
}

// joinedMember is one entry of /joined_members.
type joinedMember struct {
	DisplayName *string `json:"display_name,omitempty"`
	AvatarURL   *string `json:"avatar_url,omitempty"`
}

// JoinedMembers is GET /rooms/{roomID}/joined_members: only for users
// joined to the room, as the spec says.
func (h *Handlers) JoinedMembers(r *http.Request) (any, error) {
	ctx := r.Context()
	dev := auth.DeviceFrom(ctx)
	roomID := httputil.PathParam(r, "roomID")
	v, err := h.viewerOf(ctx, roomID, dev.UserID)
	if err != nil {
		return nil, err
	}
	if v.membership != membershipJoin {
		return nil, errNotInRoom()
	}
	state, err := h.currentState(ctx, roomID, nil)
	if err != nil {
		return nil, err
	}
	joined := map[string]joinedMember{}
	for _, e := range state {
		if e.Membership() != membershipJoin {
			continue
		}
		var c struct {
			DisplayName *string `json:"displayname"`
			AvatarURL   *string `json:"avatar_url"`
		}
		_ = json.Unmarshal(e.Content, &c)
		joined[*e.StateKey] = joinedMember{DisplayName: c.DisplayName, AvatarURL: c.AvatarURL}
	}
	return map[string]map[string]joinedMember{"joined": joined}, nil
}
