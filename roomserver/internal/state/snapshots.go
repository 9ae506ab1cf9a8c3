package state

import (
	"context"
	"sync"

	"github.com/matrix-gouv/homeserver/roomserver/storage"
)

// Snapshots loads state snapshots through a cache bounded by the total
// number of state entries it holds. Callers must not modify returned maps.
type Snapshots struct {
	store *storage.Store
	limit int

	mu      sync.Mutex // guards entries and size
	entries map[int64]cachedSnapshot
	size    int
}

type cachedSnapshot struct {
	snap  storage.Snapshot
	state storage.StateMap
}

// NewSnapshots returns a snapshot cache holding about limit state entries.
func NewSnapshots(store *storage.Store, limit int) *Snapshots {
	return &Snapshots{store: store, limit: limit, entries: map[int64]cachedSnapshot{}}
}

// Add caches a snapshot just written.
func (c *Snapshots) Add(snap storage.Snapshot, state storage.StateMap) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.size+len(state) > c.limit && len(c.entries) > 0 {
		for nid, e := range c.entries {
			delete(c.entries, nid)
			c.size -= len(e.state)
			break
		}
	}
	c.entries[snap.NID] = cachedSnapshot{snap, state}
	c.size += len(state)
}

// Load returns a snapshot and its state; nid 0 is the empty state.
func (c *Snapshots) Load(ctx context.Context, nid int64) (storage.Snapshot, storage.StateMap, error) {
	if nid == 0 {
		return storage.Snapshot{}, storage.StateMap{}, nil
	}
	c.mu.Lock()
	e, ok := c.entries[nid]
	c.mu.Unlock()
	if ok {
		return e.snap, e.state, nil
	}
	snap, st, err := c.store.LoadSnapshot(ctx, nid)
	if err != nil {
		return storage.Snapshot{}, nil, err
	}
	c.Add(snap, st)
	return snap, st, nil
}
