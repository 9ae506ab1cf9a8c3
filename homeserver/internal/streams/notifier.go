package streams

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/matrix-gouv/homeserver/homeserver/storage"
)

// Notifier holds the current position of every stream and the rooms of
// local users, and wakes the requests waiting for a user. Writers call
// its On… methods after their change is committed; a request takes
// Current, reads up to it, and if it found nothing waits on Wait.
type Notifier struct {
	serverSuffix string

	mu  sync.Mutex
	pos Token
	// waiters holds, per user, a channel closed at the next change that
	// concerns the user.
	waiters map[string]chan struct{}
	// members are the local users with a membership of join, invite or
	// knock per room: the users an event in the room wakes.
	members map[string]map[string]string
	// rooms are the same memberships per local user.
	rooms map[string]map[string]string
	// latest is each room's latest event in the rooms stream.
	latest map[string]storage.SyncEvent
	// roomEvent is closed (and replaced) at every room event, for
	// WaitForEvent.
	roomEvent chan struct{}
}

// NewNotifier returns a notifier for the local users of serverName; Load
// fills it from the database.
func NewNotifier(serverName string) *Notifier {
	return &Notifier{
		serverSuffix: ":" + serverName,
		waiters:      map[string]chan struct{}{},
		members:      map[string]map[string]string{},
		rooms:        map[string]map[string]string{},
		latest:       map[string]storage.SyncEvent{},
		roomEvent:    make(chan struct{}),
	}
}

// Loader is what Load reads.
type Loader interface {
	StreamPositions(ctx context.Context) (map[string]int64, error)
	RoomLatest(ctx context.Context) (map[string]storage.SyncEvent, error)
	AllMemberships(ctx context.Context, serverName string) ([]storage.Membership, error)
}

// Load reads the current positions and memberships; typing starts at
// typingStart, past every position of an earlier run.
func (n *Notifier) Load(ctx context.Context, db Loader, typingStart int64) error {
	pos, err := db.StreamPositions(ctx)
	if err != nil {
		return fmt.Errorf("load stream positions: %w", err)
	}
	latest, err := db.RoomLatest(ctx)
	if err != nil {
		return err
	}
	ms, err := db.AllMemberships(ctx, strings.TrimPrefix(n.serverSuffix, ":"))
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.pos = Token{
		Rooms: pos["rooms"], Receipts: pos[storage.StreamReceipts], AccountData: pos[storage.StreamAccountData],
		Presence: pos[storage.StreamPresence], ToDevice: pos["to_device"], DeviceLists: pos["device_lists"], Typing: typingStart,
	}
	n.latest = latest
	for _, m := range ms {
		n.setMembershipLocked(m.RoomID, m.UserID, m.Membership)
	}
	return nil
}

// IsLocal reports whether userID is one of this server's users.
func (n *Notifier) IsLocal(userID string) bool { return strings.HasSuffix(userID, n.serverSuffix) }

// Current returns the current position of every stream.
func (n *Notifier) Current() Token {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.pos
}

// Wait returns a channel closed at the next change for userID. Take it
// before reading the streams, so that a change in between is not missed.
func (n *Notifier) Wait(userID string) <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	ch, ok := n.waiters[userID]
	if !ok {
		ch = make(chan struct{})
		n.waiters[userID] = ch
	}
	return ch
}

// wakeLocked wakes userID's waiting requests.
func (n *Notifier) wakeLocked(userID string) {
	if ch, ok := n.waiters[userID]; ok {
		close(ch)
		delete(n.waiters, userID)
	}
}

// wakeRoomLocked wakes the local members of roomID.
func (n *Notifier) wakeRoomLocked(roomID string) {
	for u := range n.members[roomID] {
		n.wakeLocked(u)
	}
}

// wakePeersLocked wakes userID and every local user who shares a room
// with them.
func (n *Notifier) wakePeersLocked(userID string) {
	n.wakeLocked(userID)
	// Only local users' rooms are indexed: a remote user's changes wake
	// nobody else until federation brings them.
	for room := range n.rooms[userID] {
		n.wakeRoomLocked(room)
	}
}

