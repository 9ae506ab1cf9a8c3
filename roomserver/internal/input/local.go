package input

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/matrix-gouv/homeserver/roomserver/api"
	"github.com/matrix-gouv/homeserver/roomserver/internal/state"
	"github.com/matrix-gouv/homeserver/roomserver/storage"
)

// maxPrevEvents is the most prev_events an event may have (spec, PDUs).
const maxPrevEvents = 20

// Send builds a local event on the room's forward extremities, checks it
// against the current state and commits it.
//
// A send with a transaction id the device already used on the endpoint
// returns the event sent the first time. The id is stored under a unique
// key in the event's own commit, and the room's lock orders a retry after
// the first attempt; so a retry fails (at the latest on that key) and
// then finds the first event. Looking the id up only then spares every
// send a read.
func (in *Inputter) Send(ctx context.Context, roomID string, p api.ProtoEvent) (api.Event, error) {
	ev, err := in.send(ctx, roomID, p)
	if err == nil || p.Txn == nil {
		return ev, err
	}
	nid, ok, lookupErr := in.deps.Store.TxnEvent(ctx, p.Sender, p.Txn.DeviceID, p.Txn.Scope, p.Txn.ID)
	switch {
	case lookupErr != nil:
		return api.Event{}, fmt.Errorf("%w (and looking up the transaction id: %v)", err, lookupErr)
	case !ok:
		return api.Event{}, err
	}
	evs, lookupErr := in.deps.Events.ByNID(ctx, []int64{nid})
	if lookupErr != nil || len(evs) == 0 {
		return api.Event{}, fmt.Errorf("%w (and loading the event of the transaction id: %v)", err, lookupErr)
	}
	return in.deps.Events.APIEvent(ctx, evs[0])
}

// send is Send without the lookup of a retried transaction id.
func (in *Inputter) send(ctx context.Context, roomID string, p api.ProtoEvent) (api.Event, error) {
	r := in.lock(roomID)
	defer r.mu.Unlock()
	if err := in.loadLocked(ctx, r); err != nil {
		return api.Event{}, err
	}
	// Build, sign and authorise before the transaction: the room's lock
	// keeps its view still, and the transaction (a scarce write slot)
	// is held only for the writes.
	view := &roomTxn{in: in, ctx: ctx, nid: r.nid, version: r.version, snap: r.snap, state: r.state, ext: r.ext}
	pdu, err := in.buildLocal(ctx, view, p, time.Now())
	if err != nil {
		return api.Event{}, err
	}
	if err := in.authorise(ctx, view, pdu, r.state); err != nil {
		return api.Event{}, err
	}
	// The room's policy server, if it has one, signs it or refuses it:
	// a network call, made with the room's lock held (its view must not
	// move under the event) but outside the transaction.
	if pdu, err = in.policySign(ctx, view, pdu); err != nil {
		return api.Event{}, err
	}
	var ev *state.Event
	err = in.commitLocked(ctx, r, func(t *roomTxn) error {
		var err error
		t.txn = p.Txn
		if ev, err = t.addEvent(pdu, t.snap, t.state, "", false); err != nil {
			return err
		}
		if p.Txn != nil {
			in.deps.Store.InsertTxn(t.batch, p.Sender, p.Txn.DeviceID, p.Txn.Scope, p.Txn.ID, ev.NID)
		}
		return nil
	})
	if err != nil {
		return api.Event{}, err
	}
	return in.deps.Events.APIEvent(ctx, ev)
}

