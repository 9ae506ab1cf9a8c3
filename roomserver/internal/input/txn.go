package input

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"strings"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	dbstorage "github.com/matrix-gouv/homeserver/internal/storage"
	"github.com/matrix-gouv/homeserver/roomserver/api"
	"github.com/matrix-gouv/homeserver/roomserver/internal/state"
	"github.com/matrix-gouv/homeserver/roomserver/storage"
)

// roomTxn is a room's view while a transaction changes it: the changes
// reach the room's in-memory view only once the transaction commits.
type roomTxn struct {
	in  *Inputter
	ctx context.Context
	tx  *sql.Tx
	// batch is tx with the rows queued for the end of the write.
	batch *dbstorage.Batch
	// nid and version of the room (set by CreateRoom for a new room).
	nid     int64
	version gomatrixserverlib.IRoomVersion
	snap    storage.Snapshot
	state   storage.StateMap
	ext     []*state.Event
	// stateChanged records whether current state or extremities moved.
	stateChanged, extChanged bool
	// advanced counts the events that moved the extremities; checkpoint
	// asks for the extremities to be written whatever the count, after
	// an accepted event that replay would wrongly count as one.
	advanced   int
	checkpoint bool
	// wroteExt records that the transaction wrote the extremities.
	wroteExt bool
	// added are the events written, cached at once (so resolution within
	// the transaction finds them) and forgotten if it rolls back.
	added []*state.Event
	// changed are events whose rows the transaction changed (redacted):
	// forgotten by the cache at once and again once it commits, since a
	// read meanwhile sees the old row.
	changed []int64
	// snaps are the snapshots written, cached at once (see added).
	snaps  []int64
	tuples []rememberedTuple
	types  []rememberedType
	// queued are the output events the transaction wrote to the outbox,
	// handed to the publisher once it commits.
	queued []storage.OutboxEntry
	// txn is the transaction id of the next event added (local sends).
	txn *api.Txn
}

type rememberedType struct {
	typ string
	nid int64
}

type rememberedTuple struct {
	typ, stateKey string
	nids          storage.StateKeyNIDs
}

// commitLocked runs work in one transaction on a copy of the room's view,
// and installs the result in the view only if the transaction commits.
// The transaction may be shared with other rooms' (storage's
// WriteBatched) and then replayed alone if one of them fails, so each run
// starts from a fresh copy of the view and work must keep its effects in
// t.
func (in *Inputter) commitLocked(ctx context.Context, r *room, work func(t *roomTxn) error) error {
	var t *roomTxn
	forget := func() {
		if t != nil {
			for _, e := range t.added {
				in.deps.Events.Forget(e.NID)
			}
			in.deps.Snapshots.Settle(t.snaps)
		}
	}
	err := in.deps.Store.WriteBatched(ctx, func(b *dbstorage.Batch) error {
		forget() // a run rolled back with its batch
		tx := b.Tx
		t = &roomTxn{in: in, ctx: ctx, tx: tx, batch: b, nid: r.nid, version: r.version, snap: r.snap, state: r.state, ext: r.ext}
		if err := work(t); err != nil {
			return err
		}
		if t.checkpoint || (t.extChanged && r.sinceCheckpoint+t.advanced > maxReplay) {
			if err := in.deps.Store.SetExtremities(ctx, tx, t.nid, r.storedExt, nidsOf(t.ext), maxNID(t.added)); err != nil {
				return err
			}
			t.wroteExt = true
		}
		if t.stateChanged {
			return in.deps.Store.SetCurrentState(ctx, tx, t.nid, t.snap.NID)
		}
		return nil
	})
	if err != nil {
		forget()
		return err
	}
	in.deps.Events.Settle(nidsOf(t.added))
	for _, nid := range t.changed {
		in.deps.Events.Forget(nid)
	}
	in.deps.Snapshots.Settle(t.snaps)
	for _, tu := range t.tuples {
		in.deps.Tuples.Remember(tu.typ, tu.stateKey, tu.nids)
	}
	for _, ty := range t.types {
		in.deps.Tuples.RememberType(ty.typ, ty.nid)
	}
	r.nid, r.version, r.snap, r.state, r.ext, r.loaded = t.nid, t.version, t.snap, t.state, t.ext, true
	if t.wroteExt {
		r.storedExt, r.sinceCheckpoint = nidsOf(t.ext), 0
	} else {
		r.sinceCheckpoint += t.advanced
	}
	if len(t.queued) > 0 && in.deps.Queued != nil {
		in.deps.Queued(t.queued)
	}
	return nil
}

