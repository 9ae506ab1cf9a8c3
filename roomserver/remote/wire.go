package remote

// The requests and replies on the bus, one pair per method (shared where
// two methods take the same arguments). api types travel as they are when
// their JSON carries every field; the others have a wire copy here.
//
// A json.RawMessage field of the api is sent with omitempty: nil must
// arrive as nil, not as the JSON literal null that a RawMessage would
// otherwise decode to (CreateRoom, for one, tells "no content" by a nil
// CreateContent).

import (
	"encoding/json"

	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// none is the request of a method without arguments and the reply of a
// method that returns only an error.
type none struct{}

// roomRequest names a room.
type roomRequest struct {
	RoomID string `json:"room_id"`
}

// eventRequest names an event.
type eventRequest struct {
	EventID string `json:"event_id"`
}

// protoEvent is api.ProtoEvent on the bus.
type protoEvent struct {
	Type     string          `json:"type"`
	StateKey *string         `json:"state_key,omitempty"`
	Sender   string          `json:"sender"`
	Content  json.RawMessage `json:"content,omitempty"`
	Redacts  string          `json:"redacts,omitempty"`
}

func toWireProto(p api.ProtoEvent) protoEvent {
	return protoEvent{Type: p.Type, StateKey: p.StateKey, Sender: p.Sender, Content: p.Content, Redacts: p.Redacts}
}

func (p protoEvent) api() api.ProtoEvent {
	return api.ProtoEvent{Type: p.Type, StateKey: p.StateKey, Sender: p.Sender, Content: p.Content, Redacts: p.Redacts}
}

// createRoomRequest is api.CreateRoomRequest on the bus.
type createRoomRequest struct {
	RoomVersion   string          `json:"room_version"`
	Creator       string          `json:"creator"`
	CreateContent json.RawMessage `json:"create_content,omitempty"`
	Events        []protoEvent    `json:"events"`
}

type createRoomResponse struct {
	RoomID   string   `json:"room_id"`
	EventIDs []string `json:"event_ids"`
}

type sendRequest struct {
	RoomID string     `json:"room_id"`
	Event  protoEvent `json:"event"`
}

type inputEventsRequest struct {
	RoomID string            `json:"room_id"`
	Events []json.RawMessage `json:"events"`
}

type inputEventsResponse struct {
	Results []api.InputResult `json:"results"`
}

type roomVersionResponse struct {
	RoomVersion string `json:"room_version"`
}

type eventsResponse struct {
	Events []api.Event `json:"events"`
}

type currentStateEventRequest struct {
	RoomID string       `json:"room_id"`
	Key    api.StateKey `json:"key"`
}

type stateEventsBeforeRequest struct {
	EventID string `json:"event_id"`
	// Keys is sent without omitempty: nil (all state) and empty (none)
	// differ.
	Keys []api.StateKey `json:"keys"`
}

type membershipRequest struct {
	RoomID string `json:"room_id"`
	UserID string `json:"user_id"`
}

type membershipResponse struct {
	Membership string `json:"membership"`
	Pos        int64  `json:"pos"`
}

type roomsOfRequest struct {
	UserID     string `json:"user_id"`
	Membership string `json:"membership"`
}

type roomIDsResponse struct {
	RoomIDs []string `json:"room_ids"`
}

type timelineRequest struct {
	RoomID string        `json:"room_id"`
	From   int64         `json:"from"`
	Dir    api.Direction `json:"dir"`
	Limit  int           `json:"limit"`
}

type posResponse struct {
	Pos int64 `json:"pos"`
}

type strippedStateResponse struct {
	Events []json.RawMessage `json:"events"`
}

type eventNearTimestampRequest struct {
	RoomID string        `json:"room_id"`
	TS     int64         `json:"ts"`
	Dir    api.Direction `json:"dir"`
}

// relatedEventsRequest is api.RelationsRequest on the bus.
type relatedEventsRequest struct {
	RoomID    string        `json:"room_id"`
	EventID   string        `json:"event_id"`
	RelType   string        `json:"rel_type,omitempty"`
	EventType string        `json:"event_type,omitempty"`
	From      int64         `json:"from"`
	Dir       api.Direction `json:"dir"`
	Limit     int           `json:"limit"`
}

type aggregationsRequest struct {
	UserID   string   `json:"user_id"`
	EventIDs []string `json:"event_ids"`
}

type aggregationsResponse struct {
	Aggregations map[string]aggregation `json:"aggregations"`
}

// aggregation is api.Aggregation on the bus, with the fields its own JSON
// (unsigned.m.relations) leaves out.
type aggregation struct {
	Thread     *threadSummary `json:"thread,omitempty"`
	Replace    *api.Event     `json:"replace,omitempty"`
	References []string       `json:"references,omitempty"`
}

type threadSummary struct {
	Latest                  api.Event `json:"latest"`
	Count                   int64     `json:"count"`
	CurrentUserParticipated bool      `json:"current_user_participated"`
}

func toWireAggregation(a api.Aggregation) aggregation {
	w := aggregation{Replace: a.Replace, References: a.References}
	if t := a.Thread; t != nil {
		w.Thread = &threadSummary{Latest: t.Latest, Count: t.Count, CurrentUserParticipated: t.CurrentUserParticipated}
	}
	return w
}

func (w aggregation) api() api.Aggregation {
	a := api.Aggregation{Replace: w.Replace, References: w.References}
	if t := w.Thread; t != nil {
		a.Thread = &api.ThreadSummary{Latest: t.Latest, Count: t.Count, CurrentUserParticipated: t.CurrentUserParticipated}
	}
	return a
}

type threadsRequest struct {
	RoomID         string `json:"room_id"`
	ParticipatedBy string `json:"participated_by,omitempty"`
	From           int64  `json:"from"`
	Limit          int    `json:"limit"`
}

type threadsResponse struct {
	Roots     []api.Event `json:"roots"`
	Positions []int64     `json:"positions"`
}

type setAliasRequest struct {
	Alias   string `json:"alias"`
	RoomID  string `json:"room_id"`
	Creator string `json:"creator"`
}

type aliasRequest struct {
	Alias string `json:"alias"`
}

type aliasesResponse struct {
	Aliases []string `json:"aliases"`
}

type setVisibilityRequest struct {
	RoomID string `json:"room_id"`
	Public bool   `json:"public"`
}

type visibilityResponse struct {
	Public bool `json:"public"`
}
