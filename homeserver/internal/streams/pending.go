package streams

import (
	"math"
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
	}
	left := map[string]bool{}
	for k, list := range p.pending {
		kept := list[:0]
		for _, a := range list {
			if a.StreamPos > p.written[a.RoomID] {
				kept = append(kept, a)
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

// Snapshot returns the position up to which userID's actions in roomID
// are written, and the pending ones after it.
func (p *PendingActions) Snapshot(userID, roomID string) (writtenUpTo int64, pending []storage.PushAction) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w, ok := p.written[roomID]
	if !ok {
		return math.MaxInt64, nil
	}
	return w, append([]storage.PushAction(nil), p.pending[userID+" "+roomID]...)
}
