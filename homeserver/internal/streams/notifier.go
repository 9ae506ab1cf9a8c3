package streams

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/matrix-gouv/homeserver/homeserver/storage"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
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
	// memberships are every membership row of each local user, leaves
	// included, so that /sync finds a user's rooms without a query (and
	// before the feeder has written them).
	memberships map[string]map[string]storage.Membership
	// persisted is the rooms position up to which the feeder has written
	// the rooms stream; persistedCh is closed (and replaced) when it moves.
	persisted   int64
	persistedCh chan struct{}
	// latest is each room's latest event in the rooms stream.
	latest map[string]storage.SyncEvent
	// bumps is the rooms position of each room's latest bump event
	// (BumpTypes).
	bumps map[string]int64
	// recent are each room's last recentEvents events, oldest first, so
	// that an incremental sync finds where its range starts without a
	// query.
	recent map[string][]storage.SyncEvent
	// related are the recent events that a later event relates to
	// (m.relates_to): the others have no aggregations to look up.
	related map[string]bool
	// keyCounts counts the key count changes of each device ("user
	// device"), so that /sync can keep counts until they change.
	keyCounts map[string]int64
	// roomEvent is closed (and replaced) at every room event, for
	// WaitForEvent.
	roomEvent chan struct{}
	// bodies are the last recentBodies events themselves, by roomserver
	// position, so that a woken /sync reads a room's few new events
	// without a query; bodyOrder is their arrival order (a ring) and
	// bodyPos finds one by id when a redaction makes it stale.
	bodies    map[int64]rsapi.Event
	bodyOrder []int64
	bodyNext  int
	bodyPos   map[string]int64
	// bodyTxns are the transaction ids the kept events were sent with,
	// by event id: the sender's next sync shows them before the feeder
	// has written them.
	bodyTxns map[string]storage.TxnKey
	// memberChanged is each room's last rooms position that changed a
	// membership (anyone's) since Load, which happened at loaded.
	memberChanged map[string]int64
	loaded        int64
}

// NewNotifier returns a notifier for the local users of serverName; Load
// fills it from the database.
func NewNotifier(serverName string) *Notifier {
	return &Notifier{
		serverSuffix:  ":" + serverName,
		waiters:       map[string]chan struct{}{},
		members:       map[string]map[string]string{},
		rooms:         map[string]map[string]string{},
		memberships:   map[string]map[string]storage.Membership{},
		persistedCh:   make(chan struct{}),
		latest:        map[string]storage.SyncEvent{},
		bumps:         map[string]int64{},
		recent:        map[string][]storage.SyncEvent{},
		related:       map[string]bool{},
		keyCounts:     map[string]int64{},
		roomEvent:     make(chan struct{}),
		bodies:        map[int64]rsapi.Event{},
		bodyPos:       map[string]int64{},
		bodyTxns:      map[string]storage.TxnKey{},
		memberChanged: map[string]int64{},
	}
}

