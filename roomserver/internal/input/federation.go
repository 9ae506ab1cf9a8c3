package input

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/matrix-gouv/homeserver/roomserver/api"
	"github.com/matrix-gouv/homeserver/roomserver/internal/state"
	"github.com/matrix-gouv/homeserver/roomserver/storage"
)

// EventTemplate builds an unsigned event on the room's extremities and
// checks it against current state (api.Federator).
func (in *Inputter) EventTemplate(ctx context.Context, roomID string, p api.ProtoEvent) (api.EventTemplate, error) {
	r := in.lock(roomID)
	defer r.mu.Unlock()
	if err := in.loadLocked(ctx, r); err != nil {
		return api.EventTemplate{}, err
	}
	view := &roomTxn{in: in, ctx: ctx, nid: r.nid, version: r.version, snap: r.snap, state: r.state, ext: r.ext}
	proto, err := in.protoLocal(ctx, view, p)
	if err != nil {
		return api.EventTemplate{}, err
	}
	// Built and signed by us only to run the auth rules on it: the
	// other server builds and signs its own from the template.
	pdu, err := view.version.NewEventBuilderFromProtoEvent(&proto).Build(time.Now(), in.deps.ServerName, in.deps.KeyID, in.deps.Key)
	if err != nil {
		return api.EventTemplate{}, buildError(err)
	}
	if err := in.authorise(ctx, view, pdu, r.state); err != nil {
		return api.EventTemplate{}, err
	}
	js, err := json.Marshal(proto)
	if err != nil {
		return api.EventTemplate{}, fmt.Errorf("encode event template: %w", err)
	}
	return api.EventTemplate{RoomVersion: string(view.version.Version()), Proto: js}, nil
}

// ImportRoom stores a remote join's answer as a new room (api.Federator).
func (in *Inputter) ImportRoom(ctx context.Context, req api.ImportRoomRequest) (api.InputResult, error) {
	v, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(req.RoomVersion))
	if err != nil {
		return api.InputResult{}, api.ErrUnsupportedVersion
	}
	join, err := v.NewEventFromUntrustedJSON(req.Join)
	if err != nil {
		return api.InputResult{}, fmt.Errorf("%w: join event: %v", api.ErrInvalidEvent, err)
	}
	if join.RoomID().String() != req.RoomID {
		return api.InputResult{}, fmt.Errorf("%w: join event is for room %s", api.ErrInvalidEvent, join.RoomID().String())
	}
	// The auth chain and the state, each once, parents first: an event's
	// auth events are older, so depth orders them well enough, and
	// checkAuthEvents rejects any whose auth events came later.
	byID := map[string]gomatrixserverlib.PDU{}
	stateIDs := map[string]bool{}
	for i, raws := range [][]json.RawMessage{req.AuthChain, req.State} {
		for _, raw := range raws {
			pdu, err := v.NewEventFromUntrustedJSON(raw)
			if err != nil {
				return api.InputResult{}, fmt.Errorf("%w: state or auth event: %v", api.ErrInvalidEvent, err)
			}
			if pdu.RoomID().String() != req.RoomID {
				return api.InputResult{}, fmt.Errorf("%w: event %s is for room %s", api.ErrInvalidEvent, pdu.EventID(), pdu.RoomID().String())
			}
			byID[pdu.EventID()] = pdu
			if i == 1 {
				if pdu.StateKey() == nil {
					return api.InputResult{}, fmt.Errorf("%w: state event %s has no state key", api.ErrInvalidEvent, pdu.EventID())
				}
				stateIDs[pdu.EventID()] = true
			}
		}
	}
	outliers := make([]gomatrixserverlib.PDU, 0, len(byID))
	for _, pdu := range byID {
		outliers = append(outliers, pdu)
	}
	sortByDepth(outliers)

	r := in.lock(req.RoomID)
	defer r.mu.Unlock()
	stub := false
	if err := in.loadLocked(ctx, r); err == nil {
		// Only a room known from an invite (no create event in its
		// state, no extremities) may be imported into.
		if stub, err = in.isStubLocked(ctx, r); err != nil {
			return api.InputResult{}, err
		}
		if !stub {
			return api.InputResult{}, fmt.Errorf("import room %s: %w", req.RoomID, storage.ErrRoomExists)
		}
	} else if err != api.ErrRoomNotFound {
		return api.InputResult{}, err
	}
	res := api.InputResult{EventID: join.EventID()}
	err = in.commitLocked(ctx, r, func(t *roomTxn) error {
		if !stub {
			if t.nid, err = in.deps.Store.InsertRoom(ctx, t.tx, req.RoomID, req.RoomVersion); err != nil {
				return err
			}
			t.version, t.state = v, storage.StateMap{}
		}
		known, err := in.deps.Events.ByID(ctx, idsOf(outliers))
		if err != nil {
			return err
		}
		var unknown []gomatrixserverlib.PDU
		for _, pdu := range outliers {
			if _, ok := known[pdu.EventID()]; !ok {
				unknown = append(unknown, pdu)
			}
		}
		added, err := t.addOutliers(unknown)
		if err != nil {
			return err
		}
		before := storage.StateMap{}
		for _, pdu := range outliers {
			ev, ok := known[pdu.EventID()]
			if !ok {
				ev = added[pdu.EventID()]
			}
			if stateIDs[pdu.EventID()] && ev.Rejected == "" {
				before[ev.Tuple] = ev.NID
			}
		}
		snap, err := t.snapshot(storage.Snapshot{}, storage.StateMap{}, before)
		if err != nil {
			return err
		}
		if reason := in.checkAuthEvents(ctx, join); reason != "" {
			return &api.NotAllowedError{Reason: reason}
		}
		if err := in.authorise(ctx, t, join, before); err != nil {
			return err
		}
		_, err = t.addEvent(join, snap, before, "", false)
		return err
	})
	if err != nil {
		return api.InputResult{}, err
	}
	return res, nil
}

