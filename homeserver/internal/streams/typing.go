package streams

import (
	"sort"
	"sync"
	"time"
)

// Typing is the typing stream: who is typing in which room, in memory
// (typing does not outlive a restart, and needs no disk).
type Typing struct {
	notifier *Notifier
	now      func() time.Time

	mu  sync.Mutex
	pos int64
	// rooms maps room → user → expiry.
	rooms map[string]map[string]time.Time
	// changed is each room's position of its last change.
	changed map[string]int64
}

// NewTyping returns the typing stream, starting at position start (the
// notifier's).
func NewTyping(n *Notifier, start int64) *Typing {
	return &Typing{notifier: n, now: time.Now, pos: start, rooms: map[string]map[string]time.Time{}, changed: map[string]int64{}}
}

// Reset moves the stream's position to start, before any change.
func (t *Typing) Reset(start int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pos = start
}

// MaxTypingTimeout caps a client's typing timeout.
const MaxTypingTimeout = 2 * time.Minute

// Set records that userID is (or stops) typing in roomID, for timeout.
func (t *Typing) Set(roomID, userID string, typing bool, timeout time.Duration) {
	t.mu.Lock()
	_, was := t.rooms[roomID][userID]
	if typing {
		if t.rooms[roomID] == nil {
			t.rooms[roomID] = map[string]time.Time{}
		}
		t.rooms[roomID][userID] = t.now().Add(min(timeout, MaxTypingTimeout))
	} else {
		delete(t.rooms[roomID], userID)
	}
	if was == typing {
		// Only the expiry moved: nothing for clients.
		t.mu.Unlock()
		return
	}
	pos := t.bumpLocked(roomID)
	t.mu.Unlock()
	t.notifier.OnTyping(roomID, pos)
}

func (t *Typing) bumpLocked(roomID string) int64 {
	t.pos++
	t.changed[roomID] = t.pos
	return t.pos
}

// Expire removes the typing users whose timeout passed; run it every
// second or so.
func (t *Typing) Expire() {
	now := t.now()
	var woke []string
	var positions []int64
	t.mu.Lock()
	for room, users := range t.rooms {
		expired := false
		for u, until := range users {
			if now.After(until) {
				delete(users, u)
				expired = true
			}
		}
		if len(users) == 0 {
			delete(t.rooms, room)
		}
		if expired {
			woke = append(woke, room)
			positions = append(positions, t.bumpLocked(room))
		}
	}
	t.mu.Unlock()
	for i, room := range woke {
		t.notifier.OnTyping(room, positions[i])
	}
}

// ChangedSince returns the users typing in roomID, and whether that
// changed after position since (and at most upTo).
func (t *Typing) ChangedSince(roomID string, since, upTo int64) (users []string, changed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.changed[roomID]
	if c <= since || c > upTo {
		return nil, false
	}
	users = make([]string, 0, len(t.rooms[roomID]))
	for u := range t.rooms[roomID] {
		users = append(users, u)
	}
	sort.Strings(users)
	return users, true
}

// Typing returns the users typing in roomID now.
func (t *Typing) Typing(roomID string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	users := make([]string, 0, len(t.rooms[roomID]))
	for u := range t.rooms[roomID] {
		users = append(users, u)
	}
	sort.Strings(users)
	return users
}
