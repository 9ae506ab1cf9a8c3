package federation

import (
	"context"
	"sync"
)

// roomServers remembers, per room, the servers with joined members, for
// the outbound sender: a message then costs no query (the roomserver's
// answer reads every joined member). An entry is dropped when the
// roomserver's output shows a change of the room's state, which the
// sender reads in order per room; an entry read meanwhile reflects the
// room's current state, never older than the events already read.
type roomServers struct {
	load func(ctx context.Context, roomID string) ([]string, error)

	mu    sync.Mutex // guards rooms
	rooms map[string][]string
}

// maxRoomServers bounds the cache; past it, it starts over.
const maxRoomServers = 50_000

func newRoomServers(load func(ctx context.Context, roomID string) ([]string, error)) *roomServers {
	return &roomServers{load: load, rooms: map[string][]string{}}
}

// get returns the servers with members joined to roomID. The slice is
// shared: callers must not change it.
func (r *roomServers) get(ctx context.Context, roomID string) ([]string, error) {
	r.mu.Lock()
	servers, ok := r.rooms[roomID]
	r.mu.Unlock()
	if ok {
		return servers, nil
	}
	servers, err := r.load(ctx, roomID)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if len(r.rooms) >= maxRoomServers {
		clear(r.rooms)
	}
	r.rooms[roomID] = servers
	r.mu.Unlock()
	return servers, nil
}

// changed drops what is known of roomID: its state changed.
func (r *roomServers) changed(roomID string) {
	r.mu.Lock()
	delete(r.rooms, roomID)
	r.mu.Unlock()
}
