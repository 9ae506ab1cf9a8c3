// Package api is the roomserver's face to the other components: the types
// and interfaces they use to create rooms, send events and read rooms, and
// nothing else. In one process a caller holds the roomserver itself; split
// across processes it holds roomserver/remote's NATS client of the same
// interfaces.
//
// Numeric ids never cross this boundary: events are identified by event id
// and ordered by StreamPos.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/matrix-org/gomatrixserverlib"
)

// MaxEventBytes is the largest PDU the spec allows, in canonical JSON.
const MaxEventBytes = 65536

// Event is an accepted event as the roomserver stores it.
type Event struct {
	// RoomVersion tells how to parse JSON.
	RoomVersion string `json:"room_version"`
	// EventID is the event's id.
	EventID string `json:"event_id"`
	// RoomID is the room's id (for v12 create events, derived from the id).
	RoomID string `json:"room_id"`
	// JSON is the full PDU, redacted if the event has been redacted.
	JSON json.RawMessage `json:"json"`
	// StreamPos orders accepted events across all rooms: it is the
	// position of the event in the roomserver's output. 0 for outliers;
	// negative for events fetched from another server's history
	// (backfilled), which were never output: they sort before every
	// event the room had when they were fetched, and only within it.
	StreamPos int64 `json:"stream_pos"`
	// RedactedBy is the id of the redaction that applies to the event,
	// empty when none does.
	RedactedBy string `json:"redacted_by,omitempty"`
	// RedactedBecause is that redaction's PDU (nil when not redacted).
	RedactedBecause json.RawMessage `json:"redacted_because,omitempty"`
}

// PDU parses the event's JSON.
func (e Event) PDU() (gomatrixserverlib.PDU, error) {
	verImpl, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(e.RoomVersion))
	if err != nil {
		return nil, fmt.Errorf("parse event %s: %w", e.EventID, err)
	}
	pdu, err := verImpl.NewEventFromTrustedJSONWithEventID(e.EventID, e.JSON, e.RedactedBecause != nil)
	if err != nil {
		return nil, fmt.Errorf("parse event %s: %w", e.EventID, err)
	}
	return pdu, nil
}

// ProtoEvent is a local event to build: what the client API knows of it.
// The roomserver fills in prev_events, auth_events, depth, hashes and the
// signature.
type ProtoEvent struct {
	// Type is the event type.
	Type string `json:"type"`
	// StateKey is set for state events.
	StateKey *string `json:"state_key,omitempty"`
	// Sender is the user id of the sender, a local user.
	Sender string `json:"sender"`
	// Content is the event content, a JSON object.
	Content json.RawMessage `json:"content"`
	// Redacts is the event a m.room.redaction redacts.
	Redacts string `json:"redacts,omitempty"`
	// Txn, when set, makes the send idempotent: if the sender's device
	// already sent an event with this transaction id, Send returns that
	// event and sends nothing; else the id is stored with the new event,
	// in its commit.
	Txn *Txn `json:"txn,omitempty"`
}

// Txn is a client's transaction id (spec: scoped to a device and an
// endpoint).
type Txn struct {
	// DeviceID is the sending device.
	DeviceID string `json:"device_id"`
	// Scope is the endpoint with its path parameters other than the id,
	// e.g. "send !room:hs m.room.message".
	Scope string `json:"scope"`
	// ID is the client's transaction id.
	ID string `json:"id"`
}

// CreateRoomRequest creates a room from its create event's content and the
// events that follow it (creator's join, power levels, join rules, history
// visibility, name, topic, initial state, invites), all or nothing.
type CreateRoomRequest struct {
	// RoomVersion of the new room.
	RoomVersion string `json:"room_version"`
	// Creator is the local user creating the room.
	Creator string `json:"creator"`
	// CreateContent is the content of m.room.create; the roomserver adds
	// what the room version requires (creator in versions before 11).
	CreateContent json.RawMessage `json:"create_content"`
	// Events follow the create event, in order. Each is checked against
	// the auth rules with the state the earlier ones made.
	Events []ProtoEvent `json:"events"`
}