// Loader is what Load reads.
type Loader interface {
	StreamPositions(ctx context.Context) (map[string]int64, error)
	RoomLatest(ctx context.Context) (map[string]storage.SyncEvent, error)
	RoomBumps(ctx context.Context) (map[string]int64, error)
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
	bumps, err := db.RoomBumps(ctx)
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
	n.bumps = bumps
	n.persisted = n.pos.Rooms
	n.loaded = n.pos.Rooms
	for _, m := range ms {
		n.setMembershipLocked(m.RoomID, m.UserID, m.Membership)
		n.recordMembershipLocked(m)
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
		r := n.recent[ev.RoomID]
		if len(r) == recentEvents {
			delete(n.related, r[0].EventID)
			r = append(r[:0:0], r[1:]...)
		}
		n.recent[ev.RoomID] = append(r, ev)
	}
	if ev.Bump && ev.SyncPos > n.bumps[ev.RoomID] {
		n.bumps[ev.RoomID] = ev.SyncPos
	}
	n.pos.Rooms = max(n.pos.Rooms, ev.SyncPos)
	close(n.roomEvent)
	n.roomEvent = make(chan struct{})
	n.wakeRoomLocked(ev.RoomID)
	for _, c := range changes {
		n.memberChanged[c.RoomID] = max(n.memberChanged[c.RoomID], ev.SyncPos)
		n.setMembershipLocked(c.RoomID, c.UserID, c.Membership)
		if n.IsLocal(c.UserID) {
			n.recordMembershipLocked(storage.Membership{MembershipChange: c, SyncPos: ev.SyncPos})
		}
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

// OnRemotePresence records a remote user's presence change, up to
// position pos, and wakes the local members of rooms (the rooms the
// remote user is joined to: only local users' rooms are indexed here).
func (n *Notifier) OnRemotePresence(rooms []string, pos int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.pos.Presence = max(n.pos.Presence, pos)
	n.wakeRoomsLocked(rooms)
}

// SharesRoomWith is SharesRoom for any b: a remote user's rooms are not
// indexed here, so for one the database answers.
func (n *Notifier) SharesRoomWith(ctx context.Context, store *storage.Store, a, b string) (bool, error) {
	if n.IsLocal(b) {
		return n.SharesRoom(a, b), nil
	}
	return store.ShareJoinedRoom(ctx, a, b)
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

// OnRemoteDeviceListChange records a change of a remote user's devices,
// up to stream id pos, and wakes the local members of rooms (the rooms
// the remote user is joined to: only local users' rooms are indexed
// here).
func (n *Notifier) OnRemoteDeviceListChange(rooms []string, pos int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.pos.DeviceLists = max(n.pos.DeviceLists, pos)
	n.wakeRoomsLocked(rooms)
}

// wakeRoomsLocked wakes the local members of rooms.
func (n *Notifier) wakeRoomsLocked(rooms []string) {
	for _, r := range rooms {
		n.wakeRoomLocked(r)
	}
}

// recordMembershipLocked keeps a local user's membership row.
func (n *Notifier) recordMembershipLocked(m storage.Membership) {
	rows := n.memberships[m.UserID]
	if rows == nil {
		rows = map[string]storage.Membership{}
		n.memberships[m.UserID] = rows
	}
	if m.SyncPos >= rows[m.RoomID].SyncPos {
		rows[m.RoomID] = m
	}
}

// MembershipsOf returns local user userID's memberships changed after
// rooms position since (all of them when since is 0), newest rows as
// the rooms stream has them, written or not.
func (n *Notifier) MembershipsOf(userID string, since int64) []storage.Membership {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []storage.Membership
	for _, m := range n.memberships[userID] {
		if m.SyncPos > since {
			out = append(out, m)
		}
	}
	return out
}

// Persisted records that the rooms stream is written up to pos.
func (n *Notifier) Persisted(pos int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if pos > n.persisted {
		n.persisted = pos
		close(n.persistedCh)
		n.persistedCh = make(chan struct{})
	}
}

// WaitPersisted waits until the rooms stream is written up to pos, for a
// reader about to query it there.
func (n *Notifier) WaitPersisted(ctx context.Context, pos int64) error {
	for {
		n.mu.Lock()
		done, ch := n.persisted >= pos, n.persistedCh
		n.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// EventAtOrBefore returns roomID's last event at or before rooms position
// pos, when the recent events tell (known false: ask the database).
func (n *Notifier) EventAtOrBefore(roomID string, pos int64) (ev storage.SyncEvent, ok, known bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if l, has := n.latest[roomID]; !has {
		return storage.SyncEvent{}, false, true
	} else if l.SyncPos <= pos {
		return l, true, true
	}
	r := n.recent[roomID]
	for i := len(r) - 1; i >= 0; i-- {
		if r[i].SyncPos <= pos {
			return r[i], true, true
		}
	}
	return storage.SyncEvent{}, false, false
}

// OnKeyCounts records that the one-time or fallback keys of a device
// changed.
func (n *Notifier) OnKeyCounts(userID, deviceID string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.keyCounts[userID+" "+deviceID]++
}

// KeyCountsVersion is the number of key count changes of a device this
// process saw: counts read at one version hold until it moves.
func (n *Notifier) KeyCountsVersion(userID, deviceID string) int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.keyCounts[userID+" "+deviceID]
}

// OnRelation records that an event of roomID relates to parentID, before
// OnRoomEvent records the event itself.
func (n *Notifier) OnRelation(roomID, parentID string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, e := range n.recent[roomID] {
		if e.EventID == parentID {
			n.related[parentID] = true
			return
		}
	}
}

// Unrelated reports, of eventIDs of roomID, those known to have no event
// relating to them: recent events no later event related to.
func (n *Notifier) Unrelated(roomID string, eventIDs []string) map[string]bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	recent := make(map[string]bool, len(n.recent[roomID]))
	for _, e := range n.recent[roomID] {
		recent[e.EventID] = true
	}
	out := map[string]bool{}
	for _, id := range eventIDs {
		if recent[id] && !n.related[id] {
			out[id] = true
		}
	}
	return out
}

// recentEvents is how many of each room's last events the notifier keeps.
const recentEvents = 32

// recentBodies is how many events (over all rooms) the notifier keeps in
// full: a few megabytes, enough for every woken /sync of a busy server to
// find its rooms' new events in memory.
const recentBodies = 8192

// KeepEvent records the body of an event about to be announced by
// OnRoomEvent, for RecentEvents. A redaction makes the event it redacts
// stale: that one is dropped (read again from the roomserver, redacted).
func (n *Notifier) KeepEvent(ev rsapi.Event, redacts string, txn *storage.TxnKey) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if pos, ok := n.bodyPos[redacts]; redacts != "" && ok {
		delete(n.bodies, pos)
		delete(n.bodyPos, redacts)
		delete(n.bodyTxns, redacts)
	}
	if _, ok := n.bodies[ev.StreamPos]; ok || ev.StreamPos == 0 {
		return
	}
	if len(n.bodyOrder) < recentBodies {
		n.bodyOrder = append(n.bodyOrder, ev.StreamPos)
	} else {
		old := n.bodyOrder[n.bodyNext]
		if b, ok := n.bodies[old]; ok {
			delete(n.bodyPos, b.EventID)
			delete(n.bodyTxns, b.EventID)
			delete(n.bodies, old)
		}
		n.bodyOrder[n.bodyNext] = ev.StreamPos
		n.bodyNext = (n.bodyNext + 1) % recentBodies
	}
	n.bodies[ev.StreamPos] = ev
	n.bodyPos[ev.EventID] = ev.StreamPos
	if txn != nil {
		n.bodyTxns[ev.EventID] = *txn
	}
}

// RecentTxnIDs returns, for those of eventIDs the notifier keeps, the
// transaction ids deviceID of userID sent them with; rest are the ids it
// does not keep (ask the database).
func (n *Notifier) RecentTxnIDs(userID, deviceID string, eventIDs []string) (ids map[string]string, rest []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ids = map[string]string{}
	for _, id := range eventIDs {
		if _, kept := n.bodyPos[id]; !kept {
			rest = append(rest, id)
			continue
		}
		if t, ok := n.bodyTxns[id]; ok && t.UserID == userID && t.DeviceID == deviceID {
			ids[id] = t.TxnID
		}
	}
	return ids, rest
}

// RecentEvents returns roomID's events with rooms positions in
// (since, upTo], oldest first, when the notifier holds all of them and
// they are at most max; ok is false otherwise (read the roomserver). The
// events are shared: callers must not change them.
func (n *Notifier) RecentEvents(roomID string, since, upTo int64, max int) (evs []rsapi.Event, ok bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	r := n.recent[roomID]
	if len(r) == 0 || r[0].SyncPos > since {
		return nil, false
	}
	for _, e := range r {
		if e.SyncPos <= since || e.SyncPos > upTo {
			continue
		}
		b, has := n.bodies[e.StreamPos]
		if !has || len(evs) == max {
			return nil, false
		}
		evs = append(evs, b)
	}
	return evs, true
}

// FirstAfter returns roomID's first event after rooms position since,
// when the recent events tell: known is false when they do not reach back
// to since (ask the database), ok false when there is none.
func (n *Notifier) FirstAfter(roomID string, since int64) (ev storage.SyncEvent, ok, known bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	r := n.recent[roomID]
	if len(r) == 0 || r[0].SyncPos > since {
		return storage.SyncEvent{}, false, false
	}
	for _, e := range r {
		if e.SyncPos > since {
			return e, true, true
		}
	}
	return storage.SyncEvent{}, false, true
}

// MembershipChangedSince reports whether a membership in one of roomIDs
// may have changed after rooms position since: false only when the
// notifier saw every change since then and none was in those rooms.
func (n *Notifier) MembershipChangedSince(roomIDs []string, since int64) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if since < n.loaded {
		return true
	}
	for _, r := range roomIDs {
		if n.memberChanged[r] > since {
			return true
		}
	}
	return false
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

// Activity returns, for each room of roomIDs, the rooms position of its
// latest bump event (BumpTypes), or of its latest event when it has none,
// and the position of its latest event; 0 for a room the stream never saw.
func (n *Notifier) Activity(roomIDs []string) (bumps, latest []int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	bumps, latest = make([]int64, len(roomIDs)), make([]int64, len(roomIDs))
	for i, r := range roomIDs {
		latest[i] = n.latest[r].SyncPos
		if b, ok := n.bumps[r]; ok {
			bumps[i] = b
		} else {
			bumps[i] = latest[i]
		}
	}
	return bumps, latest
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
