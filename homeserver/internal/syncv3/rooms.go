package syncv3

import (
	"context"
	"encoding/json"
	"errors"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/matrix-gouv/homeserver/homeserver/internal/events"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// roomWorkers bounds the rooms built at once for one response.
const roomWorkers = 4

// rooms fills rooms.join, invite, leave and knock.
func (b *builder) rooms(ctx context.Context, resp *response) error {
	list, err := b.memberships(ctx)
	if err != nil {
		return err
	}
	if _, err := b.ignoredUsers(ctx); err != nil {
		return err
	}
	if err := b.loadReceiptRooms(ctx); err != nil {
		return err
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(roomWorkers)
	for _, m := range list {
		if !b.req.filter.Room.allowsRoom(m.RoomID) {
			continue
		}
		changed := b.initial() || m.SyncPos > b.since.Rooms
		g.Go(func() error {
			switch m.Membership {
			case "join":
				jr, err := b.joinedRoom(gctx, m)
				if err != nil || jr == nil {
					return err
				}
				mu.Lock()
				resp.Rooms.Join[m.RoomID] = jr
				mu.Unlock()
			case "invite", "knock":
				if !changed || b.ignored[m.Sender] {
					return nil
				}
				state, err := b.strippedState(gctx, m)
				if err != nil {
					return err
				}
				mu.Lock()
				if m.Membership == "invite" {
					resp.Rooms.Invite[m.RoomID] = &invitedRoom{InviteState: rawEvents{Events: state}}
				} else {
					resp.Rooms.Knock[m.RoomID] = &knockedRoom{KnockState: rawEvents{Events: state}}
				}
				mu.Unlock()
			case "leave", "ban":
				// Incremental syncs always tell of a departure; initial
				// ones only with include_leave.
				if !changed || (b.initial() && !b.req.filter.Room.IncludeLeave) {
					return nil
				}
				lr, err := b.leftRoom(gctx, m)
				if err != nil || lr == nil {
					return err
				}
				mu.Lock()
				resp.Rooms.Leave[m.RoomID] = lr
				mu.Unlock()
			}
			return nil
		})
	}
	return g.Wait()
}

// memberships returns the memberships of the syncing user to consider:
// all of them initially; otherwise those changed since the last sync and
// the rooms joined before it.
func (b *builder) memberships(ctx context.Context) ([]storage.Membership, error) {
	me := b.req.dev.UserID
	since := b.since.Rooms
	if b.initial() {
		since = 0
	}
	list := b.h.Notifier.MembershipsOf(me, since)
	b.roomsUpTo = b.upTo.Rooms
	changed := make(map[string]bool, len(list))
	for _, m := range list {
		changed[m.RoomID] = true
		// The row may be newer than upTo: read the rooms up to it.
		b.roomsUpTo = max(b.roomsUpTo, m.SyncPos)
	}
	if !b.initial() {
		for room, membership := range b.h.Notifier.RoomsOf(me) {
			if membership == "join" && !changed[room] {
				list = append(list, storage.Membership{MembershipChange: storage.MembershipChange{RoomID: room, UserID: me, Membership: "join"}})
			}
		}
	}
	var out []storage.Membership
	var forgotten map[string]int64 // read once, at the first left room
	for _, m := range list {
		if m.Membership == "leave" || m.Membership == "ban" {
			if forgotten == nil {
				var err error
				if forgotten, err = b.h.Store.ForgottenRooms(ctx, me); err != nil {
					return nil, err
				}
			}
			if pos, ok := forgotten[m.RoomID]; ok && pos == m.StreamPos {
				continue
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// strippedState is an invite's or knock's room state: the room's stripped
// state and the member event itself.
func (b *builder) strippedState(ctx context.Context, m storage.Membership) ([]json.RawMessage, error) {
	state, err := b.h.Rooms.StrippedState(ctx, m.RoomID)
	if err != nil && !errors.Is(err, rsapi.ErrRoomNotFound) {
		return nil, err
	}
	ev, err := b.h.Rooms.Event(ctx, m.EventID)
	if err != nil && !errors.Is(err, rsapi.ErrNotFound) {
		return nil, err
	}
	if err == nil {
		e, err := events.Parse(ev)
		if err != nil {
			return nil, err
		}
		own, err := json.Marshal(struct {
			Type     string          `json:"type"`
			StateKey string          `json:"state_key"`
			Sender   string          `json:"sender"`
			Content  json.RawMessage `json:"content"`
		}{e.Type, *e.StateKey, e.Sender, e.Content})
		if err != nil {
			return nil, err
		}
		state = append(state, own)
	}
	if state == nil {
		state = []json.RawMessage{}
	}
	return state, nil
}

// joinedRoom builds a joined room's part, nil when nothing changed in it.
func (b *builder) joinedRoom(ctx context.Context, m storage.Membership) (*joinedRoom, error) {
	// A room joined since the last sync is sent whole, like at an initial
	// sync.
	full := b.initial() || b.req.fullState || m.SyncPos > b.since.Rooms
	from := b.since.Rooms
	if full {
		from = 0
	}
	tl, err := b.timeline(ctx, m.RoomID, from, b.roomsUpTo, m.StreamPos, false)
	if err != nil {
		return nil, err
	}
	jr := &joinedRoom{
		Ephemeral:   rawEvents{Events: []json.RawMessage{}},
		AccountData: rawEvents{Events: b.roomAccountData[m.RoomID]},
	}
	if jr.AccountData.Events == nil {
		jr.AccountData.Events = []json.RawMessage{}
	}
	if err := b.ephemeral(ctx, m.RoomID, jr); err != nil {
		return nil, err
	}
	if !full && len(tl.events) == 0 && len(jr.Ephemeral.Events) == 0 && len(jr.AccountData.Events) == 0 {
		return nil, nil
	}
	state, after, err := b.state(ctx, m.RoomID, tl, full)
	if err != nil {
		return nil, err
	}
	if jr.Timeline, err = b.format(ctx, tl); err != nil {
		return nil, err
	}
	stateEvs, err := b.formatState(ctx, state)
	if err != nil {
		return nil, err
	}
	b.setState(stateEvs, after, &jr.State, &jr.StateAfter, &jr.UnstableStateAfter)
	if full || tl.hasMembers {
		if jr.Summary, err = b.summary(ctx, m.RoomID); err != nil {
			return nil, err
		}
	}
	if err := b.unread(ctx, m.RoomID, jr); err != nil {
		return nil, err
	}
	return jr, nil
}

// leftRoom builds the part of a room the user left (or was banned from):
// its timeline up to the departure.
func (b *builder) leftRoom(ctx context.Context, m storage.Membership) (*leftRoom, error) {
	from := b.since.Rooms
	if b.initial() || b.req.fullState {
		from = 0
	}
	tl, err := b.timeline(ctx, m.RoomID, from, m.SyncPos, 0, true)
	if err != nil {
		return nil, err
	}
	state, after, err := b.state(ctx, m.RoomID, tl, from == 0)
	if err != nil {
		return nil, err
	}
	lr := &leftRoom{AccountData: rawEvents{Events: b.roomAccountData[m.RoomID]}}
	if lr.AccountData.Events == nil {
		lr.AccountData.Events = []json.RawMessage{}
	}
	if lr.Timeline, err = b.format(ctx, tl); err != nil {
		return nil, err
	}
	stateEvs, err := b.formatState(ctx, state)
	if err != nil {
		return nil, err
	}
	b.setState(stateEvs, after, &lr.State, &lr.StateAfter, &lr.UnstableStateAfter)
	return lr, nil
}

// setState puts the state in the field the client asked for: state
// before the timeline, or state_after (stable or unstable name).
func (b *builder) setState(evs []events.Client, after bool, state, stateAfter, unstable **clientEvents) {
	part := &clientEvents{Events: evs}
	switch {
	case !after:
		*state = part
	case b.req.unstableStateAfter && !b.req.stateAfter:
		*unstable = part
		*state = &clientEvents{Events: []events.Client{}}
	default:
		*stateAfter = part
		*state = &clientEvents{Events: []events.Client{}}
	}
}

// summary is a room's member counts and heroes.
func (b *builder) summary(ctx context.Context, roomID string) (*summary, error) {
	if err := b.written(ctx); err != nil {
		return nil, err
	}
	joined, invited, heroes, err := b.h.Store.RoomSummary(ctx, roomID, b.req.dev.UserID)
	if err != nil {
		return nil, err
	}
	return &summary{Heroes: heroes, JoinedCount: &joined, InvitedCount: &invited}, nil
}

// unread sets the room's unread notification counts.
func (b *builder) unread(ctx context.Context, roomID string, jr *joinedRoom) error {
	if b.h.Counter == nil {
		return nil
	}
	total, perThread, err := b.h.Counter.UnreadCounts(ctx, b.req.dev.UserID, roomID)
	if err != nil {
		return err
	}
	if !b.req.filter.Room.Timeline.UnreadThreadNotifications {
		jr.UnreadNotifications = total
		return nil
	}
	jr.UnreadNotifications = perThread["main"]
	for thread, c := range perThread {
		if thread == "main" || c == (Counts{}) {
			continue
		}
		if jr.UnreadThreadNotifications == nil {
			jr.UnreadThreadNotifications = map[string]Counts{}
		}
		jr.UnreadThreadNotifications[thread] = c
	}
	return nil
}