// Writer changes rooms. Every method returns only once what it accepted is
// committed (an acknowledged event is durable) and queued for the bus.
type Writer interface {
	// CreateRoom creates a room and returns its id and the ids of its
	// events in order (create event first).
	CreateRoom(ctx context.Context, req CreateRoomRequest) (roomID string, eventIDs []string, err error)
	// Send builds a local event on the room's forward extremities, checks
	// it against the room's current state, has the room's policy server
	// sign it when the room uses one (failing with its
	// *PolicyRefusedError, or ErrPolicyServerUnavailable, and storing
	// nothing), and commits it.
	Send(ctx context.Context, roomID string, ev ProtoEvent) (Event, error)
	// InputEvents accepts signed PDUs built elsewhere (by another server,
	// or by tests building forked DAGs), in the order given. Each is
	// checked against the state before it (resolving forks with the room
	// version's state resolution) and against the room's current state
	// (soft-failing it when that check fails, or when the room uses a
	// policy server whose valid signature the event lacks). The result of
	// each event
	// is reported; an error is returned only when nothing could be done.
	InputEvents(ctx context.Context, roomID string, events []json.RawMessage) ([]InputResult, error)
}

// InputResult is what became of one input event.
type InputResult struct {
	EventID string `json:"event_id"`
	// Rejected is set, with the reason, when the event failed the auth
	// rules with the state before it: it is stored for the DAG's sake but
	// never served or used as state.
	Rejected string `json:"rejected,omitempty"`
	// SoftFailed is set when the event passed against the state before it
	// but failed against current state, or lacks the signature of the
	// room's policy server: stored, not served to clients, not a forward
	// extremity.
	SoftFailed bool `json:"soft_failed,omitempty"`
}

// StateKey identifies one piece of room state.
type StateKey struct {
	Type     string `json:"type"`
	StateKey string `json:"state_key"`
}

// Direction is the order /messages pages in.
type Direction byte

// The two directions of paging.
const (
	Backward Direction = 'b'
	Forward  Direction = 'f'
)

// TimelineEnd is the position after every event: Timeline from it going
// Backward starts with a room's latest event.
const TimelineEnd int64 = math.MaxInt64

// Reader reads rooms. Access control (who may see what) is the caller's:
// the roomserver answers what is, and the state needed to decide.
type Reader interface {
	// RoomVersion returns the room's version, or ErrRoomNotFound.
	RoomVersion(ctx context.Context, roomID string) (string, error)
	// CurrentState returns the room's current state events.
	CurrentState(ctx context.Context, roomID string) ([]Event, error)
	// CurrentStateEvent returns one current state event, or ErrNotFound.
	CurrentStateEvent(ctx context.Context, roomID string, key StateKey) (Event, error)
	// StateBefore returns the room state just before eventID (what the
	// event was authorised against, after resolution), for history
	// visibility and /members?at.
	StateBefore(ctx context.Context, eventID string) ([]Event, error)
	// StateEventsBefore returns the given state keys just before eventID
	// (absent keys are left out).
	StateEventsBefore(ctx context.Context, eventID string, keys []StateKey) ([]Event, error)
	// Event returns an accepted, non-rejected event, or ErrNotFound.
	Event(ctx context.Context, eventID string) (Event, error)
	// Membership returns userID's current membership in the room ("" when
	// none) and the stream position of that membership event.
	Membership(ctx context.Context, roomID, userID string) (membership string, pos int64, err error)
	// RoomsOf returns the rooms where userID's current membership is
	// membership.
	RoomsOf(ctx context.Context, userID, membership string) ([]string, error)
	// Timeline returns up to limit events of the room's timeline (no
	// rejected or soft-failed events) from stream position from, not
	// included, in direction dir; TimelineEnd with Backward starts at the
	// end.
	Timeline(ctx context.Context, roomID string, from int64, dir Direction, limit int) ([]Event, error)
	// LatestPos returns the highest stream position of any accepted event.
	LatestPos(ctx context.Context) (int64, error)
	// StrippedState returns the room's current stripped state, as
	// OutputEvent.StrippedState gives it.
	StrippedState(ctx context.Context, roomID string) ([]json.RawMessage, error)
	// EventNearTimestamp returns the room's event closest to ts (ms) in
	// direction dir (the first at or after ts going Forward, the last at
	// or before it going Backward), or ErrNotFound.
	EventNearTimestamp(ctx context.Context, roomID string, ts int64, dir Direction) (Event, error)
}