// addOutliers stores events known only as state or auth events (no
// state of their own, no place in the timeline, nothing published), in
// bulk: a remote join's state and auth chain are thousands of events.
// Each is checked against its auth events, which come earlier in pdus or
// are stored already; one that fails is stored rejected.
func (t *roomTxn) addOutliers(pdus []gomatrixserverlib.PDU) (map[string]*state.Event, error) {
	var pairs []storage.TypeStateKey
	for _, pdu := range pdus {
		if sk := pdu.StateKey(); sk != nil {
			pairs = append(pairs, storage.TypeStateKey{Type: pdu.Type(), StateKey: *sk})
		}
	}
	tuples, err := t.in.deps.Store.InternTuples(t.ctx, t.tx, pairs)
	if err != nil {
		return nil, err
	}
	for p, nids := range tuples {
		t.tuples = append(t.tuples, rememberedTuple{p.Type, p.StateKey, nids})
	}
	added := make(map[string]*state.Event, len(pdus))
	rows := make([]storage.Event, len(pdus))
	for i, pdu := range pdus {
		var tuple storage.StateKeyNIDs
		if sk := pdu.StateKey(); sk != nil {
			tuple = tuples[storage.TypeStateKey{Type: pdu.Type(), StateKey: *sk}]
		} else if tuple, err = t.intern(pdu); err != nil {
			return nil, err
		}
		rows[i] = storage.Event{
			RoomNID: t.nid, EventID: pdu.EventID(), Tuple: tuple, Depth: pdu.Depth(),
			OriginServerTS: int64(pdu.OriginServerTS()), Sender: string(pdu.SenderID()), JSON: pdu.JSON(),
			Rejected: t.in.checkAuthEventsWith(t.ctx, pdu, added), Outlier: true,
		}
		added[pdu.EventID()] = &state.Event{Event: rows[i], PDU: pdu}
	}
	nids, err := t.in.deps.Store.InsertEvents(t.ctx, t.tx, rows)
	if err != nil {
		return nil, err
	}
	for i, pdu := range pdus {
		ev := added[pdu.EventID()]
		ev.NID = nids[i]
		t.in.deps.Events.Add(ev)
		t.added = append(t.added, ev)
	}
	return added, nil
}

func idsOf(pdus []gomatrixserverlib.PDU) []string {
	ids := make([]string, len(pdus))
	for i, p := range pdus {
		ids[i] = p.EventID()
	}
	return ids
}

// isStubLocked reports whether the room is known only from an invite:
// no create event in its current state.
func (in *Inputter) isStubLocked(ctx context.Context, r *room) (bool, error) {
	k, ok, err := in.deps.Tuples.Lookup(ctx, "m.room.create", "")
	if err != nil {
		return false, err
	}
	if !ok {
		return true, nil
	}
	_, found := r.state[k]
	return !found && len(r.ext) == 0, nil
}