// CreateRoom builds the create event and the events that follow it, each
// checked against the state the earlier ones made, and commits them all in
// one transaction: a room is created whole or not at all.
func (in *Inputter) CreateRoom(ctx context.Context, req api.CreateRoomRequest) (string, []string, error) {
	v, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(req.RoomVersion))
	if err != nil {
		return "", nil, api.ErrUnsupportedVersion
	}
	content := map[string]any{}
	if len(req.CreateContent) > 0 {
		if err := json.Unmarshal(req.CreateContent, &content); err != nil {
			return "", nil, fmt.Errorf("%w: creation content must be an object", api.ErrInvalidEvent)
		}
	}
	content["room_version"] = req.RoomVersion
	if namesCreator(v.Version()) {
		content["creator"] = req.Creator
	}
	raw, err := json.Marshal(content)
	if err != nil {
		return "", nil, fmt.Errorf("encode create content: %w", err)
	}
	// A v12 room id is the hash of its create event, so two identical
	// requests in the same millisecond would make the same room: the
	// create timestamps of this process never repeat, and a clash with a
	// room made elsewhere is retried with a later one.
	for attempt := 0; ; attempt++ {
		roomID, ids, err := in.createRoomOnce(ctx, v, req, raw)
		if errors.Is(err, storage.ErrRoomExists) && attempt < 3 {
			continue
		}
		return roomID, ids, err
	}
}

// createRoomOnce builds the create event and commits the room, or fails
// with storage.ErrRoomExists when its id is taken.
func (in *Inputter) createRoomOnce(ctx context.Context, v gomatrixserverlib.IRoomVersion, req api.CreateRoomRequest, raw spec.RawJSON) (string, []string, error) {
	empty := ""
	create := gomatrixserverlib.ProtoEvent{SenderID: req.Creator, Type: spec.MRoomCreate, StateKey: &empty, Content: raw, Depth: 1}
	if !v.DomainlessRoomIDs() {
		create.RoomID = "!" + randomString(18) + ":" + string(in.deps.ServerName)
	}
	createPDU, err := in.sign(v, &create, in.createTime())
	if err != nil {
		return "", nil, err
	}
	roomID := createPDU.RoomID().String()
	if err := gomatrixserverlib.Allowed(createPDU, &gomatrixserverlib.AuthEvents{}, state.UserIDForSender); err != nil {
		return "", nil, &api.NotAllowedError{Reason: err.Error()}
	}
	r := in.lock(roomID)
	defer r.mu.Unlock()
	if r.loaded {
		return "", nil, fmt.Errorf("create room %s: %w", roomID, storage.ErrRoomExists)
	}
	var ids []string
	err = in.commitLocked(ctx, r, func(t *roomTxn) error {
		ids = nil // a replayed run starts afresh (commitLocked)
		if t.nid, err = in.deps.Store.InsertRoom(ctx, t.tx, roomID, req.RoomVersion); err != nil {
			return err
		}
		t.version, t.state = v, storage.StateMap{}
		if _, err := t.addEvent(createPDU, storage.Snapshot{}, storage.StateMap{}, "", false); err != nil {
			return err
		}
		ids = append(ids, createPDU.EventID())
		now := time.Now()
		for i, p := range req.Events {
			pdu, err := in.buildLocal(ctx, t, p, now)
			if err != nil {
				return fmt.Errorf("initial event %d (%s): %w", i, p.Type, err)
			}
			if err := in.authorise(ctx, t, pdu, t.state); err != nil {
				return fmt.Errorf("initial event %d (%s): %w", i, p.Type, err)
			}
			if _, err := t.addEvent(pdu, t.snap, t.state, "", false); err != nil {
				return err
			}
			ids = append(ids, pdu.EventID())
		}
		return nil
	})
	if err != nil {
		return "", nil, err
	}
	return roomID, ids, nil
}

// createTime returns the timestamp of a new create event: now, but never
// a millisecond this process already used for one.
func (in *Inputter) createTime() time.Time {
	in.mu.Lock()
	defer in.mu.Unlock()
	now := time.Now().Truncate(time.Millisecond)
	if !now.After(in.lastCreate) {
		now = in.lastCreate.Add(time.Millisecond)
	}
	in.lastCreate = now
	return now
}

// buildLocal builds and signs a local event on the extremities of t, with
// the auth events its type needs from t's current state.
func (in *Inputter) buildLocal(ctx context.Context, t *roomTxn, p api.ProtoEvent, now time.Time) (gomatrixserverlib.PDU, error) {
	proto, err := in.protoLocal(ctx, t, p)
	if err != nil {
		return nil, err
	}
	pdu, err := t.version.NewEventBuilderFromProtoEvent(&proto).Build(now, in.deps.ServerName, in.deps.KeyID, in.deps.Key)
	if err != nil {
		return nil, buildError(err)
	}
	if len(pdu.JSON()) > api.MaxEventBytes {
		return nil, api.ErrTooLarge
	}
	return pdu, nil
}