func (n *Notifier) setMembershipLocked(roomID, userID, membership string) {
	if !n.IsLocal(userID) {
		return
	}
	switch membership {
	case "join", "invite", "knock":
		if n.members[roomID] == nil {
			n.members[roomID] = map[string]string{}
		}
		n.members[roomID][userID] = membership
		if n.rooms[userID] == nil {
			n.rooms[userID] = map[string]string{}
		}
		n.rooms[userID][roomID] = membership
	default:
		delete(n.members[roomID], userID)
		if len(n.members[roomID]) == 0 {
			delete(n.members, roomID)
		}
		delete(n.rooms[userID], roomID)
		if len(n.rooms[userID]) == 0 {
			delete(n.rooms, userID)
		}
	}
}

// OnRoomEvent records an event appended to the rooms stream and the
// membership changes it made, and wakes the room's local members and the
// users whose membership changed (an invitee, a user who left).
func (n *Notifier) OnRoomEvent(ev storage.SyncEvent, changes []storage.MembershipChange) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ev.SyncPos > n.latest[ev.RoomID].SyncPos {
		n.latest[ev.RoomID] = ev
	}
	n.pos.Rooms = max(n.pos.Rooms, ev.SyncPos)
	close(n.roomEvent)
	n.roomEvent = make(chan struct{})
	n.wakeRoomLocked(ev.RoomID)
	for _, c := range changes {
		n.setMembershipLocked(c.RoomID, c.UserID, c.Membership)
		n.wakeLocked(c.UserID)
		if c.Membership == "join" || c.Membership == "leave" || c.Membership == "ban" {
			// Device lists: whoever shares a room with the user now (or
			// no longer) must hear of it.
			n.wakeRoomLocked(c.RoomID)
		}
	}
}

// OnReceipt records a receipt in roomID at position pos.
func (n *Notifier) OnReceipt(roomID string, pos int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.pos.Receipts = max(n.pos.Receipts, pos)
	n.wakeRoomLocked(roomID)
}

// OnTyping records a typing change in roomID at position pos.
func (n *Notifier) OnTyping(roomID string, pos int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.pos.Typing = max(n.pos.Typing, pos)
	n.wakeRoomLocked(roomID)
}

// OnAccountData records a change of userID's account data at pos.
func (n *Notifier) OnAccountData(userID string, pos int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.pos.AccountData = max(n.pos.AccountData, pos)
	n.wakeLocked(userID)
}

// OnPresence records a change of userID's presence at pos.
func (n *Notifier) OnPresence(userID string, pos int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.pos.Presence = max(n.pos.Presence, pos)
	n.wakePeersLocked(userID)
}

// OnToDevice records new to-device messages for userID, up to stream id
// pos.
func (n *Notifier) OnToDevice(userID string, pos int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.pos.ToDevice = max(n.pos.ToDevice, pos)
	n.wakeLocked(userID)
}

// OnDeviceListChange records a change of userID's devices or
// cross-signing keys, up to stream id pos.
func (n *Notifier) OnDeviceListChange(userID string, pos int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.pos.DeviceLists = max(n.pos.DeviceLists, pos)
	n.wakePeersLocked(userID)
}

// Latest returns roomID's latest event in the rooms stream.
func (n *Notifier) Latest(roomID string) (storage.SyncEvent, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ev, ok := n.latest[roomID]
	return ev, ok
}

// LocalMembers returns the local users with a membership of join, invite
// or knock in roomID.
func (n *Notifier) LocalMembers(roomID string) map[string]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string]string, len(n.members[roomID]))
	for u, m := range n.members[roomID] {
		out[u] = m
	}
	return out
}

// SharesRoom reports whether local user a and user b are both joined to
// some room.
func (n *Notifier) SharesRoom(a, b string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for room, m := range n.rooms[a] {
		if m != "join" {
			continue
		}
		if _, ok := n.members[room][b]; ok && n.members[room][b] == "join" {
			return true
		}
	}
	return false
}

// RoomsOf returns local user userID's rooms with a membership of join,
// invite or knock.
func (n *Notifier) RoomsOf(userID string) map[string]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string]string, len(n.rooms[userID]))
	for r, m := range n.rooms[userID] {
		out[r] = m
	}
	return out
}

// WaitForEvent waits until the rooms stream has reached roomID's event at
// roomserver position streamPos, or for at most timeout, so that a client
// that wrote an event sees it in its next sync (read your writes).
func (n *Notifier) WaitForEvent(ctx context.Context, roomID string, streamPos int64, timeout time.Duration) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		n.mu.Lock()
		reached := n.latest[roomID].StreamPos >= streamPos
		ch := n.roomEvent
		n.mu.Unlock()
		if reached {
			return
		}
		select {
		case <-ch:
		case <-timer.C:
			return
		case <-ctx.Done():
			return
		}
	}
}
