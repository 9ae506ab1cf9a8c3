package federation

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/matrix-gouv/homeserver/internal/httputil"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// transactionBody is the answer of /event: a transaction of one PDU.
type transactionBody struct {
	Origin         string            `json:"origin"`
	OriginServerTS int64             `json:"origin_server_ts"`
	PDUs           []json.RawMessage `json:"pdus"`
}

// checkInRoom refuses (403) a server that has no joined member in the
// room, and answers 404 for a room this server does not know.
//
// What a server in the room may see of the time before its users joined
// is forServer's business (the event endpoints).
func (c *Component) checkInRoom(ctx context.Context, roomID string, origin spec.ServerName) error {
	servers, err := c.rooms.JoinedServers(ctx, roomID)
	if errors.Is(err, rsapi.ErrRoomNotFound) {
		return httputil.NotFound("unknown room")
	}
	if err != nil {
		return err
	}
	if !slices.Contains(servers, string(origin)) {
		return httputil.Forbidden("%s is not in the room", origin)
	}
	return nil
}

// GetEvent answers GET /_matrix/federation/v1/event/{eventId}.
func (c *Component) GetEvent(r *http.Request) (any, error) {
	ev, err := c.rooms.Event(r.Context(), httputil.PathParam(r, "eventID"))
	if errors.Is(err, rsapi.ErrNotFound) {
		return nil, httputil.NotFound("unknown event")
	}
	if err != nil {
		return nil, err
	}
	if err := c.checkInRoom(r.Context(), ev.RoomID, originOf(r)); err != nil {
		return nil, err
	}
	evs, err := c.forServer(r.Context(), originOf(r), []rsapi.Event{ev})
	if err != nil {
		return nil, err
	}
	return transactionBody{Origin: string(c.serverName), OriginServerTS: c.now().UnixMilli(), PDUs: jsonsOf(evs)}, nil
}

// stateAt returns the state before eventID of roomID and its auth chain,
// for a server in the room.
func (c *Component) stateAt(r *http.Request) (state, chain []rsapi.Event, err error) {
	ctx, roomID := r.Context(), httputil.PathParam(r, "roomID")
	eventID := r.URL.Query().Get("event_id")
	if eventID == "" {
		return nil, nil, httputil.MissingParam("event_id is required")
	}
	if err := c.checkInRoom(ctx, roomID, originOf(r)); err != nil {
		return nil, nil, err
	}
	ev, err := c.rooms.Event(ctx, eventID)
	if errors.Is(err, rsapi.ErrNotFound) || err == nil && ev.RoomID != roomID {
		return nil, nil, httputil.NotFound("unknown event")
	}
	if err != nil {
		return nil, nil, err
	}
	if ev.StreamPos == 0 {
		// An outlier: known as state or auth, not its own state.
		return nil, nil, httputil.NotFound("state not known at this event")
	}
	if err := c.mustSee(ctx, originOf(r), ev); err != nil {
		return nil, nil, err
	}
	if state, err = c.rooms.StateBefore(ctx, eventID); err != nil {
		return nil, nil, err
	}
	ids := make([]string, len(state))
	for i, e := range state {
		ids[i] = e.EventID
	}
	chain, err = c.rooms.AuthChain(ctx, ids)
	return state, chain, err
}

// GetState answers GET /_matrix/federation/v1/state/{roomId}?event_id=:
// the room's state before the event, and its auth chain.
func (c *Component) GetState(r *http.Request) (any, error) {
	state, chain, err := c.stateAt(r)
	if err != nil {
		return nil, err
	}
	return map[string][]json.RawMessage{"pdus": jsonsOf(state), "auth_chain": jsonsOf(chain)}, nil
}

// GetStateIDs answers GET /_matrix/federation/v1/state_ids/{roomId}:
// GetState's answer as event ids.
func (c *Component) GetStateIDs(r *http.Request) (any, error) {
	state, chain, err := c.stateAt(r)
	if err != nil {
		return nil, err
	}
	return map[string][]string{"pdu_ids": idsOf(state), "auth_chain_ids": idsOf(chain)}, nil
}

// GetEventAuth answers GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}.
func (c *Component) GetEventAuth(r *http.Request) (any, error) {
	ctx, roomID, eventID := r.Context(), httputil.PathParam(r, "roomID"), httputil.PathParam(r, "eventID")
	if err := c.checkInRoom(ctx, roomID, originOf(r)); err != nil {
		return nil, err
	}
	ev, err := c.rooms.Event(ctx, eventID)
	if errors.Is(err, rsapi.ErrNotFound) || err == nil && ev.RoomID != roomID {
		return nil, httputil.NotFound("unknown event")
	}
	if err != nil {
		return nil, err
	}
	if err := c.mustSee(ctx, originOf(r), ev); err != nil {
		return nil, err
	}
	chain, err := c.rooms.AuthChain(ctx, []string{eventID})
	if err != nil {
		return nil, err
	}
	return map[string][]json.RawMessage{"auth_chain": jsonsOf(chain)}, nil
}

func jsonsOf(evs []rsapi.Event) []json.RawMessage {
	out := make([]json.RawMessage, len(evs))
	for i, e := range evs {
		out[i] = e.JSON
	}
	return out
}

func idsOf(evs []rsapi.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.EventID
	}
	return out
}
