package syncv3

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	hsapi "github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/homeserver/internal/events"
	"github.com/matrix-gouv/homeserver/homeserver/internal/streams"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// Parts builds the pieces of a sync response one at a time, for another
// flavour of sync (sliding sync, homeserver/internal/slidingsync) that
// picks its rooms itself: the same timelines, state, summaries, unread
// counts, ephemeral events, account data and E2EE data as /sync, for one
// device, read up to fixed positions. A Parts is for one response.
type Parts struct {
	b *builder
}

// NewParts returns the parts of a response for dev read up to upTo,
// incremental from since (nil: as an initial sync).
func (h *Handlers) NewParts(ctx context.Context, dev hsapi.Device, since *streams.Token, upTo streams.Token) (*Parts, error) {
	req := &request{dev: dev, since: since, stateAfter: true}
	b := &builder{h: h, req: req, upTo: upTo, now: h.now(), toDeviceNext: upTo.ToDevice, roomsUpTo: upTo.Rooms}
	if since != nil {
		b.since = *since
		if b.since.Typing > upTo.Typing {
			b.since.Typing = 0
		}
	}
	if _, err := b.ignoredUsers(ctx); err != nil {
		return nil, err
	}
	if err := b.loadReceiptRooms(ctx); err != nil {
		return nil, err
	}
	return &Parts{b: b}, nil
}

// TouchPresence records that userID is syncing with set_presence p ("",
// online, unavailable or offline), as a /sync does; nothing when presence
// is off.
func (h *Handlers) TouchPresence(ctx context.Context, userID, p string) {
	if h.Presence {
		h.touchPresence(ctx, userID, p)
	}
}

// Memberships returns the device's user's memberships (leaves included,
// forgotten rooms not), newest rows as the notifier has them.
func (p *Parts) Memberships(ctx context.Context) ([]storage.Membership, error) {
	b := *p.b
	req := *b.req
	req.since = nil
	b.req = &req
	list, err := b.memberships(ctx)
	if err != nil {
		return nil, err
	}
	p.b.roomsUpTo = max(p.b.roomsUpTo, b.roomsUpTo)
	return list, nil
}

// Next is the position the parts were read up to: a /sync next_batch.
func (p *Parts) Next() streams.Token { return p.b.next() }

// ReceiptsChanged reports whether receipts of roomID moved since the
// Parts' position (always false for an initial one).
func (p *Parts) ReceiptsChanged(roomID string) bool { return p.b.receiptRooms[roomID] }

// Ignored reports whether the user ignores userID.
func (p *Parts) Ignored(userID string) bool { return p.b.ignored[userID] }

// RoomRequest asks for one room's timeline and state.
type RoomRequest struct {
	RoomID string
	// From is the rooms position the client has the room up to; 0 sends
	// the room whole (its last Limit events and its whole state).
	From int64
	// UpTo is the rooms position to read to (a departure's, for a room
	// the user left); 0 for the response's.
	UpTo int64
	// JoinPos is the roomserver position of the user's join: events
	// before it go through history visibility. Left checks them all.
	JoinPos int64
	Left    bool
	// Limit is the timeline's length at most.
	Limit int
	// LiveAfter is the rooms position after which events count as live
	// (num_live); 0 for none.
	LiveAfter int64
}

// Room is one room's timeline and state, formatted.
type Room struct {
	Timeline  []events.Client
	Limited   bool
	PrevBatch string
	// NumLive is how many of the timeline's events came after
	// RoomRequest.LiveAfter.
	NumLive int
	// State is the whole state after the timeline when the room is sent
	// whole, else the state that changed since From (state_after).
	State []events.Client
	// Senders are the timeline's senders.
	Senders []string
	// HasMembers says a member event is in the timeline.
	HasMembers bool
}

// Room reads one room's timeline and state.
func (p *Parts) Room(ctx context.Context, rr RoomRequest) (*Room, error) {
	b := *p.b
	req := *b.req
	limit := rr.Limit
	req.filter.Room.Timeline.Limit = &limit
	if rr.From == 0 {
		req.since = nil
	} else {
		req.since = &streams.Token{Rooms: rr.From}
	}
	b.req = &req
	b.since = streams.Token{Rooms: rr.From}
	upTo := b.roomsUpTo
	if rr.UpTo > 0 {
		upTo = rr.UpTo
	}
	tl, err := b.timeline(ctx, rr.RoomID, rr.From, upTo, rr.JoinPos, rr.Left)
	if err != nil {
		return nil, err
	}
	state, _, err := b.state(ctx, rr.RoomID, tl, rr.From == 0)
	if err != nil {
		return nil, err
	}
	formatted, err := b.format(ctx, tl)
	if err != nil {
		return nil, err
	}
	stateEvs, err := b.formatState(ctx, state)
	if err != nil {
		return nil, err
	}
	out := &Room{Timeline: formatted.Events, Limited: formatted.Limited, PrevBatch: formatted.PrevBatch, State: stateEvs, HasMembers: tl.hasMembers}
	seen := map[string]bool{}
	for _, e := range tl.events {
		if !seen[e.Sender] {
			seen[e.Sender] = true
			out.Senders = append(out.Senders, e.Sender)
		}
	}
	if rr.LiveAfter > 0 && len(tl.events) > 0 {
		first, ok, known := b.h.Notifier.FirstAfter(rr.RoomID, rr.LiveAfter)
		if !known {
			if err := b.written(ctx); err != nil {
				return nil, err
			}
			if first, ok, err = b.h.Store.RoomEventAt(ctx, rr.RoomID, rr.LiveAfter, true); err != nil {
				return nil, err
			}
		}
		if ok {
			for _, e := range tl.events {
				if e.StreamPos >= first.StreamPos {
					out.NumLive++
				}
			}
		}
	}
	return out, nil
}

