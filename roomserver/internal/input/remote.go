package input

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/matrix-gouv/homeserver/roomserver/api"
	"github.com/matrix-gouv/homeserver/roomserver/internal/state"
	"github.com/matrix-gouv/homeserver/roomserver/storage"
)

// InputEvents accepts PDUs built elsewhere, in order, with the checks of
// the spec's "Checks performed on receipt of a PDU" that belong to the
// room (signatures and hashes are the federation component's, before it
// calls this): auth against the event's auth events and against the state
// before it (resolved over its prev events), then soft failure against
// the room's current state, and for want of a valid signature of the
// room's policy server, when it uses one (policy.go).
func (in *Inputter) InputEvents(ctx context.Context, roomID string, raws []json.RawMessage) ([]api.InputResult, error) {
	r := in.lock(roomID)
	defer r.mu.Unlock()
	if err := in.loadLocked(ctx, r); err != nil {
		return nil, err
	}
	// One transaction for all: a transaction of 50 PDUs costs one
	// commit, not 50. An invalid event stops the input there; those
	// before it are kept.
	var results []api.InputResult
	var invalid error
	err := in.commitLocked(ctx, r, func(t *roomTxn) error {
		results, invalid = results[:0], nil
		for _, raw := range raws {
			res, err := in.inputOne(ctx, t, r.id, raw, nil)
			if errors.Is(err, api.ErrInvalidEvent) {
				invalid = err
				return nil
			}
			if err != nil {
				return err
			}
			results = append(results, res)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return results, invalid
}

// InputWithState is InputEvents for one event whose prev events this
// server lacks (or has only as outliers, without their state): the state
// before it is the one given (api.Federator).
func (in *Inputter) InputWithState(ctx context.Context, req api.StateInputRequest) (api.InputResult, error) {
	r := in.lock(req.RoomID)
	defer r.mu.Unlock()
	if err := in.loadLocked(ctx, r); err != nil {
		return api.InputResult{}, err
	}
	var res api.InputResult
	err := in.commitLocked(ctx, r, func(t *roomTxn) error {
		outliers, err := parseRoomEvents(t.version, req.RoomID, req.Outliers)
		if err != nil {
			return err
		}
		if err := in.addUnknownOutliers(t, outliers); err != nil {
			return err
		}
		res, err = in.inputOne(ctx, t, r.id, req.Event, req.StateBefore)
		return err
	})
	return res, err
}

// inputOne checks and adds one event in t (see InputEvents). given, when
// not nil, is the state before the event (event ids, stored), for an
// event whose prev events are not here with their state.
func (in *Inputter) inputOne(ctx context.Context, t *roomTxn, roomID string, raw json.RawMessage, given []string) (api.InputResult, error) {
	pdu, err := t.version.NewEventFromUntrustedJSON(raw)
	if err != nil {
		return api.InputResult{}, fmt.Errorf("%w: %v", api.ErrInvalidEvent, err)
	}
	res := api.InputResult{EventID: pdu.EventID()}
	if pdu.RoomID().String() != roomID {
		return api.InputResult{}, fmt.Errorf("%w: event %s is for room %s", api.ErrInvalidEvent, pdu.EventID(), pdu.RoomID().String())
	}
	if len(raw) > api.MaxEventBytes {
		res.Rejected = "event too large"
		return res, nil
	}
	// The cache holds the events this transaction added too.
	known, err := in.deps.Events.ByID(ctx, []string{pdu.EventID()})
	if err != nil {
		return api.InputResult{}, err
	}
	if e, ok := known[pdu.EventID()]; ok { // already have it: idempotent
		res.Rejected, res.SoftFailed = e.Rejected, e.SoftFailed
		return res, nil
	}
	if len(pdu.PrevEventIDs()) > maxPrevEvents {
		res.Rejected = "more than 20 prev_events"
		return res, nil
	}
	prevs, err := in.deps.Events.ByID(ctx, pdu.PrevEventIDs())
	if err != nil {
		return api.InputResult{}, err
	}
	// The state before the event: after its prev events, which must be
	// here with their state (not outliers), or the one given.
	prevList := make([]*state.Event, 0, len(prevs))
	for _, id := range pdu.PrevEventIDs() {
		if p := prevs[id]; p != nil && !p.Outlier {
			prevList = append(prevList, p)
		}
	}
	var beforeSnap storage.Snapshot
	var before storage.StateMap
	switch {
	case len(prevList) == len(pdu.PrevEventIDs()):
		beforeSnap, before, err = t.stateAfterAll(prevList)
	case given != nil:
		beforeSnap, before, err = in.givenState(t, given)
	default:
		return api.InputResult{}, fmt.Errorf("%w: event %s has prev_events unknown here", api.ErrInvalidEvent, pdu.EventID())
	}
	if err != nil {
		return api.InputResult{}, err
	}
	rejected := in.checkAuthEvents(ctx, pdu)
	if rejected == "" {
		if err := in.authorise(ctx, t, pdu, before); err != nil {
			rejected = reason(err)
		}
	}
	softFailed := false
	if rejected == "" {
		if err := in.authorise(ctx, t, pdu, t.state); err != nil {
			softFailed = true
		}
	}
	if rejected == "" && !softFailed {
		// The policy server's signature, when the room uses one (spec
		// v1.18, check 7): on current state too.
		if softFailed, err = in.failsPolicy(ctx, t, pdu); err != nil {
			return api.InputResult{}, err
		}
	}
	res.Rejected, res.SoftFailed = rejected, softFailed
	if _, err := t.addEvent(pdu, beforeSnap, before, rejected, softFailed); err != nil {
		return api.InputResult{}, err
	}
	return res, nil
}

// stateAfterAll returns the state after the events prevs (an event's
// prev events), which must have state: after the one, or the resolution
// of the states after each of them, stored as a snapshot.
func (t *roomTxn) stateAfterAll(prevs []*state.Event) (storage.Snapshot, storage.StateMap, error) {
	sets := make([]storage.StateMap, 0, len(prevs))
	var parent storage.Snapshot
	for _, p := range prevs {
		snap, st, err := t.in.deps.Snapshots.Load(t.ctx, p.StateAfterNID)
		if err != nil {
			return storage.Snapshot{}, nil, err
		}
		parent = snap
		sets = append(sets, st)
	}
	st, err := t.in.deps.Resolver.Resolve(t.ctx, t.version.Version(), sets)
	if err != nil {
		return storage.Snapshot{}, nil, err
	}
	if len(sets) == 1 {
		return parent, st, nil
	}
	snap, err := t.snapshot(parent, sets[len(sets)-1], st)
	return snap, st, err
}

// checkAuthEvents checks the event against its own auth events, which
// must be known and not rejected; it returns why not, or "".
func (in *Inputter) checkAuthEvents(ctx context.Context, pdu gomatrixserverlib.PDU) string {
	return in.checkAuthEventsWith(ctx, pdu, nil)
}

// checkAuthEventsWith is checkAuthEvents where the auth events may also
// be among pending, events about to be stored with them.
func (in *Inputter) checkAuthEventsWith(ctx context.Context, pdu gomatrixserverlib.PDU, pending map[string]*state.Event) string {
	ids := pdu.AuthEventIDs()
	var stored []string
	for _, id := range ids {
		if pending[id] == nil {
			stored = append(stored, id)
		}
	}
	evs, err := in.deps.Events.ByID(ctx, stored)
	if err != nil {
		return "auth events unavailable"
	}
	for _, id := range ids {
		if e := pending[id]; e != nil {
			evs[id] = e
		}
	}
	pdus := make([]gomatrixserverlib.PDU, 0, len(ids))
	for _, id := range ids {
		e, ok := evs[id]
		if !ok {
			return "unknown auth event " + id
		}
		if e.Rejected != "" {
			return "auth event " + id + " was rejected"
		}
		pdus = append(pdus, e.PDU)
	}
	provider, err := gomatrixserverlib.NewAuthEvents(pdus)
	if err != nil {
		return "bad auth events: " + err.Error()
	}
	if err := gomatrixserverlib.Allowed(pdu, provider, state.UserIDForSender); err != nil {
		return err.Error()
	}
	return ""
}

func reason(err error) string {
	var na *api.NotAllowedError
	if errors.As(err, &na) {
		return na.Reason
	}
	return err.Error()
}
