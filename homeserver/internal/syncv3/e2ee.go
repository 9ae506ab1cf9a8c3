package syncv3

import (
	"context"
	"encoding/json"
	"sort"
	"sync"

	"github.com/matrix-gouv/homeserver/homeserver/internal/streams"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
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
	counts, types, err := b.h.keyCounts.get(ctx, b.h, b.req.dev.UserID, b.req.dev.DeviceID)
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
	resp.FallbackKeyTypes = append(resp.FallbackKeyTypes, types...)
	return nil
}

// keyCountCache keeps each device's key counts until an upload or claim
// changes them (Notifier.KeyCountsVersion), so that a sync costs no key
// query. Every sync still carries the counts, as clients expect.
type keyCountCache struct {
	mu      sync.Mutex
	devices map[string]keyCounts
}

type keyCounts struct {
	version  int64
	counts   map[string]int
	fallback []string
}

// get returns the device's one-time key counts and unused fallback key
// types.
func (c *keyCountCache) get(ctx context.Context, h *Handlers, userID, deviceID string) (map[string]int, []string, error) {
	key := userID + " " + deviceID
	version := h.Notifier.KeyCountsVersion(userID, deviceID)
	c.mu.Lock()
	kc, ok := c.devices[key]
	c.mu.Unlock()
	if ok && kc.version == version {
		return kc.counts, kc.fallback, nil
	}
	counts, err := h.Store.OneTimeKeyCounts(ctx, userID, deviceID)
	if err != nil {
		return nil, nil, err
	}
	fallback, err := h.Store.UnusedFallbackKeyTypes(ctx, userID, deviceID)
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	if c.devices == nil {
		c.devices = map[string]keyCounts{}
	}
	c.devices[key] = keyCounts{version: version, counts: counts, fallback: fallback}
	c.mu.Unlock()
	return counts, fallback, nil
}

// toDevice delivers the device's pending to-device messages, after
// deleting those the device acknowledged by syncing from a token past
// them.
func (b *builder) toDevice(ctx context.Context, resp *response) error {
	dev := b.req.dev
	since := b.since.ToDevice
	key := dev.UserID + " " + dev.DeviceID
	if since > 0 && (b.h.delivered.due(key, since) || since < b.upTo.ToDevice) {
		if err := b.h.Store.AckInbox(ctx, dev.UserID, dev.DeviceID, since); err != nil {
			return err
		}
	}
	if !b.initial() && since >= b.upTo.ToDevice && !b.h.delivered.pending(key) {
		// Nothing new in the stream, nothing left over: no query.
		b.toDeviceNext = since
		return nil
	}
	msgs, err := b.h.Store.Inbox(ctx, dev.UserID, dev.DeviceID, since, toDeviceLimit)
	if err != nil {
		return err
	}
	b.h.delivered.record(key, msgs, toDeviceLimit)
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
				continue
			}
			if !b.h.Notifier.IsLocal(u) {
				// Other servers' users are not indexed in memory.
				shared, err := b.h.Store.ShareJoinedRoom(ctx, me, u)
				if err != nil {
					return err
				}
				if shared {
					changed[u] = true
				}
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
	for _, m := range b.h.Notifier.MembershipsOf(me, b.since.Rooms) {
		if m.Membership != "join" && m.Membership != "invite" && m.Membership != "knock" {
			rooms = append(rooms, m.RoomID)
		}
	}
	if !b.h.Notifier.MembershipChangedSince(rooms, b.since.Rooms) {
		return nil
	}
	if err := b.written(ctx); err != nil {
		return err
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

// deliveries remembers, per device, the last to-device message delivered
// and whether more were left over, so that a sync queries the inbox only
// when there can be something to acknowledge or to deliver.
type deliveries struct {
	mu      sync.Mutex
	devices map[string]delivery
}

type delivery struct {
	last int64
	more bool
}

// record notes what a response delivered.
func (d *deliveries) record(key string, msgs []storage.InboxMessage, limit int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.devices == nil {
		d.devices = map[string]delivery{}
	}
	if len(msgs) == 0 {
		delete(d.devices, key)
		return
	}
	d.devices[key] = delivery{last: msgs[len(msgs)-1].StreamID, more: len(msgs) == limit}
}

// due reports whether a sync from position since acknowledges messages
// this process delivered.
func (d *deliveries) due(key string, since int64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	dl, ok := d.devices[key]
	return ok && since >= dl.last
}

// pending reports whether the last response left messages over.
func (d *deliveries) pending(key string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.devices[key].more
}
