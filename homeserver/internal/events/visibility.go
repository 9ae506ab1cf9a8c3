package events

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// History visibility: the spec's rule ("Room History Visibility", "Server
// behaviour") for one event, applied with the room state at the event
// (the state before it):
//
//  1. history_visibility world_readable: allow;
//  2. the user's membership was join: allow;
//  3. shared, and the user joined the room at any point after the event:
//     allow;
//  4. the user's membership was invite, and invited: allow;
//  5. otherwise deny.
//
// For an m.room.history_visibility event the value before or after it may
// allow; for the user's own m.room.member event, the membership before or
// after it may.

// The values of history_visibility.
const (
	VisWorldReadable = "world_readable"
	VisShared        = "shared"
	VisInvited       = "invited"
	VisJoined        = "joined"
)

// VisibilityOf reads an m.room.history_visibility content: absent or not
// understood means shared, as the spec says.
func VisibilityOf(content json.RawMessage) string {
	var c struct {
		HistoryVisibility string `json:"history_visibility"`
	}
	_ = json.Unmarshal(content, &c)
	switch c.HistoryVisibility {
	case VisWorldReadable, VisInvited, VisJoined:
		return c.HistoryVisibility
	}
	return VisShared
}

// allowed is the spec's rule for one event: vis is the history visibility
// at the event, membership the user's membership at it ("" for none), and
// joinedAfter whether the user joined the room at any point after it.
func allowed(vis, membership string, joinedAfter bool) bool {
	switch {
	case vis == VisWorldReadable:
		return true
	case membership == "join":
		return true
	case vis == VisShared && joinedAfter:
		return true
	case vis == VisInvited && membership == "invite":
		return true
	}
	return false
}

// CanSee applies allowed with the spec's two exceptions: the visibility
// before or after the event (they differ only for a history visibility
// event), and the membership before or after it (they differ only for
// the user's own member event), whichever allows.
func CanSee(visBefore, visAfter, memBefore, memAfter string, joinedAfter bool) bool {
	for _, vis := range [2]string{visBefore, visAfter} {
		for _, m := range [2]string{memBefore, memAfter} {
			if allowed(vis, m, joinedAfter) {
				return true
			}
		}
	}
	return false
}

// StateBefore reads given state keys just before an event (the
// roomserver's api.Reader has it).
type StateBefore interface {
	StateEventsBefore(ctx context.Context, eventID string, keys []api.StateKey) ([]api.Event, error)
}

// Visible reports whether userID may see e, with the state event e
// replaced when e is a state event and there was one (for
// unsigned.prev_content). joinedAfter says whether the user joined the
// room at some point after e.
func Visible(ctx context.Context, r StateBefore, userID string, e Event, joinedAfter bool) (bool, *Event, error) {
	hvKey := api.StateKey{Type: "m.room.history_visibility"}
	memberKey := api.StateKey{Type: "m.room.member", StateKey: userID}
	keys := []api.StateKey{hvKey, memberKey}
	if e.IsState() && e.Key() != hvKey && e.Key() != memberKey {
		keys = append(keys, e.Key())
	}
	before, err := r.StateEventsBefore(ctx, e.EventID, keys)
	if err != nil {
		return false, nil, fmt.Errorf("read state before %s: %w", e.EventID, err)
	}
	visBefore, memBefore := VisShared, ""
	var prev *Event
	for _, b := range before {
		be, err := Parse(b)
		if err != nil {
			return false, nil, err
		}
		switch be.Key() {
		case hvKey:
			visBefore = VisibilityOf(be.Content)
		case memberKey:
			memBefore = be.Membership()
		}
		if e.IsState() && be.Key() == e.Key() {
			prev = &be
		}
	}
	visAfter, memAfter := visBefore, memBefore
	if e.IsState() {
		switch e.Key() {
		case hvKey:
			visAfter = VisibilityOf(e.Content)
		case memberKey:
			memAfter = e.Membership()
		}
	}
	return CanSee(visBefore, visAfter, memBefore, memAfter, joinedAfter), prev, nil
}
