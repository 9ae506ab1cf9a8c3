// Package state gives the roomserver's other packages their view of rooms
// in memory: cached events (rows and parsed PDUs), cached state snapshots,
// interned (type, state key) pairs, and state resolution over snapshots.
// Everything cached here is immutable once written (events, snapshots,
// nids), so the caches need no invalidation, only bounds.
package state

import (
	"context"
	"fmt"
	"sync"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/matrix-gouv/homeserver/roomserver/storage"
)

// Event is an event's row with its parsed PDU.
type Event struct {
	storage.Event
	PDU gomatrixserverlib.PDU
}

// Events loads events through a bounded cache.
type Events struct {
	store   *storage.Store
	version func(roomNID int64) (gomatrixserverlib.IRoomVersion, error)
	limit   int

	mu   sync.Mutex // guards byID, byNID, pinned and forgets
	byID map[string]*Event
	// byNID holds the same entries as byID.
	byNID map[int64]*Event
	// pinned are events of transactions not yet committed, which the
	// database does not show: never dropped until settled.
	pinned map[int64]struct{}
	// forgets counts Forget calls: a read that a Forget overlapped may
	// hold a row older than the change, and is not cached.
	forgets uint64
}

// NewEvents returns an event cache of at most limit events; version tells
// a room's version, to parse its events.
func NewEvents(store *storage.Store, limit int, version func(roomNID int64) (gomatrixserverlib.IRoomVersion, error)) *Events {
	return &Events{store: store, version: version, limit: limit, byID: map[string]*Event{}, byNID: map[int64]*Event{},
		pinned: map[int64]struct{}{}}
}

// Add caches an event just written, so it need not be read back. It is
// kept until Settle (its transaction committed) or Forget (rolled back):
// the rest of its transaction must find it, and reading it back from the
// database would not.
func (c *Events) Add(e *Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addLocked(e)
	c.pinned[e.NID] = struct{}{}
}

// Settle lets the cache drop events of a committed transaction.
func (c *Events) Settle(nids []int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range nids {
		delete(c.pinned, n)
	}
}

func (c *Events) addLocked(e *Event) {
	if len(c.byNID) >= c.limit {
		// Drop an arbitrary tenth: cheap, and a miss only costs a read.
		n := 0
		for nid, ev := range c.byNID {
			if _, ok := c.pinned[nid]; ok {
				continue
			}
			delete(c.byNID, nid)
			delete(c.byID, ev.EventID)
			if n++; n >= c.limit/10 {
				break
			}
		}
	}
	c.byID[e.EventID] = e
	c.byNID[e.NID] = e
}

// Forget drops an event whose row changed (a redaction was applied) or
// whose transaction rolled back.
func (c *Events) Forget(nid int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forgets++
	delete(c.pinned, nid)
	if e, ok := c.byNID[nid]; ok {
		delete(c.byNID, nid)
		delete(c.byID, e.EventID)
	}
}

// ByNID returns the events with the given nids, in the same order;
// unknown nids are an error.
func (c *Events) ByNID(ctx context.Context, nids []int64) ([]*Event, error) {
	out := make([]*Event, len(nids))
	var missing []int64
	c.mu.Lock()
	forgets := c.forgets
	for i, n := range nids {
		if e, ok := c.byNID[n]; ok {
			out[i] = e
		} else {
			missing = append(missing, n)
		}
	}
	c.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	rows, err := c.store.EventsByNID(ctx, missing)
	if err != nil {
		return nil, err
	}
	loaded, err := c.parse(rows, forgets)
	if err != nil {
		return nil, err
	}
	for i, n := range nids {
		if out[i] == nil {
			if out[i] = loaded[n]; out[i] == nil {
				return nil, fmt.Errorf("event nid %d: %w", n, storage.ErrNotFound)
			}
		}
	}
	return out, nil
}

// ByID returns the known events among ids, keyed by id.
func (c *Events) ByID(ctx context.Context, ids []string) (map[string]*Event, error) {
	out := make(map[string]*Event, len(ids))
	var missing []string
	c.mu.Lock()
	forgets := c.forgets
	for _, id := range ids {
		if e, ok := c.byID[id]; ok {
			out[id] = e
		} else {
			missing = append(missing, id)
		}
	}
	c.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	rows, err := c.store.EventsByID(ctx, missing)
	if err != nil {
		return nil, err
	}
	loaded, err := c.parse(rows, forgets)
	if err != nil {
		return nil, err
	}
	for _, e := range loaded {
		out[e.EventID] = e
	}
	return out, nil
}

// parse parses rows read from the database and caches them, unless a
// Forget happened since the read began (forgets was then the count): the
// rows may predate the change it announced. Pinned events are not
// replaced either: the transaction writing them has the newer version.
func (c *Events) parse(rows []storage.Event, forgets uint64) (map[int64]*Event, error) {
	out := make(map[int64]*Event, len(rows))
	for _, r := range rows {
		v, err := c.version(r.RoomNID)
		if err != nil {
			return nil, err
		}
		pdu, err := v.NewEventFromTrustedJSONWithEventID(r.EventID, r.JSON, false)
		if err != nil {
			return nil, fmt.Errorf("parse event %s: %w", r.EventID, err)
		}
		out[r.NID] = &Event{Event: r, PDU: pdu}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.forgets != forgets {
		return out, nil
	}
	for nid, e := range out {
		if _, pinned := c.pinned[nid]; !pinned {
			c.addLocked(e)
		}
	}
	return out, nil
}
