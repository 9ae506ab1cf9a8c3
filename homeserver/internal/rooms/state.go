package rooms

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/internal/events"
	"github.com/matrix-gouv/homeserver/internal/httputil"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// PutState is PUT /rooms/{roomID}/state/{eventType}/{stateKey}, the state
// key possibly empty (also served without the trailing key). Setting the
// state to what it is already (same sender, same content) sends nothing
// and answers with the current event, as Synapse does.
func (h *Handlers) PutState(r *http.Request) (any, error) {
	ctx := r.Context()
	dev := auth.DeviceFrom(ctx)
	roomID := httputil.PathParam(r, "roomID")
	key := api.StateKey{Type: httputil.PathParam(r, "eventType"), StateKey: httputil.PathParam(r, "stateKey")}
	content, err := h.readContent(r)
	if err != nil {
		return nil, err
	}
	if key.Type == "m.room.canonical_alias" && key.StateKey == "" && h.dir != nil {
		if err := h.dir.CheckCanonicalAlias(ctx, roomID, content); err != nil {
			return nil, err
		}
	}
	if id, err := h.unchangedState(ctx, roomID, dev.UserID, key, content); err != nil || id != "" {
		if err != nil {
			return nil, err
		}
		return sendResponse{EventID: id}, nil
	}
	out, err := h.send(ctx, roomID, api.ProtoEvent{Type: key.Type, StateKey: stateKeyPtr(key.StateKey), Sender: dev.UserID, Content: content})
	if err != nil {
		return nil, err
	}
	return sendResponse{EventID: out.EventID}, nil
}

// unchangedState returns the id of the current state event at key when
// sender, a joined member, sent it with this content; "" otherwise.
func (h *Handlers) unchangedState(ctx context.Context, roomID, sender string, key api.StateKey, content []byte) (string, error) {
	cur, err := h.rooms.CurrentStateEvent(ctx, roomID, key)
	if errors.Is(err, api.ErrNotFound) || errors.Is(err, api.ErrRoomNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read current state: %w", err)
	}
	e, err := events.Parse(cur)
	if err != nil || e.Sender != sender || !sameJSON(e.Content, content) {
		return "", err
	}
	// Only a member learns that the state is already so.
	m, _, err := h.rooms.Membership(ctx, roomID, sender)
	if err != nil {
		return "", fmt.Errorf("read membership: %w", err)
	}
	if m != membershipJoin {
		return "", nil
	}
	return e.EventID, nil
}

// State is GET /rooms/{roomID}/state: the current state for a member or
// anyone in a world-readable room, the state when they left for a user
// who left or was banned (as Synapse does), 403 for anyone else.
func (h *Handlers) State(r *http.Request) (any, error) {
	ctx := r.Context()
	dev := auth.DeviceFrom(ctx)
	v, err := h.viewerOf(ctx, httputil.PathParam(r, "roomID"), dev.UserID)
	if err != nil {
		return nil, err
	}
	evs, err := h.readableState(ctx, v, nil)
	if err != nil {
		return nil, err
	}
	f, err := h.newFormatter(ctx, dev, evs)
	if err != nil {
		return nil, err
	}
	return f.FormatAll(evs, nil), nil
}

// StateEvent is GET /rooms/{roomID}/state/{eventType}/{stateKey}: the
// content of one state event, or with ?format=event the whole event, from
// the state State would show.
func (h *Handlers) StateEvent(r *http.Request) (any, error) {
	ctx := r.Context()
	dev := auth.DeviceFrom(ctx)
	v, err := h.viewerOf(ctx, httputil.PathParam(r, "roomID"), dev.UserID)
	if err != nil {
		return nil, err
	}
	key := api.StateKey{Type: httputil.PathParam(r, "eventType"), StateKey: httputil.PathParam(r, "stateKey")}
	evs, err := h.readableState(ctx, v, []api.StateKey{key})
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 {
		return nil, httputil.NotFound("no such state event")
	}
	if r.URL.Query().Get("format") == "event" {
		f, err := h.newFormatter(ctx, dev, evs)
		if err != nil {
			return nil, err
		}
		return f.Format(evs[0], nil), nil
	}
	return evs[0].Content, nil
}

// readableState returns the state v's user may read (all of it when keys
// is nil, else those keys that are set): see State.
func (h *Handlers) readableState(ctx context.Context, v *viewer, keys []api.StateKey) ([]events.Event, error) {
	switch {
	case v.membership == membershipJoin, v.worldReadable && !v.departed():
		return h.currentState(ctx, v.roomID, keys)
	case v.departed():
		return h.stateAfter(ctx, v.memberEvent, keys)
	}
	return nil, errNotInRoom()
}

// currentState returns the room's current state, all of it (keys nil) or
// the keys that are set.
func (h *Handlers) currentState(ctx context.Context, roomID string, keys []api.StateKey) ([]events.Event, error) {
	if keys == nil {
		evs, err := h.rooms.CurrentState(ctx, roomID)
		if errors.Is(err, api.ErrRoomNotFound) {
			return nil, errNotInRoom()
		}
		if err != nil {
			return nil, fmt.Errorf("read current state: %w", err)
		}
		return events.ParseAll(evs)
	}
	var out []events.Event
	for _, k := range keys {
		ev, err := h.rooms.CurrentStateEvent(ctx, roomID, k)
		if errors.Is(err, api.ErrNotFound) {
			continue
		}
		if errors.Is(err, api.ErrRoomNotFound) {
			return nil, errNotInRoom()
		}
		if err != nil {
			return nil, fmt.Errorf("read current state: %w", err)
		}
		e, err := events.Parse(ev)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// stateAfter returns the room state just after ev (the state before it,
// with ev in its place when it is a state event), all of it (keys nil)
// or the keys that are set.
func (h *Handlers) stateAfter(ctx context.Context, ev events.Event, keys []api.StateKey) ([]events.Event, error) {
	var raw []api.Event
	var err error
	if keys == nil {
		raw, err = h.rooms.StateBefore(ctx, ev.EventID)
	} else {
		raw, err = h.rooms.StateEventsBefore(ctx, ev.EventID, keys)
	}
	if err != nil {
		return nil, fmt.Errorf("read state before %s: %w", ev.EventID, err)
	}
	evs, err := events.ParseAll(raw)
	if err != nil {
		return nil, err
	}
	if !ev.IsState() {
		return evs, nil
	}
	wanted := keys == nil
	for _, k := range keys {
		wanted = wanted || k == ev.Key()
	}
	out := evs[:0]
	for _, e := range evs {
		if e.Key() != ev.Key() {
			out = append(out, e)
		}
	}
	if wanted {
		out = append(out, ev)
	}
	return out, nil
}
