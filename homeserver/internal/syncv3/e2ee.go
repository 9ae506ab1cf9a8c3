package syncv3

import (
	"context"
	"encoding/json"
	"sort"

	"github.com/matrix-gouv/homeserver/homeserver/internal/streams"
)

// toDeviceLimit bounds the to-device messages of one response; the rest
// come in the next.
const toDeviceLimit = 100

// DeviceListPos reads the device-list position of a sync token, for
// /keys/changes.
func DeviceListPos(token string) (int64, error) {
	t, err := streams.ParseToken(token)
	if err != nil {
		return 0, err
	}
	return t.DeviceLists, nil
}

// e2ee fills to_device, device_lists and the device's key counts.
func (b *builder) e2ee(ctx context.Context, resp *response) error {
	if err := b.toDevice(ctx, resp); err != nil {
		return err
	}
	if err := b.deviceLists(ctx, resp); err != nil {
		return err
	}
	dev := b.req.dev
	counts, err := b.h.Store.OneTimeKeyCounts(ctx, dev.UserID, dev.DeviceID)
	if err != nil {
		return err
	}
	for alg, n := range counts {
		resp.OneTimeKeysCount[alg] = n
	}
	// The spec asks for signed_curve25519 even at zero, so that clients
	// know to upload.
	if _, ok := resp.OneTimeKeysCount["signed_curve25519"]; !ok {
		resp.OneTimeKeysCount["signed_curve25519"] = 0
	}
	types, err := b.h.Store.UnusedFallbackKeyTypes(ctx, dev.UserID, dev.DeviceID)
	if err != nil {
		return err
	}
	if types != nil {
		resp.FallbackKeyTypes = types
	}
	return nil
}

// toDevice delivers the device's pending to-device messages, after
// deleting those the device acknowledged by syncing from a token past
// them.
func (b *builder) toDevice(ctx context.Context, resp *response) error {
	dev := b.req.dev
	since := b.since.ToDevice
	if since > 0 {
		if err := b.h.Store.AckInbox(ctx, dev.UserID, dev.DeviceID, since); err != nil {
			return err
		}
	}
	msgs, err := b.h.Store.Inbox(ctx, dev.UserID, dev.DeviceID, since, toDeviceLimit)
	if err != nil {
		return err
	}
	next := since
	for _, m := range msgs {
		resp.ToDevice.Events = append(resp.ToDevice.Events, json.RawMessage(m.JSON))
		next = m.StreamID
	}
	if len(msgs) < toDeviceLimit {
		// The inbox was read to its end, after upTo was taken.
		next = max(next, b.upTo.ToDevice)
	}
	b.toDeviceNext = next
	return nil
}

// deviceLists fills device_lists: the users (sharing a room with the
// syncing user, or the user) whose devices changed since the last sync,
// those who came to share a room, and those who no longer share any.
func (b *builder) deviceLists(ctx context.Context, resp *response) error {
	if b.initial() {
		return nil
	}
	me := b.req.dev.UserID
	changed := map[string]bool{}
	left := map[string]bool{}
	if b.since.DeviceLists < b.upTo.DeviceLists {
		users, err := b.h.Store.ChangedUsers(ctx, b.since.DeviceLists, b.upTo.DeviceLists)
		if err != nil {
			return err
		}
		for _, u := range users {
			if u == me || b.h.Notifier.SharesRoom(me, u) {
				changed[u] = true
			}
		}
	}
	if b.since.Rooms < b.roomsUpTo {
		if err := b.membershipDeviceLists(ctx, changed, left); err != nil {
			return err
		}
	}
	for u := range changed {
		if u != me {
			resp.DeviceLists.Changed = append(resp.DeviceLists.Changed, u)
		}
	}
	if changed[me] {
		resp.DeviceLists.Changed = append(resp.DeviceLists.Changed, me)
	}
	for u := range left {
		if !changed[u] {
			resp.DeviceLists.Left = append(resp.DeviceLists.Left, u)
		}
	}
	sort.Strings(resp.DeviceLists.Changed)
	sort.Strings(resp.DeviceLists.Left)
	return nil
}

// membershipDeviceLists adds the users whose sharing of a room with the
// syncing user began or ended with the membership changes since the last
// sync.
func (b *builder) membershipDeviceLists(ctx context.Context, changed, left map[string]bool) error {
	me := b.req.dev.UserID
	var rooms []string
	for room := range b.h.Notifier.RoomsOf(me) {
		rooms = append(rooms, room)
	}
	mine, err := b.h.Store.MembershipsOf(ctx, me, b.since.Rooms)
	if err != nil {
		return err
	}
	for _, m := range mine {
		if m.Membership != "join" && m.Membership != "invite" && m.Membership != "knock" {
			rooms = append(rooms, m.RoomID)
		}
	}
	changes, err := b.h.Store.MembershipChangesIn(ctx, rooms, b.since.Rooms, b.roomsUpTo)
	if err != nil {
		return err
	}
	var joinedRooms []string
	for _, c := range changes {
		if c.UserID == me {
			if c.Membership == "join" {
				joinedRooms = append(joinedRooms, c.RoomID)
			} else {
				// Everyone of that room may have left the user's world.
				members, err := b.h.Store.RoomMembers(ctx, []string{c.RoomID})
				if err != nil {
					return err
				}
				for _, m := range members {
					if m.UserID != me && m.Membership == "join" && !b.h.Notifier.SharesRoom(me, m.UserID) {
						left[m.UserID] = true
					}
				}
			}
			continue
		}
		switch {
		case c.Membership == "join":
			changed[c.UserID] = true
		case !b.h.Notifier.SharesRoom(me, c.UserID):
			left[c.UserID] = true
		}
	}
	if len(joinedRooms) > 0 {
		members, err := b.h.Store.RoomMembers(ctx, joinedRooms)
		if err != nil {
			return err
		}
		for _, m := range members {
			if m.Membership == "join" && m.UserID != me {
				changed[m.UserID] = true
			}
		}
	}
	return nil
}
