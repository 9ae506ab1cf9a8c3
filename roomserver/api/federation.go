package api

import (
	"context"
	"encoding/json"
)

// Federator is what the federation component asks of the roomserver
// beyond Reader and Writer: event templates for other servers' joins and
// leaves (make_join, make_leave) and for our own events that another
// server must sign first (invites), auth chains, the servers in a room,
// and rooms imported from a remote join.
type Federator interface {
	// EventTemplate builds an unsigned event of the room on its current
	// forward extremities, with the auth events its type needs, and
	// checks it against the room's current state (NotAllowedError when
	// the auth rules refuse it). Its sender may be a user of another
	// server: that server signs it.
	EventTemplate(ctx context.Context, roomID string, ev ProtoEvent) (EventTemplate, error)
	// AuthChain returns the auth chain of the given events: their auth
	// events, theirs, and so on (a given event is in it only when
	// another's auth events lead to it), in no particular order.
	// Unknown events are left out.
	AuthChain(ctx context.Context, eventIDs []string) ([]Event, error)
	// ForwardExtremities returns the ids of the room's forward
	// extremities (the events no accepted event follows yet), or
	// ErrRoomNotFound: what this server has of the room's latest history,
	// for /get_missing_events.
	ForwardExtremities(ctx context.Context, roomID string) ([]string, error)
	// JoinedServers returns the server names of the room's joined
	// members, sorted, or ErrRoomNotFound.
	JoinedServers(ctx context.Context, roomID string) ([]string, error)
	// ImportRoom makes a room this server did not have known from a
	// remote join's answer, already checked by the federation component
	// (signatures, hashes): the auth chain and the state before the join
	// are stored as outliers, each checked against its own auth events,
	// and the join event is accepted on that state and published as the
	// room's first timeline event, the whole state becoming current.
	ImportRoom(ctx context.Context, req ImportRoomRequest) (InputResult, error)
	// ImportMembership keeps a membership event of a local user for a
	// room this server is not in, checked and signed by the federation
	// component: an invite received over federation, a knock sent over
	// it, or the leave that rejects or withdraws them. The room becomes known with these events as its only
	// state (no m.room.create: this server is not in the room), the
	// user's membership follows, and the event is published, an invite
	// with the stripped state the inviting server gave (StrippedState
	// answers it). A later ImportRoom of the room completes it.
	ImportMembership(ctx context.Context, req ImportMembershipRequest) (InputResult, error)
	// Backfill stores history older than the room's timeline, checked by
	// the federation component (signatures, hashes): each event with the
	// state after its prev events, or the state given for it when this
	// server does not have them, checked against the auth rules on that
	// state, placed before every event of the timeline (negative
	// StreamPos) and not published. It returns how many events it
	// placed; events it has already, or whose state it cannot know, are
	// skipped.
	Backfill(ctx context.Context, req BackfillRequest) (int, error)
	// InputWithState is InputEvents for one event whose prev events this
	// server does not have with their state (a gap that
	// /get_missing_events did not close): the state before it is
	// req.StateBefore. ErrInvalidEvent when the event cannot be read.
	InputWithState(ctx context.Context, req StateInputRequest) (InputResult, error)
	// UnknownEvents returns those of ids this server has no event of
	// (not even as an outlier).
	UnknownEvents(ctx context.Context, ids []string) ([]string, error)
	// StatelessEvents returns those of ids this server does not have with
	// their state: unknown, or known only as outliers. (Rejected and
	// soft-failed events have their state: later events may follow
	// them.)
	StatelessEvents(ctx context.Context, ids []string) ([]string, error)
}

// StateInputRequest is an event with the state before it, for
// InputWithState.
type StateInputRequest struct {
	RoomID string          `json:"room_id"`
	Event  json.RawMessage `json:"event"`
	// StateBefore are the ids of the state before the event (the
	// answer of /state_ids).
	StateBefore []string `json:"state_before"`
	// Outliers are the events of that state and its auth chain that
	// this server did not have (UnknownEvents), stored first.
	Outliers []json.RawMessage `json:"outliers,omitempty"`
}

// BackfillRequest is another server's answer to /backfill, for Backfill.
type BackfillRequest struct {
	RoomID string `json:"room_id"`
	// Events are the history, in any order.
	Events []json.RawMessage `json:"events"`
	// StateBefore is the state before the events whose prev events this
	// server does not have (the ids of /state_ids' answer), by event id.
	StateBefore map[string][]string `json:"state_before,omitempty"`
	// Outliers are the events of those states and their auth chains
	// that this server did not have (UnknownEvents), stored first as
	// outliers.
	Outliers []json.RawMessage `json:"outliers,omitempty"`
}

// ImportMembershipRequest is an invite received over federation, or the
// leave rejecting it.
type ImportMembershipRequest struct {
	RoomID      string          `json:"room_id"`
	RoomVersion string          `json:"room_version"`
	Event       json.RawMessage `json:"event"`
	// StrippedState is the inviting server's invite_room_state, or the
	// knock_room_state of send_knock's answer.
	StrippedState []json.RawMessage `json:"stripped_state,omitempty"`
}

// EventTemplate is an unsigned event: the JSON of a
// gomatrixserverlib.ProtoEvent (sender, room_id, type, state_key,
// content, prev_events, auth_events, depth) and the room's version.
type EventTemplate struct {
	RoomVersion string          `json:"room_version"`
	Proto       json.RawMessage `json:"event"`
}

// ImportRoomRequest is a remote join's answer, for ImportRoom.
type ImportRoomRequest struct {
	RoomID      string `json:"room_id"`
	RoomVersion string `json:"room_version"`
	// State is the room's state before the join (full PDUs).
	State []json.RawMessage `json:"state"`
	// AuthChain is the auth chain of State and Join.
	AuthChain []json.RawMessage `json:"auth_chain"`
	// Join is the join event, signed by the joining and resident servers.
	Join json.RawMessage `json:"join"`
}
