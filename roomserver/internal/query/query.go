// Package query is the roomserver's read path: room versions, current
// state, the state before any event, events, memberships and timelines,
// read from the database through the shared caches. It takes no locks of
// the write path, so reads never wait behind a room's sequencer.
package query

import (
	"context"
	"encoding/json"
	"errors"
	"sync"

	"github.com/matrix-gouv/homeserver/roomserver/api"
	"github.com/matrix-gouv/homeserver/roomserver/internal/state"
	"github.com/matrix-gouv/homeserver/roomserver/storage"
)

// Reader implements api.Reader.
type Reader struct {
	store     *storage.Store
	events    *state.Events
	snapshots *state.Snapshots
	tuples    *state.Tuples

	// ids caches what never changes of a room, its nid and version, so
	// that the reads that need no state (timelines, memberships: every
	// /sync) make no query for them.
	idsMu sync.Mutex
	ids   map[string]storage.Room
}

// maxCachedRooms bounds the room identity cache; past it the cache starts
// over (a lookup is one indexed query).
const maxCachedRooms = 100_000

// New returns a reader.
func New(store *storage.Store, events *state.Events, snapshots *state.Snapshots, tuples *state.Tuples) *Reader {
	return &Reader{store: store, events: events, snapshots: snapshots, tuples: tuples, ids: map[string]storage.Room{}}
}

// room loads the room with its current state snapshot.
func (q *Reader) room(ctx context.Context, roomID string) (storage.Room, error) {
	r, err := q.store.Room(ctx, roomID)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Room{}, api.ErrRoomNotFound
	}
	if err == nil {
		q.remember(r)
	}
	return r, err
}

// roomIdentity returns the room's nid and version (StateSnapshotNID is
// left 0), from the cache when it has them.
func (q *Reader) roomIdentity(ctx context.Context, roomID string) (storage.Room, error) {
	q.idsMu.Lock()
	r, ok := q.ids[roomID]
	q.idsMu.Unlock()
	if ok {
		return r, nil
	}
	return q.room(ctx, roomID)
}

func (q *Reader) remember(r storage.Room) {
	r.StateSnapshotNID = 0
	q.idsMu.Lock()
	defer q.idsMu.Unlock()
	if len(q.ids) >= maxCachedRooms {
		clear(q.ids)
	}
	q.ids[r.RoomID] = r
}

// RoomVersion implements api.Reader.
func (q *Reader) RoomVersion(ctx context.Context, roomID string) (string, error) {
	r, err := q.roomIdentity(ctx, roomID)
	return r.Version, err
}

// CurrentState implements api.Reader.
func (q *Reader) CurrentState(ctx context.Context, roomID string) ([]api.Event, error) {
	r, err := q.room(ctx, roomID)
	if err != nil {
		return nil, err
	}
	return q.stateEvents(ctx, r.StateSnapshotNID, nil)
}

// CurrentStateEvent implements api.Reader.
func (q *Reader) CurrentStateEvent(ctx context.Context, roomID string, key api.StateKey) (api.Event, error) {
	r, err := q.room(ctx, roomID)
	if err != nil {
		return api.Event{}, err
	}
	evs, err := q.stateEvents(ctx, r.StateSnapshotNID, []api.StateKey{key})
	if err != nil {
		return api.Event{}, err
	}
	if len(evs) == 0 {
		return api.Event{}, api.ErrNotFound
	}
	return evs[0], nil
}

// StateBefore implements api.Reader.
func (q *Reader) StateBefore(ctx context.Context, eventID string) ([]api.Event, error) {
	return q.StateEventsBefore(ctx, eventID, nil)
}

// StateEventsBefore implements api.Reader; nil keys means all state.
func (q *Reader) StateEventsBefore(ctx context.Context, eventID string, keys []api.StateKey) ([]api.Event, error) {
	e, err := q.served(ctx, eventID)
	if err != nil {
		return nil, err
	}
	if keys != nil && len(keys) == 0 {
		return nil, nil
	}
	return q.stateEvents(ctx, e.StateBeforeNID, keys)
}

// stateEvents returns the events of a snapshot, all of them or those of
// keys (nil for all).
func (q *Reader) stateEvents(ctx context.Context, snapshotNID int64, keys []api.StateKey) ([]api.Event, error) {
	_, st, err := q.snapshots.Load(ctx, snapshotNID)
	if err != nil {
		return nil, err
	}
	var nids []int64
	if keys == nil {
		nids = make([]int64, 0, len(st))
		for _, nid := range st {
			nids = append(nids, nid)
		}
	} else {
		for _, k := range keys {
			t, ok, err := q.tuples.Lookup(ctx, k.Type, k.StateKey)
			if err != nil {
				return nil, err
			}
			if nid, found := st[t]; ok && found {
				nids = append(nids, nid)
			}
		}
	}
	evs, err := q.events.ByNID(ctx, nids)
	if err != nil {
		return nil, err
	}
	return q.events.APIEvents(ctx, evs)
}