// protoLocal is the unsigned event buildLocal signs: on the extremities
// of t, with the auth events its type needs from t's current state.
func (in *Inputter) protoLocal(ctx context.Context, t *roomTxn, p api.ProtoEvent) (gomatrixserverlib.ProtoEvent, error) {
	if len(p.Content) == 0 {
		p.Content = json.RawMessage("{}")
	}
	ext := append([]*state.Event(nil), t.ext...)
	sort.Slice(ext, func(i, j int) bool { return ext[i].Depth > ext[j].Depth })
	if len(ext) > maxPrevEvents {
		ext = ext[:maxPrevEvents]
	}
	prevs := make([]string, len(ext))
	var depth int64
	for i, e := range ext {
		prevs[i] = e.EventID
		depth = max(depth, e.Depth)
	}
	proto := gomatrixserverlib.ProtoEvent{
		SenderID: p.Sender, RoomID: in.roomIDOf(t), Type: p.Type, StateKey: p.StateKey,
		Content: spec.RawJSON(p.Content), Redacts: p.Redacts, PrevEvents: prevs, Depth: depth + 1,
	}
	needed, err := gomatrixserverlib.StateNeededForProtoEvent(&proto)
	if err != nil {
		return proto, fmt.Errorf("%w: %v", api.ErrInvalidEvent, err)
	}
	provider, err := in.authProvider(ctx, t, t.state, needed.Tuples())
	if err != nil {
		return proto, err
	}
	b := t.version.NewEventBuilderFromProtoEvent(&proto)
	if err := b.AddAuthEvents(provider); err != nil {
		return proto, fmt.Errorf("%w: %v", api.ErrInvalidEvent, err)
	}
	proto.AuthEvents = b.AuthEvents
	return proto, nil
}

// roomIDOf returns the room id of the room t changes, from its create
// event (the first event of every room).
func (in *Inputter) roomIDOf(t *roomTxn) string {
	for _, e := range t.added {
		return e.PDU.RoomID().String()
	}
	if len(t.ext) > 0 {
		return t.ext[0].PDU.RoomID().String()
	}
	return ""
}

// sign builds and signs an event with no prev or auth events (the create
// event).
func (in *Inputter) sign(v gomatrixserverlib.IRoomVersion, proto *gomatrixserverlib.ProtoEvent, now time.Time) (gomatrixserverlib.PDU, error) {
	proto.PrevEvents, proto.AuthEvents = []string{}, []string{}
	pdu, err := v.NewEventBuilderFromProtoEvent(proto).Build(now, in.deps.ServerName, in.deps.KeyID, in.deps.Key)
	if err != nil {
		return nil, buildError(err)
	}
	if len(pdu.JSON()) > api.MaxEventBytes {
		return nil, api.ErrTooLarge
	}
	return pdu, nil
}

// buildError classifies an error of gomatrixserverlib's builder: sizes
// over the spec's limits are ErrTooLarge, anything else ErrInvalidEvent.
func buildError(err error) error {
	var verr gomatrixserverlib.EventValidationError
	if errors.As(err, &verr) && verr.Code == gomatrixserverlib.EventValidationTooLarge {
		return fmt.Errorf("%w: %s", api.ErrTooLarge, verr.Message)
	}
	return fmt.Errorf("%w: %v", api.ErrInvalidEvent, err)
}

// namesCreator reports whether the room version's create event names its
// creator in the content: versions before 11 do.
func namesCreator(v gomatrixserverlib.RoomVersion) bool {
	switch v {
	case "1", "2", "3", "4", "5", "6", "7", "8", "9", "10":
		return true
	}
	return false
}

func randomString(n int) string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	b := make([]byte, n)
	for i := range b {
		k, _ := rand.Int(rand.Reader, big.NewInt(int64(len(letters))))
		b[i] = letters[k.Int64()]
	}
	return string(b)
}