// queue writes the output event of ev to the outbox, in the transaction.
func (t *roomTxn) queue(eventNID int64, ev api.Event, outputJSON []byte) error {
	t.in.deps.Store.AddToOutbox(t.batch, eventNID, outputJSON)
	t.queued = append(t.queued, storage.OutboxEntry{EventNID: eventNID, JSON: outputJSON, RoomID: ev.RoomID, EventID: ev.EventID})
	return nil
}

// maxReplay is how many accepted events may follow the last written set
// of a room's extremities before it is written again: loading a room
// replays them (storage.ExtremityLog). Writing the set at every event
// would cost a statement per message.
const maxReplay = 64

// maxNID returns the highest nid among evs (0 for none).
func maxNID(evs []*state.Event) int64 {
	var m int64
	for _, e := range evs {
		m = max(m, e.NID)
	}
	return m
}

func nidsOf(evs []*state.Event) []int64 {
	nids := make([]int64, len(evs))
	for i, e := range evs {
		nids[i] = e.NID
	}
	return nids
}

// intern returns the nids of an event's type and state key (state key nid
// 0 for non-state events).
func (t *roomTxn) intern(pdu gomatrixserverlib.PDU) (storage.StateKeyNIDs, error) {
	if pdu.StateKey() == nil {
		typeNID, err := t.in.deps.Tuples.InternType(t.ctx, t.tx, pdu.Type())
		if err != nil {
			return storage.StateKeyNIDs{}, err
		}
		t.types = append(t.types, rememberedType{pdu.Type(), typeNID})
		return storage.StateKeyNIDs{TypeNID: typeNID}, nil
	}
	k, err := t.in.deps.Tuples.Intern(t.ctx, t.tx, pdu.Type(), *pdu.StateKey())
	if err != nil {
		return storage.StateKeyNIDs{}, err
	}
	t.tuples = append(t.tuples, rememberedTuple{pdu.Type(), *pdu.StateKey(), k})
	return k, nil
}

// lookup returns the nids of a (type, state key) pair, including those
// interned by this transaction (not yet visible to other connections).
func (t *roomTxn) lookup(typ, stateKey string) (storage.StateKeyNIDs, bool, error) {
	for _, tu := range t.tuples {
		if tu.typ == typ && tu.stateKey == stateKey {
			return tu.nids, true, nil
		}
	}
	return t.in.deps.Tuples.Lookup(t.ctx, typ, stateKey)
}

// snapshot stores st as a snapshot derived from parent.
func (t *roomTxn) snapshot(parent storage.Snapshot, parentState, st storage.StateMap) (storage.Snapshot, error) {
	snap, err := t.in.deps.Store.InsertSnapshot(t.ctx, t.tx, t.nid, parent, parentState, st)
	if err != nil {
		return storage.Snapshot{}, err
	}
	// Snapshot nids are never reused, so caching one that a rollback
	// discards is harmless.
	t.in.deps.Snapshots.Add(snap, st)
	t.snaps = append(t.snaps, snap.NID)
	return snap, nil
}