// served returns an event that clients may be shown: known, accepted and
// not soft-failed.
func (q *Reader) served(ctx context.Context, eventID string) (*state.Event, error) {
	evs, err := q.events.ByID(ctx, []string{eventID})
	if err != nil {
		return nil, err
	}
	e, ok := evs[eventID]
	if !ok || e.Rejected != "" || e.SoftFailed {
		return nil, api.ErrNotFound
	}
	return e, nil
}

// Event implements api.Reader.
func (q *Reader) Event(ctx context.Context, eventID string) (api.Event, error) {
	e, err := q.served(ctx, eventID)
	if err != nil {
		return api.Event{}, err
	}
	return q.events.APIEvent(ctx, e)
}

// Membership implements api.Reader.
func (q *Reader) Membership(ctx context.Context, roomID, userID string) (string, int64, error) {
	r, err := q.roomIdentity(ctx, roomID)
	if err != nil {
		return "", 0, err
	}
	return q.store.Membership(ctx, r.NID, userID)
}

// RoomsOf implements api.Reader.
func (q *Reader) RoomsOf(ctx context.Context, userID, membership string) ([]string, error) {
	return q.store.RoomsOf(ctx, userID, membership)
}

// Timeline implements api.Reader.
func (q *Reader) Timeline(ctx context.Context, roomID string, from int64, dir api.Direction, limit int) ([]api.Event, error) {
	r, err := q.roomIdentity(ctx, roomID)
	if err != nil {
		return nil, err
	}
	rows, err := q.store.Timeline(ctx, r.NID, from, dir == api.Forward, limit)
	if err != nil {
		return nil, err
	}
	nids := make([]int64, len(rows))
	for i, row := range rows {
		nids[i] = row.NID
	}
	evs, err := q.events.ByNID(ctx, nids)
	if err != nil {
		return nil, err
	}
	return q.events.APIEvents(ctx, evs)
}

// LatestPos implements api.Reader.
func (q *Reader) LatestPos(ctx context.Context) (int64, error) {
	return q.store.LatestNID(ctx)
}

// StrippedState implements api.Reader.
func (q *Reader) StrippedState(ctx context.Context, roomID string) ([]json.RawMessage, error) {
	r, err := q.room(ctx, roomID)
	if err != nil {
		return nil, err
	}
	_, st, err := q.snapshots.Load(ctx, r.StateSnapshotNID)
	if err != nil {
		return nil, err
	}
	stripped, err := q.events.StrippedState(ctx, st, func(typ, sk string) (storage.StateKeyNIDs, bool, error) {
		return q.tuples.Lookup(ctx, typ, sk)
	})
	if err != nil || len(stripped) > 0 {
		return stripped, err
	}
	return q.invitedStrippedState(ctx, st)
}

// invitedStrippedState is the stripped state of a room known only from
// an invite or a knock over federation: what the resident server gave,
// kept in the event's unsigned section (input.ImportMembership).
func (q *Reader) invitedStrippedState(ctx context.Context, st storage.StateMap) ([]json.RawMessage, error) {
	nids := make([]int64, 0, len(st))
	for _, nid := range st {
		nids = append(nids, nid)
	}
	evs, err := q.events.ByNID(ctx, nids)
	if err != nil {
		return nil, err
	}
	for _, e := range evs {
		var u struct {
			InviteRoomState []json.RawMessage `json:"invite_room_state"`
			KnockRoomState  []json.RawMessage `json:"knock_room_state"`
		}
		if json.Unmarshal(e.PDU.Unsigned(), &u) == nil && len(u.InviteRoomState) > 0 {
			return u.InviteRoomState, nil
		} else if len(u.KnockRoomState) > 0 {
			return u.KnockRoomState, nil
		}
	}
	return nil, nil
}

// EventNearTimestamp implements api.Reader.
func (q *Reader) EventNearTimestamp(ctx context.Context, roomID string, ts int64, dir api.Direction) (api.Event, error) {
	r, err := q.roomIdentity(ctx, roomID)
	if err != nil {
		return api.Event{}, err
	}
	row, err := q.store.EventNearTS(ctx, r.NID, ts, dir == api.Forward)
	if errors.Is(err, storage.ErrNotFound) {
		return api.Event{}, api.ErrNotFound
	}
	if err != nil {
		return api.Event{}, err
	}
	evs, err := q.events.ByNID(ctx, []int64{row.NID})
	if err != nil {
		return api.Event{}, err
	}
	return q.events.APIEvent(ctx, evs[0])
}

var _ api.Reader = (*Reader)(nil)
