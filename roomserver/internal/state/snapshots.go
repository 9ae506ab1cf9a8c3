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

	mu      sync.Mutex // guards entries, size and pinned
	entries map[int64]cachedSnapshot
	size    int
	// pinned are snapshots of transactions not yet committed (see
	// Events.Add): never dropped until settled.
	pinned map[int64]struct{}
}

type cachedSnapshot struct {
	snap  storage.Snapshot
	state storage.StateMap
}

// NewSnapshots returns a snapshot cache holding about limit state entries.
func NewSnapshots(store *storage.Store, limit int) *Snapshots {
	return &Snapshots{store: store, limit: limit, entries: map[int64]cachedSnapshot{}, pinned: map[int64]struct{}{}}
}

// Add caches a snapshot just written, kept until Settle: the rest of its
// transaction must find it, and the database does not show it yet.
func (c *Snapshots) Add(snap storage.Snapshot, state storage.StateMap) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.makeRoom(len(state))
	c.entries[snap.NID] = cachedSnapshot{snap, state}
	c.size += len(state)
	c.pinned[snap.NID] = struct{}{}
}

// Settle lets the cache drop snapshots of a transaction that ended.
func (c *Snapshots) Settle(nids []int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range nids {
		delete(c.pinned, n)
	}
}

// makeRoom drops unpinned snapshots until n more entries fit.
func (c *Snapshots) makeRoom(n int) {
	for c.size+n > c.limit {
		dropped := false
		for nid, e := range c.entries {
			if _, ok := c.pinned[nid]; ok {
				continue
			}
			delete(c.entries, nid)
			c.size -= len(e.state)
			dropped = true
			break
		}
		if !dropped {
			return
		}
	}
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
	c.mu.Lock()
	c.makeRoom(len(st))
	c.entries[snap.NID] = cachedSnapshot{snap, st}
	c.size += len(st)
	c.mu.Unlock()
	return snap, st, nil
}