// addEvent stores one event with the state before it and, unless it is
// rejected or soft-failed, makes it a forward extremity and moves the
// room's current state. before must already be stored (its NID set) unless
// it is the empty state.
func (t *roomTxn) addEvent(pdu gomatrixserverlib.PDU, before storage.Snapshot, beforeState storage.StateMap, rejected string, softFailed bool) (*state.Event, error) {
	tuple, err := t.intern(pdu)
	if err != nil {
		return nil, err
	}
	row := storage.Event{
		RoomNID: t.nid, EventID: pdu.EventID(), Tuple: tuple, Depth: pdu.Depth(),
		OriginServerTS: int64(pdu.OriginServerTS()), Sender: string(pdu.SenderID()), JSON: pdu.JSON(),
		StateBeforeNID: before.NID, StateAfterNID: before.NID, Rejected: rejected, SoftFailed: softFailed,
	}
	if row.NID, err = t.in.deps.Store.InsertEvent(t.ctx, t.tx, row); err != nil {
		return nil, err
	}
	if err := t.redactedOnArrival(&row); err != nil {
		return nil, err
	}
	after, afterState := before, beforeState
	if row.IsState() && rejected == "" {
		afterState = maps.Clone(beforeState)
		afterState[tuple] = row.NID
		if after, err = t.snapshot(before, beforeState, afterState); err != nil {
			return nil, err
		}
		row.StateAfterNID = after.NID
		if err := t.in.deps.Store.SetStateAfter(t.ctx, t.tx, row.NID, after.NID); err != nil {
			return nil, err
		}
	}
	ev := &state.Event{Event: row, PDU: pdu}
	t.in.deps.Events.Add(ev)
	t.added = append(t.added, ev)
	if rejected != "" {
		return ev, nil
	}
	out := api.OutputEvent{SoftFailed: softFailed, Txn: t.txn}
	t.txn = nil
	if !softFailed {
		if err := t.advance(ev, before.NID, after, afterState, &out); err != nil {
			return nil, err
		}
		if err := t.redactAndRelate(ev); err != nil {
			return nil, err
		}
	}
	if out.Event, err = t.in.deps.Events.APIEvent(t.ctx, ev); err != nil {
		return nil, err
	}
	if m, _ := pdu.Membership(); pdu.Type() == spec.MRoomMember && (m == spec.Invite || m == spec.Knock) {
		if out.StrippedState, err = t.in.deps.Events.StrippedState(t.ctx, t.state, t.lookup); err != nil {
			return nil, err
		}
	}
	js, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode output event: %w", err)
	}
	if err := t.queue(row.NID, out.Event, js); err != nil {
		return nil, err
	}
	return ev, nil
}

// advance makes ev a forward extremity in place of its prev events, and
// sets the room's current state: the state after ev when it is the only
// extremity, else the resolution of the states after every extremity.
func (t *roomTxn) advance(ev *state.Event, beforeNID int64, after storage.Snapshot, afterState storage.StateMap, out *api.OutputEvent) error {
	t.ext, t.extChanged = state.Advance(t.ext, ev), true
	t.advanced++

	newSnap, newState := after, afterState
	if len(t.ext) > 1 {
		sets := make([]storage.StateMap, len(t.ext))
		for i, e := range t.ext {
			_, st, err := t.in.deps.Snapshots.Load(t.ctx, e.StateAfterNID)
			if err != nil {
				return err
			}
			sets[i] = st
		}
		resolved, err := t.in.deps.Resolver.Resolve(t.ctx, t.version.Version(), sets)
		if err != nil {
			return err
		}
		if maps.Equal(resolved, t.state) {
			return nil
		}
		if maps.Equal(resolved, afterState) {
			newState = afterState
		} else if newSnap, err = t.snapshot(t.snap, t.state, resolved); err != nil {
			return err
		} else {
			newState = resolved
		}
	}
	if newSnap.NID == t.snap.NID {
		return nil
	}
	var d stateDiff
	if len(t.ext) == 1 && beforeNID == t.snap.NID {
		// Built on the current state, the event changes only its own
		// key: no need to compare whole states (large in big rooms).
		d.added = []int64{ev.NID}
		if prev, ok := t.state[ev.Tuple]; ok {
			d.removed = []int64{prev}
		}
	} else {
		d = diffStates(t.state, newState)
	}
	if err := t.applyStateChange(d, out); err != nil {
		return err
	}
	t.snap, t.state, t.stateChanged = newSnap, newState, true
	return nil
}

