package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/homeserver/internal/pushrules"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// Bounds of the Processor's room cache.
const (
	// roomCacheMax bounds the rooms whose members the Processor keeps;
	// past it, the cache starts afresh.
	roomCacheMax = 10_000
	// roomCacheTTL bounds how long a room's info is used before the
	// state is read again: when several processes share the output
	// stream, a state event another process handled reaches this cache
	// only so.
	roomCacheTTL = 30 * time.Second
)

// Processor evaluates accepted events against the push rules of the
// room's local members and records the actions: the unread counts of
// /sync, /notifications, and the queue of pushes.
type Processor struct {
	serverName string
	rules      *Rules
	store      *storage.Store
	rooms      RoomReader
	ignored    IgnoredUsers
	wake       func()
	log        *logrus.Entry

	// mu guards roomCache.
	mu sync.Mutex
	// roomCache holds, per room, what evaluation needs of its current
	// state; an entry is immutable and dropped when the room's state
	// changes.
	roomCache map[string]*roomInfo
}

type processorDeps struct {
	serverName string
	rules      *Rules
	store      *storage.Store
	rooms      RoomReader
	ignored    IgnoredUsers
	wake       func()
	log        *logrus.Entry
}

func newProcessor(d processorDeps) *Processor {
	return &Processor{serverName: d.serverName, rules: d.rules, store: d.store, rooms: d.rooms, ignored: d.ignored,
		wake: d.wake, log: d.log, roomCache: map[string]*roomInfo{}}
}

// roomInfo is what evaluating an event needs of its room's current state.
type roomInfo struct {
	// loaded is when the state was read.
	loaded time.Time
	// joinedSet holds every joined member.
	joinedSet map[string]bool
	// local are the joined members of this server.
	local []string
	// displayNames of the joined members that have one.
	displayNames map[string]string
	joined       int
	levels       gomatrixserverlib.PowerLevelContent
	// creators have infinite power (room version 12).
	creators map[string]bool
}

func (ri *roomInfo) powerOf(userID string) int64 {
	if ri.creators[userID] {
		return math.MaxInt64
	}
	return ri.levels.UserLevel(spec.SenderID(userID))
}

// eventFields are the PDU fields the Processor reads.
type eventFields struct {
	Type     string  `json:"type"`
	Sender   string  `json:"sender"`
	StateKey *string `json:"state_key"`
	Content  struct {
		Membership  string `json:"membership"`
		DisplayName string `json:"displayname"`
		RelatesTo   struct {
			RelType string `json:"rel_type"`
			EventID string `json:"event_id"`
		} `json:"m.relates_to"`
	} `json:"content"`
}

// ProcessEvent evaluates an output event for every joined local member
// of its room but the sender (and an invited local user, for the invite
// rule), except those who ignore the sender, and records the actions of
// those it notifies, idempotently: replaying an event changes nothing.
// Soft-failed events are skipped. Sync calls it for every output event in
// stream order, before waking clients.
func (p *Processor) ProcessEvent(ctx context.Context, out rsapi.OutputEvent) error {
	return p.ProcessEvents(ctx, []rsapi.OutputEvent{out})
}

// ProcessEvents is ProcessEvent for several output events, in stream
// order, recorded in one transaction: a consumer that has several events
// at hand pays one commit for all of them.
func (p *Processor) ProcessEvents(ctx context.Context, outs []rsapi.OutputEvent) error {
	actions, err := p.Evaluate(ctx, outs)
	if err != nil {
		return err
	}
	return p.Record(ctx, actions)
}

// Evaluate is ProcessEvents' first half: the actions of outs, in memory
// only, for a caller that wants to act on them before they are written
// (sync wakes clients first and counts them from memory meanwhile).
func (p *Processor) Evaluate(ctx context.Context, outs []rsapi.OutputEvent) ([]storage.PushAction, error) {
	var actions []storage.PushAction
	for _, out := range outs {
		a, err := p.evaluate(ctx, out)
		if err != nil {
			return nil, err
		}
		actions = append(actions, a...)
	}
	return actions, nil
}

// Record is ProcessEvents' second half: it writes actions and queues them
// for the pushers.
func (p *Processor) Record(ctx context.Context, actions []storage.PushAction) error {
	queued, err := p.store.AddPushActions(ctx, actions)
	if err != nil {
		return err
	}
	if queued && p.wake != nil {
		p.wake()
	}
	return nil
}

