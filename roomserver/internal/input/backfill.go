package input

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sort"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/matrix-gouv/homeserver/roomserver/api"
	"github.com/matrix-gouv/homeserver/roomserver/internal/state"
	"github.com/matrix-gouv/homeserver/roomserver/storage"
)

// Backfill stores history older than the room's timeline, another
// server's /backfill answer (api.Federator). The events are placed below
// every event the timeline has, oldest lowest. Each gets its state: the
// state after its prev events when this server has them with state (the
// events placed before it in the same call count), else the state given
// in req.StateBefore. Each is checked against its auth events and that
// state (rejected otherwise), but not against the room's current state:
// history is not soft-failed. Nothing moves the room's current state or
// forward extremities, and nothing is published: backfilled events are
// old, and no consumer (sync, push, federation) is to act on them.
func (in *Inputter) Backfill(ctx context.Context, req api.BackfillRequest) (int, error) {
	r := in.lock(req.RoomID)
	defer r.mu.Unlock()
	if err := in.loadLocked(ctx, r); err != nil {
		return 0, err
	}
	placed := 0
	err := in.commitLocked(ctx, r, func(t *roomTxn) error {
		placed = 0
		history, err := parseRoomEvents(t.version, req.RoomID, req.Events)
		if err != nil {
			return err
		}
		outliers, err := parseRoomEvents(t.version, req.RoomID, req.Outliers)
		if err != nil {
			return err
		}
		if err := in.addUnknownOutliers(t, outliers); err != nil {
			return err
		}
		oldest, err := in.deps.Store.OldestPos(ctx, t.tx, t.nid)
		if err != nil {
			return err
		}
		// Oldest first, so that an event's prev events are placed before
		// it; positions count down from below the oldest event.
		sortByDepth(history)
		base := min(oldest, 0) - int64(len(history))
		for i, pdu := range history {
			ok, err := in.backfillOne(t, pdu, req.StateBefore[pdu.EventID()], base+int64(i))
			if err != nil {
				return err
			}
			if ok {
				placed++
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return placed, nil
}

// backfillOne places one event of history at position pos; it reports
// false when the event is in the timeline already or its state cannot be
// known (prev events missing and no state given).
func (in *Inputter) backfillOne(t *roomTxn, pdu gomatrixserverlib.PDU, given []string, pos int64) (bool, error) {
	known, err := in.deps.Events.ByID(t.ctx, append([]string{pdu.EventID()}, pdu.PrevEventIDs()...))
	if err != nil {
		return false, err
	}
	outlier := known[pdu.EventID()]
	if outlier != nil && !outlier.Outlier {
		return false, nil // in the timeline already
	}
	if len(pdu.PrevEventIDs()) > maxPrevEvents || len(pdu.JSON()) > api.MaxEventBytes {
		return false, nil
	}
	var before storage.Snapshot
	var beforeState storage.StateMap
	prevs := make([]*state.Event, 0, len(pdu.PrevEventIDs()))
	for _, id := range pdu.PrevEventIDs() {
		if p := known[id]; p != nil && !p.Outlier && p.Rejected == "" {
			prevs = append(prevs, p)
		}
	}
	switch {
	case len(prevs) > 0 && len(prevs) == len(pdu.PrevEventIDs()):
		if before, beforeState, err = t.stateAfterAll(prevs); err != nil {
			return false, err
		}
	case len(given) > 0:
		if before, beforeState, err = in.givenState(t, given); err != nil {
			return false, err
		}
	case len(pdu.PrevEventIDs()) == 0: // the create event
		before, beforeState = storage.Snapshot{}, storage.StateMap{}
	default:
		return false, nil
	}
	rejected := in.checkAuthEvents(t.ctx, pdu)
	if rejected == "" {
		if err := in.authorise(t.ctx, t, pdu, beforeState); err != nil {
			rejected = reason(err)
		}
	}
	tuple, err := t.intern(pdu)
	if err != nil {
		return false, err
	}
	row := storage.Event{
		RoomNID: t.nid, EventID: pdu.EventID(), Tuple: tuple, Depth: pdu.Depth(),
		OriginServerTS: int64(pdu.OriginServerTS()), Sender: string(pdu.SenderID()), JSON: pdu.JSON(),
		StateBeforeNID: before.NID, StateAfterNID: before.NID, Rejected: rejected, BackfillPos: pos,
	}
	if outlier != nil {
		// Kept as state or auth so far: the event keeps its row and nid
		// (snapshots refer to it), and its rejection if it had one.
		row.NID, row.JSON, row.RedactedBy = outlier.NID, outlier.JSON, outlier.RedactedBy
		if outlier.Rejected != "" {
			row.Rejected = outlier.Rejected
		}
	}
	if row.IsState() && row.Rejected == "" {
		afterState := maps.Clone(beforeState)
		if row.NID == 0 {
			// The nid is needed in the state after: insert first.
			if row.NID, err = in.deps.Store.InsertEvent(t.ctx, t.tx, row); err != nil {
				return false, err
			}
		}
		afterState[tuple] = row.NID
		after, err := t.snapshot(before, beforeState, afterState)
		if err != nil {
			return false, err
		}
		row.StateAfterNID = after.NID
		if outlier == nil {
			if err := in.deps.Store.SetStateAfter(t.ctx, t.tx, row.NID, after.NID); err != nil {
				return false, err
			}
		}
	}
	switch {
	case outlier != nil:
		if err := in.deps.Store.PlaceOutlier(t.ctx, t.tx, row); err != nil {
			return false, err
		}
		in.deps.Events.Forget(row.NID)
	case row.NID == 0:
		if row.NID, err = in.deps.Store.InsertEvent(t.ctx, t.tx, row); err != nil {
			return false, err
		}
	}
	if err := t.redactedOnArrival(&row); err != nil {
		return false, err
	}
	ev := &state.Event{Event: row, PDU: pdu}
	if outlier != nil {
		ev.PDU = outlier.PDU
	}
	in.deps.Events.Add(ev)
	t.added = append(t.added, ev)
	if row.Rejected != "" {
		return false, nil
	}
	if err := t.redactAndRelate(ev); err != nil {
		return false, err
	}
	return true, nil
}

// givenState returns the state a backfill request gave for an event (ids),
// stored as a snapshot: its events are stored by now (as outliers, or
// placed); the rejected and unknown ones are left out.
func (in *Inputter) givenState(t *roomTxn, given []string) (storage.Snapshot, storage.StateMap, error) {
	evs, err := in.deps.Events.ByID(t.ctx, given)
	if err != nil {
		return storage.Snapshot{}, nil, err
	}
	st := storage.StateMap{}
	for _, e := range evs {
		if e.Rejected == "" && e.IsState() {
			st[e.Tuple] = e.NID
		}
	}
	snap, err := t.snapshot(storage.Snapshot{}, storage.StateMap{}, st)
	return snap, st, err
}

// addUnknownOutliers stores as outliers those of pdus this server does
// not have yet, parents first.
func (in *Inputter) addUnknownOutliers(t *roomTxn, pdus []gomatrixserverlib.PDU) error {
	known, err := in.deps.Events.ByID(t.ctx, idsOf(pdus))
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	var unknown []gomatrixserverlib.PDU
	for _, pdu := range pdus {
		if _, ok := known[pdu.EventID()]; !ok && !seen[pdu.EventID()] {
			seen[pdu.EventID()] = true
			unknown = append(unknown, pdu)
		}
	}
	sortByDepth(unknown)
	_, err = t.addOutliers(unknown)
	return err
}

// parseRoomEvents parses events of a room.
func parseRoomEvents(v gomatrixserverlib.IRoomVersion, roomID string, raws []json.RawMessage) ([]gomatrixserverlib.PDU, error) {
	pdus := make([]gomatrixserverlib.PDU, 0, len(raws))
	for _, raw := range raws {
		pdu, err := v.NewEventFromUntrustedJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", api.ErrInvalidEvent, err)
		}
		if pdu.RoomID().String() != roomID {
			return nil, fmt.Errorf("%w: event %s is for room %s", api.ErrInvalidEvent, pdu.EventID(), pdu.RoomID().String())
		}
		pdus = append(pdus, pdu)
	}
	return pdus, nil
}

// sortByDepth orders events oldest first: depth, then event id.
func sortByDepth(pdus []gomatrixserverlib.PDU) {
	sort.SliceStable(pdus, func(i, j int) bool {
		if pdus[i].Depth() != pdus[j].Depth() {
			return pdus[i].Depth() < pdus[j].Depth()
		}
		return pdus[i].EventID() < pdus[j].EventID()
	})
}
