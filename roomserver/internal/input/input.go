// Package input is the roomserver's write path: the per-room sequencer,
// building local events, checking every event against the auth rules,
// resolving state where the DAG forks, and committing each event with the
// state after it, the room's new forward extremities and current state,
// and its output event, in one transaction.
//
//	Send / CreateRoom / InputEvents
//	        │  lock the room (one event at a time per room;
//	        │  other rooms run in parallel)
//	        ▼
//	  build + auth  ──►  txn: event row, snapshots, extremities,
//	                          memberships, redactions, outbox row
//	        │  commit, then update the room's in-memory view
//	        ▼
//	  Queued()  ──►  output publisher (roomserver/internal/output)
//
// An event is acknowledged only after its transaction commits; the outbox
// row written in the same transaction guarantees it is published.
package input

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/roomserver/api"
	"github.com/matrix-gouv/homeserver/roomserver/internal/state"
	"github.com/matrix-gouv/homeserver/roomserver/storage"
)

// Deps is what the inputter needs.
type Deps struct {
	Store     *storage.Store
	Events    *state.Events
	Snapshots *state.Snapshots
	Tuples    *state.Tuples
	Resolver  *state.Resolver
	// ServerName, KeyID and Key sign local events.
	ServerName spec.ServerName
	KeyID      gomatrixserverlib.KeyID
	Key        ed25519.PrivateKey
	Log        *logrus.Entry
	// Policy asks rooms' policy servers to sign local events (policy.go).
	// Nil: local events are sent without asking.
	Policy api.PolicySigner
	// Queued is called after a commit that queued output events, with
	// them, in the order they were queued.
	Queued func(entries []storage.OutboxEntry)
}

// Inputter applies events to rooms.
type Inputter struct {
	deps Deps

	mu    sync.Mutex // guards rooms and lastCreate
	rooms map[string]*room
	// lastCreate is the timestamp of the last create event built here.
	lastCreate time.Time
}

// New returns an inputter.
func New(deps Deps) *Inputter {
	return &Inputter{deps: deps, rooms: map[string]*room{}}
}

// room is the in-memory view of one room, owned by whoever holds mu: the
// sequencer of that room.
type room struct {
	mu sync.Mutex // held while the room's events are processed; guards the rest

	loaded  bool
	nid     int64
	id      string
	version gomatrixserverlib.IRoomVersion
	// snap and state are the room's current state.
	snap  storage.Snapshot
	state storage.StateMap
	// ext are the forward extremities.
	ext []*state.Event
	// storedExt is the set of extremities last written, and
	// sinceCheckpoint counts the events accepted after it, which replay
	// from it (storage.ExtremityLog).
	storedExt       []int64
	sinceCheckpoint int
}

// lock returns the room's view, locked. The caller must unlock r.mu.
func (in *Inputter) lock(roomID string) *room {
	in.mu.Lock()
	r, ok := in.rooms[roomID]
	if !ok {
		r = &room{id: roomID}
		in.rooms[roomID] = r
	}
	in.mu.Unlock()
	r.mu.Lock()
	return r
}

// loadLocked reads the room's view from the database the first time.
func (in *Inputter) loadLocked(ctx context.Context, r *room) error {
	if r.loaded {
		return nil
	}
	row, err := in.deps.Store.Room(ctx, r.id)
	if errors.Is(err, storage.ErrNotFound) {
		return api.ErrRoomNotFound
	}
	if err != nil {
		return err
	}
	v, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(row.Version))
	if err != nil {
		return fmt.Errorf("room %s: %w", r.id, api.ErrUnsupportedVersion)
	}
	snap, st, err := in.deps.Snapshots.Load(ctx, row.StateSnapshotNID)
	if err != nil {
		return err
	}
	log, err := in.deps.Store.Extremities(ctx, row.NID)
	if err != nil {
		return err
	}
	ext, err := in.deps.Events.Extremities(ctx, log)
	if err != nil {
		return err
	}
	r.nid, r.version, r.snap, r.state, r.ext, r.loaded = row.NID, v, snap, st, ext, true
	r.storedExt, r.sinceCheckpoint = log.Checkpoint, len(log.Later)
	return nil
}

// authorise checks pdu against the auth rules with the given state, within
// the transaction t.
func (in *Inputter) authorise(ctx context.Context, t *roomTxn, pdu gomatrixserverlib.PDU, st storage.StateMap) error {
	provider, err := in.authProvider(ctx, t, st, gomatrixserverlib.StateNeededForAuth([]gomatrixserverlib.PDU{pdu}).Tuples())
	if err != nil {
		return err
	}
	if err := gomatrixserverlib.Allowed(pdu, provider, state.UserIDForSender); err != nil {
		return &api.NotAllowedError{Reason: err.Error()}
	}
	return nil
}

// authProvider loads the state events of the given tuples, seeing the
// pairs that the transaction t interned and has not committed yet.
func (in *Inputter) authProvider(ctx context.Context, t *roomTxn, st storage.StateMap, tuples []gomatrixserverlib.StateKeyTuple) (*gomatrixserverlib.AuthEvents, error) {
	var nids []int64
	for _, tu := range tuples {
		k, ok, err := t.lookup(tu.EventType, tu.StateKey)
		if err != nil {
			return nil, err
		}
		if ok {
			if nid, ok := st[k]; ok {
				nids = append(nids, nid)
			}
		}
	}
	evs, err := in.deps.Events.ByNID(ctx, nids)
	if err != nil {
		return nil, fmt.Errorf("load auth events: %w", err)
	}
	pdus := make([]gomatrixserverlib.PDU, len(evs))
	for i, e := range evs {
		pdus[i] = e.PDU
	}
	provider, err := gomatrixserverlib.NewAuthEvents(pdus)
	if err != nil {
		return nil, fmt.Errorf("auth events: %w", err)
	}
	return provider, nil
}