// evaluate returns the actions of out for each member it notifies.
func (p *Processor) evaluate(ctx context.Context, out rsapi.OutputEvent) ([]storage.PushAction, error) {
	ev := out.Event
	if out.SoftFailed || ev.StreamPos == 0 {
		return nil, nil
	}
	var f eventFields
	if err := json.Unmarshal(ev.JSON, &f); err != nil {
		return nil, fmt.Errorf("parse event %s for push: %w", ev.EventID, err)
	}
	if f.StateKey != nil || len(out.StateAdded) > 0 || len(out.StateRemoved) > 0 {
		p.stateChanged(ev.RoomID, ev.EventID, f, out)
	}
	info, err := p.room(ctx, ev.RoomID)
	if err != nil {
		return nil, err
	}
	recipients := info.local
	if f.Type == "m.room.member" && f.StateKey != nil && f.Content.Membership == "invite" && p.isLocal(*f.StateKey) {
		recipients = append(append([]string(nil), recipients...), *f.StateKey)
	}
	if len(recipients) == 0 {
		return nil, nil
	}
	pe, err := pushrules.ParseEvent(ev.JSON)
	if err != nil {
		return nil, err
	}
	thread := storage.MainThread
	if f.Content.RelatesTo.RelType == "m.thread" && f.Content.RelatesTo.EventID != "" {
		thread = f.Content.RelatesTo.EventID
	}
	if err := p.rules.preload(ctx, recipients); err != nil {
		return nil, err
	}
	rc := pushrules.RoomContext{MemberCount: info.joined, SenderPower: info.powerOf(f.Sender), NotificationLevels: info.levels.Notifications}
	var actions []storage.PushAction
	for _, user := range recipients {
		if user == f.Sender {
			continue
		}
		if p.ignored != nil {
			ignored, err := p.ignored.IgnoredUsers(ctx, user)
			if err != nil {
				return nil, fmt.Errorf("read ignored users of %s: %w", user, err)
			}
			if ignored[f.Sender] {
				continue
			}
		}
		set, err := p.rules.compiled(ctx, user)
		if err != nil {
			return nil, err
		}
		rc.DisplayName = info.displayNames[user]
		o, matched := set.Evaluate(pe, &rc)
		if !matched || !o.Notify {
			continue
		}
		raw, err := json.Marshal(o.Actions)
		if err != nil {
			return nil, fmt.Errorf("encode push actions: %w", err)
		}
		actions = append(actions, storage.PushAction{UserID: user, RoomID: ev.RoomID, EventID: ev.EventID,
			StreamPos: ev.StreamPos, ThreadID: thread, Highlight: o.Highlight, Actions: raw})
	}
	return actions, nil
}

// stateChanged updates the room's cached info for a state event: a
// membership change that changed nothing else is applied to a copy (so
// that a join to a big room does not reread its state); anything else
// drops the entry.
func (p *Processor) stateChanged(roomID, eventID string, f eventFields, out rsapi.OutputEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old, ok := p.roomCache[roomID]
	onlyItself := len(out.StateAdded) == 1 && out.StateAdded[0] == eventID && len(out.StateRemoved) <= 1
	if !ok || f.Type != "m.room.member" || f.StateKey == nil || !onlyItself {
		delete(p.roomCache, roomID)
		return
	}
	p.roomCache[roomID] = old.withMember(*f.StateKey, f.Content.Membership == "join", f.Content.DisplayName, p.isLocal)
}

// withMember returns a copy of ri where userID is joined or not, with
// its display name.
func (ri *roomInfo) withMember(userID string, joined bool, displayName string, isLocal func(string) bool) *roomInfo {
	n := *ri
	n.joinedSet = make(map[string]bool, len(ri.joinedSet)+1)
	for u := range ri.joinedSet {
		n.joinedSet[u] = true
	}
	n.displayNames = make(map[string]string, len(ri.displayNames)+1)
	for u, d := range ri.displayNames {
		n.displayNames[u] = d
	}
	delete(n.displayNames, userID)
	if joined {
		n.joinedSet[userID] = true
		if displayName != "" {
			n.displayNames[userID] = displayName
		}
	} else {
		delete(n.joinedSet, userID)
	}
	n.joined = len(n.joinedSet)
	if joined != ri.joinedSet[userID] && isLocal(userID) {
		n.local = make([]string, 0, len(ri.local)+1)
		for _, u := range ri.local {
			if u != userID {
				n.local = append(n.local, u)
			}
		}
		if joined {
			n.local = append(n.local, userID)
		}
	}
	return &n
}