// Sentinel errors of the roomserver.
var (
	// ErrRoomNotFound: this server knows no such room.
	ErrRoomNotFound = errors.New("room not found")
	// ErrNotFound: no such event or state.
	ErrNotFound = errors.New("not found")
	// ErrTooLarge: the event is larger than MaxEventBytes.
	ErrTooLarge = errors.New("event too large")
	// ErrUnsupportedVersion: the room version is not one this server runs.
	ErrUnsupportedVersion = errors.New("unsupported room version")
	// ErrInvalidEvent: the event is malformed (bad content for its type,
	// bad state key); the error says why.
	ErrInvalidEvent = errors.New("invalid event")
	// ErrPolicyServerUnavailable: the room uses a policy server that could
	// not be asked to sign a local event (unreachable, timed out, or an
	// answer that was no answer: a 5xx, bad JSON). The event was not sent.
	ErrPolicyServerUnavailable = errors.New("the room's policy server could not be reached")
)

// NotAllowedError is the auth rules refusing an event; Reason says which
// rule, in words a client may be shown.
type NotAllowedError struct{ Reason string }

// Error implements error.
func (e *NotAllowedError) Error() string { return "not allowed: " + e.Reason }

// PolicyRefusedError is a room's policy server refusing to sign a local
// event (spec v1.18, Policy Servers): the event was not sent. ErrCode and
// Message are the policy server's own errcode and error, to be given to
// the client as they are; ErrCode is M_FORBIDDEN when it gave none.
type PolicyRefusedError struct {
	ErrCode string `json:"errcode"`
	Message string `json:"error"`
}

// Error implements error.
func (e *PolicyRefusedError) Error() string {
	return "refused by the policy server: " + e.ErrCode + ": " + e.Message
}

// PolicySigner asks a room's policy server to sign an event, for the
// roomserver, which makes no network calls itself. The federation
// component implements it.
type PolicySigner interface {
	// PolicySign POSTs pdu (a signed PDU in federation format) to via's
	// /_matrix/policy/v1/sign and returns the signature it gives by via
	// with key id ed25519:policy_server (unpadded base64), unchecked. A
	// refusal (a 4xx, or no signature) is a *PolicyRefusedError; a policy
	// server that cannot be asked is ErrPolicyServerUnavailable.
	PolicySign(ctx context.Context, via string, pdu json.RawMessage) (string, error)
}

// OutputListener is told of each output event as soon as the bus has
// stored it, with its stream sequence, by a roomserver in the same
// process: a consumer there may act on it before the bus delivers it
// (the sync feeder wakes clients this way). The bus still delivers it.
// The calls come one at a time, in stream order, and must not block
// long: they hold up the publishing of later events.
type OutputListener interface {
	OutputPublished(seq uint64, output json.RawMessage)
}

// OutputEvent is what the roomserver publishes on the bus for each
// accepted event, in stream order per room, with enough for consumers
// (sync, federation, appservices, push) to act without querying back.
type OutputEvent struct {
	// Event is the accepted event.
	Event Event `json:"event"`
	// StateAdded lists the state events that became current with this
	// event (the event itself when it is state; more after a resolution).
	StateAdded []string `json:"state_added,omitempty"`
	// StateRemoved lists the state events that stopped being current.
	StateRemoved []string `json:"state_removed,omitempty"`
	// SoftFailed events are published for federation's sake only: sync
	// must not show them.
	SoftFailed bool `json:"soft_failed,omitempty"`
	// Txn is the transaction id the event was sent with (a local event
	// sent by a client; its sender's device gets it back as
	// unsigned.transaction_id).
	Txn *Txn `json:"txn,omitempty"`
	// StrippedState is set on invites and knocks: the room state the
	// invitee or knocker is shown (invite_room_state/knock_room_state),
	// the m.room.create event in full first (spec v1.16), the rest
	// stripped to type, state_key, sender and content.
	StrippedState []json.RawMessage `json:"stripped_state,omitempty"`
}