// ImportMembership keeps an invite to, or a knock on, a room this server
// is not in, or the leave rejecting or withdrawing it (api.Federator).
func (in *Inputter) ImportMembership(ctx context.Context, req api.ImportMembershipRequest) (api.InputResult, error) {
	v, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(req.RoomVersion))
	if err != nil {
		return api.InputResult{}, api.ErrUnsupportedVersion
	}
	invite, err := v.NewEventFromUntrustedJSON(req.Event)
	if err != nil {
		return api.InputResult{}, fmt.Errorf("%w: membership event: %v", api.ErrInvalidEvent, err)
	}
	m, _ := invite.Membership()
	if invite.Type() != "m.room.member" || (m != "invite" && m != "knock" && m != "leave") || invite.StateKey() == nil || invite.RoomID().String() != req.RoomID {
		return api.InputResult{}, fmt.Errorf("%w: not an invite, knock or leave of room %s", api.ErrInvalidEvent, req.RoomID)
	}
	// The resident server's stripped state rides in the event's unsigned
	// section (invite_room_state or knock_room_state, as the spec names
	// them), where StrippedState finds it (unsigned is covered by
	// neither hashes nor signatures).
	if len(req.StrippedState) > 0 {
		if invite, err = invite.SetUnsigned(map[string]any{m + "_room_state": req.StrippedState}); err != nil {
			return api.InputResult{}, fmt.Errorf("%w: %v", api.ErrInvalidEvent, err)
		}
	}
	r := in.lock(req.RoomID)
	defer r.mu.Unlock()
	exists := false
	if err := in.loadLocked(ctx, r); err == nil {
		stub, err := in.isStubLocked(ctx, r)
		if err != nil {
			return api.InputResult{}, err
		}
		if !stub {
			return api.InputResult{}, fmt.Errorf("import membership in %s: %w", req.RoomID, storage.ErrRoomExists)
		}
		exists = true
	} else if err != api.ErrRoomNotFound {
		return api.InputResult{}, err
	}
	if m == "leave" && !exists {
		return api.InputResult{}, fmt.Errorf("leave of %s: %w", req.RoomID, api.ErrRoomNotFound)
	}
	res := api.InputResult{EventID: invite.EventID()}
	known, err := in.deps.Events.ByID(ctx, []string{invite.EventID()})
	if err != nil {
		return api.InputResult{}, err
	}
	if _, ok := known[invite.EventID()]; ok {
		return res, nil
	}
	err = in.commitLocked(ctx, r, func(t *roomTxn) error {
		if !exists {
			if t.nid, err = in.deps.Store.InsertRoom(ctx, t.tx, req.RoomID, req.RoomVersion); err != nil {
				return err
			}
			t.version, t.state = v, storage.StateMap{}
		}
		return t.addOutOfRoomMember(invite, req.StrippedState)
	})
	if err != nil {
		return api.InputResult{}, err
	}
	return res, nil
}

// addOutOfRoomMember stores a member event of a stub room as its state
// and publishes it (with the stripped state given, for an invite). It is
// no forward extremity: its prev_events are unknown here.
func (t *roomTxn) addOutOfRoomMember(pdu gomatrixserverlib.PDU, stripped []json.RawMessage) error {
	tuple, err := t.intern(pdu)
	if err != nil {
		return err
	}
	row := storage.Event{
		RoomNID: t.nid, EventID: pdu.EventID(), Tuple: tuple, Depth: pdu.Depth(),
		OriginServerTS: int64(pdu.OriginServerTS()), Sender: string(pdu.SenderID()), JSON: pdu.JSON(),
		StateBeforeNID: t.snap.NID,
	}
	if row.NID, err = t.in.deps.Store.InsertEvent(t.ctx, t.tx, row); err != nil {
		return err
	}
	after := maps.Clone(t.state)
	after[tuple] = row.NID
	snap, err := t.snapshot(t.snap, t.state, after)
	if err != nil {
		return err
	}
	row.StateAfterNID = snap.NID
	if err := t.in.deps.Store.SetStateAfter(t.ctx, t.tx, row.NID, snap.NID); err != nil {
		return err
	}
	ev := &state.Event{Event: row, PDU: pdu}
	t.in.deps.Events.Add(ev)
	t.added = append(t.added, ev)
	out := api.OutputEvent{StrippedState: stripped}
	if err := t.applyStateChange(diffStates(t.state, after), &out); err != nil {
		return err
	}
	t.snap, t.state, t.stateChanged = snap, after, true
	// Accepted but no extremity: replaying the room's extremity log
	// would count it as one, so the set is written past it.
	t.checkpoint = true
	if out.Event, err = t.in.deps.Events.APIEvent(t.ctx, ev); err != nil {
		return err
	}
	js, err := json.Marshal(out)
	if err != nil {
		return fmt.Errorf("encode output event: %w", err)
	}
	return t.queue(row.NID, out.Event, js)
}