func (p *Processor) isLocal(userID string) bool {
	return strings.HasSuffix(userID, ":"+p.serverName)
}

// room returns the room's info, from the cache or its current state.
func (p *Processor) room(ctx context.Context, roomID string) (*roomInfo, error) {
	p.mu.Lock()
	ri, ok := p.roomCache[roomID]
	p.mu.Unlock()
	if ok && time.Since(ri.loaded) < roomCacheTTL {
		return ri, nil
	}
	ri, err := p.loadRoom(ctx, roomID)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	if len(p.roomCache) >= roomCacheMax {
		p.roomCache = map[string]*roomInfo{}
	}
	p.roomCache[roomID] = ri
	p.mu.Unlock()
	return ri, nil
}

func (p *Processor) loadRoom(ctx context.Context, roomID string) (*roomInfo, error) {
	state, err := p.rooms.CurrentState(ctx, roomID)
	if errors.Is(err, rsapi.ErrRoomNotFound) {
		return &roomInfo{loaded: time.Now()}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state of %s for push: %w", roomID, err)
	}
	ri := &roomInfo{loaded: time.Now(), joinedSet: map[string]bool{}, displayNames: map[string]string{}, creators: map[string]bool{}}
	ri.levels.Defaults()
	var create, powerLevels *rsapi.Event
	for i := range state {
		ev := &state[i]
		var f struct {
			Type     string  `json:"type"`
			StateKey *string `json:"state_key"`
			Content  struct {
				Membership  string `json:"membership"`
				DisplayName string `json:"displayname"`
			} `json:"content"`
		}
		if err := json.Unmarshal(ev.JSON, &f); err != nil || f.StateKey == nil {
			continue
		}
		switch f.Type {
		case "m.room.member":
			if f.Content.Membership != "join" {
				continue
			}
			ri.joined++
			ri.joinedSet[*f.StateKey] = true
			if p.isLocal(*f.StateKey) {
				ri.local = append(ri.local, *f.StateKey)
			}
			if f.Content.DisplayName != "" {
				ri.displayNames[*f.StateKey] = f.Content.DisplayName
			}
		case "m.room.create":
			create = ev
		case "m.room.power_levels":
			powerLevels = ev
		}
	}
	if err := ri.setPower(create, powerLevels); err != nil {
		return nil, fmt.Errorf("power levels of %s: %w", roomID, err)
	}
	return ri, nil
}

// setPower reads power from the create and power levels events, as the
// auth rules do: creators of version 12 rooms have infinite power; with
// no power levels event, the creator has 100 (before version 12).
func (ri *roomInfo) setPower(create, powerLevels *rsapi.Event) error {
	if create == nil {
		return nil
	}
	v, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(create.RoomVersion))
	if err != nil {
		return err
	}
	var cf struct {
		Sender  string `json:"sender"`
		Content struct {
			Creator            string   `json:"creator"`
			AdditionalCreators []string `json:"additional_creators"`
		} `json:"content"`
	}
	if err := json.Unmarshal(create.JSON, &cf); err != nil {
		return err
	}
	if v.PrivilegedCreators() {
		ri.creators[cf.Sender] = true
		for _, c := range cf.Content.AdditionalCreators {
			ri.creators[c] = true
		}
	}
	if powerLevels == nil {
		creator := cf.Content.Creator
		if creator == "" {
			creator = cf.Sender
		}
		if !v.PrivilegedCreators() {
			ri.levels.Users = map[string]int64{creator: 100}
		}
		return nil
	}
	pdu, err := powerLevels.PDU()
	if err != nil {
		return err
	}
	levels, err := gomatrixserverlib.NewPowerLevelContentFromEvent(pdu)
	if err != nil {
		return err
	}
	ri.levels = levels
	return nil
}