// Summary returns a room's joined and invited member counts and its
// heroes.
func (p *Parts) Summary(ctx context.Context, roomID string) (joined, invited int, heroes []string, err error) {
	if err := p.b.written(ctx); err != nil {
		return 0, 0, nil, err
	}
	return p.b.h.Store.RoomSummary(ctx, roomID, p.b.req.dev.UserID)
}

// Unread returns a room's unread notification and highlight counts.
func (p *Parts) Unread(ctx context.Context, roomID string) (Counts, error) {
	var jr joinedRoom
	if err := p.b.unread(ctx, roomID, &jr); err != nil {
		return Counts{}, err
	}
	return jr.UnreadNotifications, nil
}

// StrippedState is an invite's or knock's room state: the room's
// stripped state and the member event.
func (p *Parts) StrippedState(ctx context.Context, m storage.Membership) ([]json.RawMessage, error) {
	return p.b.strippedState(ctx, m)
}

// Ephemeral returns a room's m.typing and m.receipt events: the current
// ones for an initial Parts, those changed since otherwise (nil when
// none).
func (p *Parts) Ephemeral(ctx context.Context, roomID string) (typing, receipts json.RawMessage, err error) {
	jr := joinedRoom{}
	if err := p.b.ephemeral(ctx, roomID, &jr); err != nil {
		return nil, nil, err
	}
	for _, ev := range jr.Ephemeral.Events {
		var head struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(ev, &head); err != nil {
			return nil, nil, err
		}
		switch head.Type {
		case "m.typing":
			typing = ev
		case "m.receipt":
			receipts = ev
		}
	}
	return typing, receipts, nil
}

// AccountData returns the global account data and the per-room account
// data changed since the Parts' position (all of it for an initial one).
func (p *Parts) AccountData(ctx context.Context) (global []json.RawMessage, rooms map[string][]json.RawMessage, err error) {
	resp := &response{}
	if err := p.b.accountData(ctx, resp); err != nil {
		return nil, nil, err
	}
	return resp.AccountData.Events, p.b.roomAccountData, nil
}

// ToDevice delivers the device's to-device messages after position since
// (acknowledging those up to it); next is the position to give back.
func (p *Parts) ToDevice(ctx context.Context, since int64) (msgs []json.RawMessage, next int64, err error) {
	b := *p.b
	b.since.ToDevice = since
	resp := &response{ToDevice: rawEvents{Events: []json.RawMessage{}}}
	if err := b.toDevice(ctx, resp); err != nil {
		return nil, 0, err
	}
	return resp.ToDevice.Events, b.toDeviceNext, nil
}

// DeviceLists returns the users whose devices changed since the Parts'
// position (and those who came to share a room) and those who no longer
// share a room with the user; nothing for an initial Parts.
func (p *Parts) DeviceLists(ctx context.Context) (changed, left []string, err error) {
	resp := &response{}
	if err := p.b.deviceLists(ctx, resp); err != nil {
		return nil, nil, err
	}
	return resp.DeviceLists.Changed, resp.DeviceLists.Left, nil
}

// KeyCounts returns the device's one-time key counts (signed_curve25519
// always present) and unused fallback key types.
func (p *Parts) KeyCounts(ctx context.Context) (map[string]int, []string, error) {
	counts, types, err := p.b.h.keyCounts.get(ctx, p.b.h, p.b.req.dev.UserID, p.b.req.dev.DeviceID)
	if err != nil {
		return nil, nil, err
	}
	out := make(map[string]int, len(counts)+1)
	for alg, n := range counts {
		out[alg] = n
	}
	if _, ok := out["signed_curve25519"]; !ok {
		out["signed_curve25519"] = 0
	}
	if types == nil {
		types = []string{}
	}
	return out, types, nil
}

// CurrentState returns those of keys that are in the room's current
// state, formatted (sliding sync's lazily loaded members of new
// senders).
func (p *Parts) CurrentState(ctx context.Context, roomID string, keys []rsapi.StateKey) ([]events.Client, error) {
	var evs []events.Event
	for _, k := range keys {
		raw, err := p.b.h.Rooms.CurrentStateEvent(ctx, roomID, k)
		if errors.Is(err, rsapi.ErrNotFound) || errors.Is(err, rsapi.ErrRoomNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read state of %s: %w", roomID, err)
		}
		e, err := events.Parse(raw)
		if err != nil {
			return nil, err
		}
		evs = append(evs, e)
	}
	return p.b.formatState(ctx, evs)
}
