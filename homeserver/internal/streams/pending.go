package streams

import (
	"sync"

	"github.com/matrix-gouv/homeserver/homeserver/storage"
)

// PendingActions holds the push actions of events clients were woken for
// but whose actions are not written yet, so that unread counts include
// them: a count is the written actions up to Written(room) plus the
// pending ones after it, never one twice.
type PendingActions struct {
	mu sync.Mutex
	// written is, per room with pending actions, the roomserver position
	// up to which the room's actions are written.
	written map[string]int64
	// pending are the actions not yet written, per "user room".
	pending map[string][]storage.PushAction

	// counts caches unread counts of written actions per room and user
	// (unread.go); cached is their number.
	counts map[string]map[string]*unreadEntry
	cached int
	// gen moves, per room, at every change of its actions or receipts; epoch
	// when the cache starts over: a count read from the database across
	// a move is not cached.
	gen   map[string]uint64
	epoch uint64
}

// RoomRange is the roomserver positions of a batch's events in one room.
type RoomRange struct{ First, Last int64 }

// Add records actions evaluated for a batch whose events span ranges.
func (p *PendingActions) Add(actions []storage.PushAction, ranges map[string]RoomRange) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.written == nil {
		p.written, p.pending = map[string]int64{}, map[string][]storage.PushAction{}
	}
	for room, r := range ranges {
		if _, ok := p.written[room]; !ok {
			p.written[room] = r.First - 1
		}
		p.bumpLocked(room)
	}
	for _, a := range actions {
		k := a.UserID + " " + a.RoomID
		p.pending[k] = append(p.pending[k], a)
	}
}

// Written records that the batch spanning ranges has its actions written.
func (p *PendingActions) Written(ranges map[string]RoomRange) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for room, r := range ranges {
		p.written[room] = max(p.written[room], r.Last)
		p.bumpLocked(room)
	}
	left := map[string]bool{}
	for k, list := range p.pending {
		kept := list[:0]
		for _, a := range list {
			if a.StreamPos > p.written[a.RoomID] {
				kept = append(kept, a)
			} else if e := p.counts[a.RoomID][a.UserID]; e != nil {
				// Written now: cached counts of written actions take it.
				e.add(a)
			}
		}
		if len(kept) == 0 {
			delete(p.pending, k)
			continue
		}
		p.pending[k] = kept
		left[kept[0].RoomID] = true
	}
	for room := range p.written {
		if !left[room] {
			// All written: the table is the whole truth again.
			delete(p.written, room)
		}
	}
}
