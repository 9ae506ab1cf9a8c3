package api

import "context"

// Relation types the server aggregates or lists.
const (
	RelThread    = "m.thread"
	RelReplace   = "m.replace"
	RelReference = "m.reference"
)

// RelationsRequest pages the events related to one event.
type RelationsRequest struct {
	RoomID  string
	EventID string
	// RelType and EventType filter when not empty.
	RelType, EventType string
	// From is a stream position, exclusive; 0 starts at the newest
	// (Backward) or oldest (Forward).
	From  int64
	Dir   Direction
	Limit int
}

// Aggregation is the server-side summary of one event's relations, for
// unsigned.m.relations.
type Aggregation struct {
	// Thread is set when the event is a thread root.
	Thread *ThreadSummary `json:"m.thread,omitempty"`
	// Replace is the newest edit of the event, when edited.
	Replace *Event `json:"-"`
	// References are the ids of the events referencing this one.
	References []string `json:"-"`
}

// ThreadSummary is a thread root's aggregation.
type ThreadSummary struct {
	Latest Event `json:"-"`
	Count  int64 `json:"count"`
	// CurrentUserParticipated says the asking user sent the root or a reply.
	CurrentUserParticipated bool `json:"current_user_participated"`
}

// Relations reads the relations between events. Access control is the
// caller's, as for Reader.
type Relations interface {
	// RelatedEvents returns the events related to req.EventID, newest
	// first unless req.Dir is Forward.
	RelatedEvents(ctx context.Context, req RelationsRequest) ([]Event, error)
	// Aggregations summarises threads, edits and references of the given
	// events for userID; events without any are left out of the map.
	Aggregations(ctx context.Context, userID string, eventIDs []string) (map[string]Aggregation, error)
	// Threads returns a room's thread roots, the most recently active
	// first, and for each its latest reply's stream position (the paging
	// key: pass the last one as from). With participatedBy set, only
	// threads that user sent or replied in.
	Threads(ctx context.Context, roomID, participatedBy string, from int64, limit int) (roots []Event, positions []int64, err error)
}
