package remote

import (
	"context"
	"fmt"

	"github.com/matrix-gouv/homeserver/internal/bus"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// Serve answers every method of rs on its subject until stop is called or
// the bus closes. Several processes may serve at once (each request goes
// to one), but the roomserver's sequencer orders a room's writes within
// one process only: run a single roomserver process until rooms are
// partitioned. stop returns once the requests in hand are answered.
func Serve(b *bus.Bus, rs Roomserver) (stop func(), err error) {
	h := handlers{rs: rs}
	opts := rpcOptions()
	var stops []func()
	stopAll := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	for _, serve := range []func(*bus.Bus, []bus.RPCOption) (func(), error){
		handle(SubjectCreateRoom, h.createRoom),
		handle(SubjectSend, h.send),
		handle(SubjectInputEvents, h.inputEvents),
		handle(SubjectRoomVersion, h.roomVersion),
		handle(SubjectCurrentState, h.currentState),
		handle(SubjectCurrentStateEvent, h.currentStateEvent),
		handle(SubjectStateBefore, h.stateBefore),
		handle(SubjectStateEventsBefore, h.stateEventsBefore),
		handle(SubjectEvent, h.event),
		handle(SubjectMembership, h.membership),
		handle(SubjectRoomsOf, h.roomsOf),
		handle(SubjectTimeline, h.timeline),
		handle(SubjectLatestPos, h.latestPos),
		handle(SubjectStrippedState, h.strippedState),
		handle(SubjectEventNearTimestamp, h.eventNearTimestamp),
		handle(SubjectRelatedEvents, h.relatedEvents),
		handle(SubjectAggregations, h.aggregations),
		handle(SubjectThreads, h.threads),
		handle(SubjectSetAlias, h.setAlias),
		handle(SubjectResolveAlias, h.resolveAlias),
		handle(SubjectDeleteAlias, h.deleteAlias),
		handle(SubjectAliasesOf, h.aliasesOf),
		handle(SubjectSetVisibility, h.setVisibility),
		handle(SubjectVisibility, h.visibility),
		handle(SubjectPublicRooms, h.publicRooms),
	} {
		stop, err := serve(b, opts)
		if err != nil {
			stopAll()
			return nil, fmt.Errorf("serve roomserver: %w", err)
		}
		stops = append(stops, stop)
	}
	return stopAll, nil
}

// handle returns what serves h on subject, for Serve's table.
func handle[Req, Resp any](subject string, h func(context.Context, Req) (Resp, error)) func(*bus.Bus, []bus.RPCOption) (func(), error) {
	return func(b *bus.Bus, opts []bus.RPCOption) (func(), error) {
		return bus.Serve(b, subject, h, opts...)
	}
}

// handlers turn each request into a call of the roomserver.
type handlers struct {
	rs Roomserver
}

func (h handlers) createRoom(ctx context.Context, req createRoomRequest) (createRoomResponse, error) {
	var events []api.ProtoEvent
	if req.Events != nil {
		events = make([]api.ProtoEvent, len(req.Events))
		for i, e := range req.Events {
			events[i] = e.api()
		}
	}
	roomID, eventIDs, err := h.rs.CreateRoom(ctx, api.CreateRoomRequest{
		RoomVersion: req.RoomVersion, Creator: req.Creator, CreateContent: req.CreateContent, Events: events,
	})
	return createRoomResponse{RoomID: roomID, EventIDs: eventIDs}, err
}

func (h handlers) send(ctx context.Context, req sendRequest) (api.Event, error) {
	return h.rs.Send(ctx, req.RoomID, req.Event.api())
}

// inputEvents returns the results with the error: InputEvents reports
// the events it accepted before the one that failed.
func (h handlers) inputEvents(ctx context.Context, req inputEventsRequest) (inputEventsResponse, error) {
	res, err := h.rs.InputEvents(ctx, req.RoomID, req.Events)
	return inputEventsResponse{Results: res}, err
}

func (h handlers) roomVersion(ctx context.Context, req roomRequest) (roomVersionResponse, error) {
	v, err := h.rs.RoomVersion(ctx, req.RoomID)
	return roomVersionResponse{RoomVersion: v}, err
}

func (h handlers) currentState(ctx context.Context, req roomRequest) (eventsResponse, error) {
	evs, err := h.rs.CurrentState(ctx, req.RoomID)
	return eventsResponse{Events: evs}, err
}

func (h handlers) currentStateEvent(ctx context.Context, req currentStateEventRequest) (api.Event, error) {
	return h.rs.CurrentStateEvent(ctx, req.RoomID, req.Key)
}

func (h handlers) stateBefore(ctx context.Context, req eventRequest) (eventsResponse, error) {
	evs, err := h.rs.StateBefore(ctx, req.EventID)
	return eventsResponse{Events: evs}, err
}

func (h handlers) stateEventsBefore(ctx context.Context, req stateEventsBeforeRequest) (eventsResponse, error) {
	evs, err := h.rs.StateEventsBefore(ctx, req.EventID, req.Keys)
	return eventsResponse{Events: evs}, err
}

func (h handlers) event(ctx context.Context, req eventRequest) (api.Event, error) {
	return h.rs.Event(ctx, req.EventID)
}

func (h handlers) membership(ctx context.Context, req membershipRequest) (membershipResponse, error) {
	m, pos, err := h.rs.Membership(ctx, req.RoomID, req.UserID)
	return membershipResponse{Membership: m, Pos: pos}, err
}

func (h handlers) roomsOf(ctx context.Context, req roomsOfRequest) (roomIDsResponse, error) {
	ids, err := h.rs.RoomsOf(ctx, req.UserID, req.Membership)
	return roomIDsResponse{RoomIDs: ids}, err
}

func (h handlers) timeline(ctx context.Context, req timelineRequest) (eventsResponse, error) {
	evs, err := h.rs.Timeline(ctx, req.RoomID, req.From, req.Dir, req.Limit)
	return eventsResponse{Events: evs}, err
}

func (h handlers) latestPos(ctx context.Context, _ none) (posResponse, error) {
	pos, err := h.rs.LatestPos(ctx)
	return posResponse{Pos: pos}, err
}

func (h handlers) strippedState(ctx context.Context, req roomRequest) (strippedStateResponse, error) {
	evs, err := h.rs.StrippedState(ctx, req.RoomID)
	return strippedStateResponse{Events: evs}, err
}

func (h handlers) eventNearTimestamp(ctx context.Context, req eventNearTimestampRequest) (api.Event, error) {
	return h.rs.EventNearTimestamp(ctx, req.RoomID, req.TS, req.Dir)
}

func (h handlers) relatedEvents(ctx context.Context, req relatedEventsRequest) (eventsResponse, error) {
	evs, err := h.rs.RelatedEvents(ctx, api.RelationsRequest{
		RoomID: req.RoomID, EventID: req.EventID, RelType: req.RelType, EventType: req.EventType,
		From: req.From, Dir: req.Dir, Limit: req.Limit,
	})
	return eventsResponse{Events: evs}, err
}

func (h handlers) aggregations(ctx context.Context, req aggregationsRequest) (aggregationsResponse, error) {
	aggs, err := h.rs.Aggregations(ctx, req.UserID, req.EventIDs)
	if aggs == nil {
		return aggregationsResponse{}, err
	}
	out := make(map[string]aggregation, len(aggs))
	for id, a := range aggs {
		out[id] = toWireAggregation(a)
	}
	return aggregationsResponse{Aggregations: out}, err
}

func (h handlers) threads(ctx context.Context, req threadsRequest) (threadsResponse, error) {
	roots, pos, err := h.rs.Threads(ctx, req.RoomID, req.ParticipatedBy, req.From, req.Limit)
	return threadsResponse{Roots: roots, Positions: pos}, err
}

func (h handlers) setAlias(ctx context.Context, req setAliasRequest) (none, error) {
	return none{}, h.rs.SetAlias(ctx, req.Alias, req.RoomID, req.Creator)
}

func (h handlers) resolveAlias(ctx context.Context, req aliasRequest) (api.RoomAlias, error) {
	return h.rs.ResolveAlias(ctx, req.Alias)
}

func (h handlers) deleteAlias(ctx context.Context, req api.RoomAlias) (none, error) {
	return none{}, h.rs.DeleteAlias(ctx, req)
}

func (h handlers) aliasesOf(ctx context.Context, req roomRequest) (aliasesResponse, error) {
	aliases, err := h.rs.AliasesOf(ctx, req.RoomID)
	return aliasesResponse{Aliases: aliases}, err
}

func (h handlers) setVisibility(ctx context.Context, req setVisibilityRequest) (none, error) {
	return none{}, h.rs.SetVisibility(ctx, req.RoomID, req.Public)
}

func (h handlers) visibility(ctx context.Context, req roomRequest) (visibilityResponse, error) {
	public, err := h.rs.Visibility(ctx, req.RoomID)
	return visibilityResponse{Public: public}, err
}

func (h handlers) publicRooms(ctx context.Context, req api.PublicRoomsQuery) (api.PublicRoomsPage, error) {
	return h.rs.PublicRooms(ctx, req)
}
