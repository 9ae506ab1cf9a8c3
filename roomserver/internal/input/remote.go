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
			res, err := in.inputOne(ctx, t, r.id, raw)
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

// inputOne checks and adds one event in t (see InputEvents).
func (in *Inputter) inputOne(ctx context.Context, t *roomTxn, roomID string, raw json.RawMessage) (api.InputResult, error) {
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
	if len(prevs) != len(pdu.PrevEventIDs()) {
		return api.InputResult{}, fmt.Errorf("%w: event %s has unknown prev_events", api.ErrInvalidEvent, pdu.EventID())
	}
	// The state before the event: after its prev event, or the
	// resolution of the states after each of them.
	sets := make([]storage.StateMap, 0, len(prevs))
	var parent storage.Snapshot
	for _, id := range pdu.PrevEventIDs() {
		snap, st, err := in.deps.Snapshots.Load(ctx, prevs[id].StateAfterNID)
		if err != nil {
			return api.InputResult{}, err
		}
		parent = snap
		sets = append(sets, st)
	}
	before, err := in.deps.Resolver.Resolve(ctx, t.version.Version(), sets)
	if err != nil {
		return api.InputResult{}, err
	}
	beforeSnap := parent
	if len(sets) > 1 {
		_, parentState, err := in.deps.Snapshots.Load(ctx, parent.NID)
		if err != nil {
			return api.InputResult{}, err
		}
		if beforeSnap, err = t.snapshot(parent, parentState, before); err != nil {
			return api.InputResult{}, err
		}
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
