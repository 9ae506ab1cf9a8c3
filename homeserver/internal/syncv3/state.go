package syncv3

import (
	"context"
	"fmt"

	"github.com/matrix-gouv/homeserver/homeserver/internal/events"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// state returns the room state a room's part carries, and whether it is
// the state after the timeline (use_state_after) rather than before it:
//   - full (initial sync, newly joined room, full_state): the whole state;
//   - a gap since the last sync (limited timeline): what changed between
//     the state at the last sync and the timeline's start (or end);
//   - otherwise nothing before the timeline, or the timeline's own state
//     changes after it.
//
// With lazy_load_members, member events are kept only for the timeline's
// senders (and the user), and those are added when missing.
func (b *builder) state(ctx context.Context, roomID string, tl *roomTimeline, full bool) ([]events.Event, bool, error) {
	after := b.req.stateAfter || b.req.unstableStateAfter
	if tl.end == "" {
		return nil, after, nil
	}
	// at is the state the part describes: before the timeline's first
	// event, or after its end.
	at := func() ([]events.Event, error) {
		if after || len(tl.events) == 0 {
			return b.stateAfter(ctx, tl.end)
		}
		return b.stateBefore(ctx, tl.events[0].EventID)
	}
	var evs []events.Event
	var err error
	switch {
	case full:
		if evs, err = at(); err != nil {
			return nil, false, err
		}
		if !after && len(tl.events) > 0 && !hasCreate(evs) {
			// The timeline starts before this server had the room (an
			// invite received over federation, then a join that brought
			// the room's state): the state before it is the invite's
			// alone. The state at the end stands in, less what the
			// timeline itself sets.
			if evs, err = b.stateAfter(ctx, tl.end); err != nil {
				return nil, false, err
			}
			evs = withoutKeysOf(evs, tl.events)
		}
	case tl.limited:
		cur, err := at()
		if err != nil {
			return nil, false, err
		}
		sinceEv, ok, known := b.h.Notifier.EventAtOrBefore(roomID, b.since.Rooms)
		if !known {
			if err := b.written(ctx); err != nil {
				return nil, false, err
			}
			if sinceEv, ok, err = b.h.Store.RoomEventAt(ctx, roomID, b.since.Rooms, false); err != nil {
				return nil, false, err
			}
		}
		var prev []events.Event
		if ok {
			if prev, err = b.stateAfter(ctx, sinceEv.EventID); err != nil {
				return nil, false, err
			}
		}
		evs = changed(cur, prev)
	case after:
		evs = lastPerKey(tl.events)
	}
	filter := b.req.filter.Room.State
	kept := evs[:0:0]
	for _, e := range evs {
		if filter.Allows(e) {
			kept = append(kept, e)
		}
	}
	if filter.LazyLoadMembers {
		if kept, err = b.lazyMembers(ctx, tl, kept, full); err != nil {
			return nil, false, err
		}
	}
	return kept, after, nil
}

// lazyMembers keeps, of the member events in evs, those of the timeline's
// senders (and the user's own on a full part), and adds the senders'
// member events that are missing and not in the timeline itself.
func (b *builder) lazyMembers(ctx context.Context, tl *roomTimeline, evs []events.Event, full bool) ([]events.Event, error) {
	want := map[string]bool{}
	for _, e := range tl.events {
		want[e.Sender] = true
	}
	if full {
		want[b.req.dev.UserID] = true
	}
	inTimeline := map[string]bool{}
	for _, e := range tl.events {
		if e.Type == "m.room.member" && e.StateKey != nil {
			inTimeline[*e.StateKey] = true
		}
	}
	out := evs[:0:0]
	have := map[string]bool{}
	for _, e := range evs {
		if e.Type == "m.room.member" {
			if e.StateKey == nil || !want[*e.StateKey] {
				continue
			}
			have[*e.StateKey] = true
		}
		out = append(out, e)
	}
	var keys []rsapi.StateKey
	for u := range want {
		if !have[u] && !inTimeline[u] {
			keys = append(keys, rsapi.StateKey{Type: "m.room.member", StateKey: u})
		}
	}
	if len(keys) == 0 || len(tl.events) == 0 {
		return out, nil
	}
	raw, err := b.h.Rooms.StateEventsBefore(ctx, tl.events[0].EventID, keys)
	if err != nil {
		return nil, fmt.Errorf("read members before %s: %w", tl.events[0].EventID, err)
	}
	more, err := events.ParseAll(raw)
	if err != nil {
		return nil, err
	}
	return append(out, more...), nil
}

// stateBefore is the room state just before eventID.
func (b *builder) stateBefore(ctx context.Context, eventID string) ([]events.Event, error) {
	raw, err := b.h.Rooms.StateBefore(ctx, eventID)
	if err != nil {
		return nil, fmt.Errorf("read state before %s: %w", eventID, err)
	}
	return events.ParseAll(raw)
}

// stateAfter is the room state just after eventID: the state before it,
// with it when it is a state event.
func (b *builder) stateAfter(ctx context.Context, eventID string) ([]events.Event, error) {
	state, err := b.stateBefore(ctx, eventID)
	if err != nil {
		return nil, err
	}
	raw, err := b.h.Rooms.Event(ctx, eventID)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", eventID, err)
	}
	ev, err := events.Parse(raw)
	if err != nil || !ev.IsState() {
		return state, err
	}
	for i, e := range state {
		if e.Key() == ev.Key() {
			state[i] = ev
			return state, nil
		}
	}
	return append(state, ev), nil
}

// changed returns the events of cur that are not in prev.
func changed(cur, prev []events.Event) []events.Event {
	had := make(map[string]bool, len(prev))
	for _, e := range prev {
		had[e.EventID] = true
	}
	var out []events.Event
	for _, e := range cur {
		if !had[e.EventID] {
			out = append(out, e)
		}
	}
	return out
}

// lastPerKey returns the last state event of each state key in evs.
func lastPerKey(evs []events.Event) []events.Event {
	last := map[rsapi.StateKey]int{}
	for i, e := range evs {
		if e.IsState() {
			last[e.Key()] = i
		}
	}
	var out []events.Event
	for i, e := range evs {
		if e.IsState() && last[e.Key()] == i {
			out = append(out, e)
		}
	}
	return out
}

// hasCreate reports whether state holds the room's m.room.create event.
func hasCreate(state []events.Event) bool {
	for _, e := range state {
		if e.Type == "m.room.create" && e.StateKey != nil && *e.StateKey == "" {
			return true
		}
	}
	return false
}

// withoutKeysOf returns state less the keys that timeline's state events
// set.
func withoutKeysOf(state, timeline []events.Event) []events.Event {
	set := map[rsapi.StateKey]bool{}
	for _, e := range timeline {
		if e.IsState() {
			set[rsapi.StateKey{Type: e.Type, StateKey: *e.StateKey}] = true
		}
	}
	out := state[:0:0]
	for _, e := range state {
		if !set[rsapi.StateKey{Type: e.Type, StateKey: *e.StateKey}] {
			out = append(out, e)
		}
	}
	return out
}