// stateDiff is how current state changed: events added, events replaced
// or removed, and among those the ones whose key is gone altogether.
type stateDiff struct {
	added, removed, gone []int64
}

// diffStates compares two whole states.
func diffStates(old, cur storage.StateMap) stateDiff {
	var d stateDiff
	for k, nid := range cur {
		if old[k] != nid {
			d.added = append(d.added, nid)
			if prev, ok := old[k]; ok {
				d.removed = append(d.removed, prev)
			}
		}
	}
	for k, nid := range old {
		if _, ok := cur[k]; !ok {
			d.removed = append(d.removed, nid)
			d.gone = append(d.gone, nid)
		}
	}
	return d
}

// applyStateChange keeps the membership table in step with current state
// and lists the state events added and removed.
func (t *roomTxn) applyStateChange(d stateDiff, out *api.OutputEvent) error {
	addedNIDs, removedNIDs, gone := d.added, d.removed, d.gone
	added, err := t.in.deps.Events.ByNID(t.ctx, addedNIDs)
	if err != nil {
		return err
	}
	for _, e := range added {
		out.StateAdded = append(out.StateAdded, e.EventID)
		if e.PDU.Type() != spec.MRoomMember || e.PDU.StateKey() == nil {
			continue
		}
		m, err := e.PDU.Membership()
		if err != nil {
			return fmt.Errorf("membership of %s: %w", e.EventID, err)
		}
		if err := t.in.deps.Store.SetMembership(t.ctx, t.tx, t.nid, *e.PDU.StateKey(), m, e.NID); err != nil {
			return err
		}
	}
	removed, err := t.in.deps.Events.ByNID(t.ctx, removedNIDs)
	if err != nil {
		return err
	}
	goneSet := map[int64]bool{}
	for _, n := range gone {
		goneSet[n] = true
	}
	for _, e := range removed {
		out.StateRemoved = append(out.StateRemoved, e.EventID)
		if goneSet[e.NID] && e.PDU.Type() == spec.MRoomMember && e.PDU.StateKey() != nil {
			if err := t.in.deps.Store.DeleteMembership(t.ctx, t.tx, t.nid, *e.PDU.StateKey()); err != nil {
				return err
			}
		}
	}
	return nil
}

// redact applies an accepted redaction to its target when the target is
// in this room and the redaction may apply: its sender sent the target,
// or has the power to redact others' events.
func (t *roomTxn) redact(red *state.Event) error {
	targetID := red.PDU.Redacts()
	if targetID == "" {
		return nil
	}
	targets, err := t.in.deps.Events.ByID(t.ctx, []string{targetID})
	if err != nil {
		return err
	}
	target, ok := targets[targetID]
	if !ok {
		// Not here yet (an event of the room's history before this
		// server joined): the redaction applies when it comes.
		return t.in.deps.Store.AddPendingRedaction(t.ctx, t.tx, storage.PendingRedaction{
			TargetID: targetID, RedactionID: red.EventID, RoomNID: t.nid, Sender: string(red.PDU.SenderID())})
	}
	if target.RoomNID != t.nid || target.RedactedBy != "" {
		return nil // another room's, or already redacted: nothing to do
	}
	if ok, err := t.mayRedact(string(red.PDU.SenderID()), string(target.PDU.SenderID())); !ok || err != nil {
		return err
	}
	if err := t.in.deps.Store.SetRedactedBy(t.ctx, t.tx, target.NID, red.EventID); err != nil {
		return err
	}
	t.in.deps.Events.Forget(target.NID)
	t.changed = append(t.changed, target.NID)
	return nil
}

// mayRedact reports whether a redaction by sender applies to an event
// of targetSender in the room as it is now: its own event, or sender has
// the power to redact others'.
func (t *roomTxn) mayRedact(sender, targetSender string) (bool, error) {
	if sender == targetSender {
		return true, nil
	}
	provider, err := t.in.authProvider(t.ctx, t, t.state, []gomatrixserverlib.StateKeyTuple{
		{EventType: spec.MRoomPowerLevels}, {EventType: spec.MRoomCreate},
	})
	if err != nil {
		return false, err
	}
	pl, err := provider.PowerLevels()
	if err != nil {
		return false, err
	}
	create, _ := provider.Create()
	levels := &gomatrixserverlib.PowerLevelContent{}
	if pl != nil {
		if levels, err = pl.PowerLevels(); err != nil {
			return false, nil // unreadable power levels grant nothing
		}
	} else {
		levels.Defaults()
	}
	id := spec.SenderID(sender)
	return levels.UserLevel(id) >= levels.Redact || isCreator(create, id, t.version), nil
}

// redactedOnArrival applies to row, an event just stored, the redaction
// that came before it, if one did and may apply: row.RedactedBy is set,
// so that the event is cached, output and served redacted. Only other
// servers' events are looked for: a local event is new to everyone.
func (t *roomTxn) redactedOnArrival(row *storage.Event) error {
	if row.RedactedBy != "" || row.Rejected != "" || strings.HasSuffix(row.Sender, ":"+string(t.in.deps.ServerName)) {
		return nil
	}
	pending, err := t.in.deps.Store.TakePendingRedactions(t.ctx, t.tx, row.EventID)
	if err != nil {
		return err
	}
	for _, r := range pending {
		if r.RoomNID != row.RoomNID {
			continue
		}
		ok, err := t.mayRedact(r.Sender, row.Sender)
		if err != nil {
			return err
		}
		if ok {
			row.RedactedBy = r.RedactionID
			return t.in.deps.Store.SetRedactedBy(t.ctx, t.tx, row.NID, r.RedactionID)
		}
	}
	return nil
}

// redactAndRelate applies an accepted event's redaction, if it is one,
// and records its m.relates_to.
func (t *roomTxn) redactAndRelate(ev *state.Event) error {
	if ev.PDU.Type() == spec.MRoomRedaction {
		if err := t.redact(ev); err != nil {
			return err
		}
	}
	return t.indexRelation(ev)
}

// indexRelation records the event's m.relates_to, if it has one.
func (t *roomTxn) indexRelation(ev *state.Event) error {
	var c struct {
		RelatesTo *struct {
			RelType string `json:"rel_type"`
			EventID string `json:"event_id"`
		} `json:"m.relates_to"`
	}
	if json.Unmarshal(ev.PDU.Content(), &c) != nil || c.RelatesTo == nil || c.RelatesTo.RelType == "" || c.RelatesTo.EventID == "" {
		return nil
	}
	return t.in.deps.Store.InsertRelation(t.ctx, t.tx, t.nid, storage.Relation{
		EventNID: ev.NID, Pos: ev.Pos(), RelatesTo: c.RelatesTo.EventID, RelType: c.RelatesTo.RelType,
		EventType: ev.PDU.Type(), Sender: string(ev.PDU.SenderID()),
	})
}

// isCreator reports whether sender is a creator with unlimited power
// (room version 12's privileged creators).
func isCreator(create gomatrixserverlib.PDU, sender spec.SenderID, v gomatrixserverlib.IRoomVersion) bool {
	if create == nil || !v.PrivilegedCreators() {
		return false
	}
	if create.SenderID() == sender {
		return true
	}
	var c struct {
		AdditionalCreators []string `json:"additional_creators"`
	}
	_ = json.Unmarshal(create.Content(), &c)
	for _, u := range c.AdditionalCreators {
		if u == string(sender) {
			return true
		}
	}
	return false
}
