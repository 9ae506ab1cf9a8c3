package streams

import (
	"maps"
	"math"
	"time"

	"github.com/matrix-gouv/homeserver/homeserver/storage"
)

// The unread counts cache: every woken /sync reports the unread counts of
// the rooms it carries, and counting them in the database (the user's
// receipts, then their unread actions) was two queries per room per sync.
// PendingActions keeps, per user and room, the counts of the written
// actions with the read positions they were counted from, brings them up
// to date as the feeder writes new actions, and forgets them when the
// user's receipts move. A count read from the database is kept only if
// nothing changed the room's actions or receipts while it was read.

// ReadPositions are how far a user has read a room: the roomserver
// position of their latest unthreaded receipt (m.read or m.read.private)
// and of each thread's.
type ReadPositions struct {
	Unthreaded int64
	Threads    map[string]int64
}

// Unread reports whether an action at pos in thread is after the read
// positions.
func (r ReadPositions) Unread(pos int64, thread string) bool {
	return pos > r.Unthreaded && pos > r.Threads[thread]
}

// UnreadCounts are a user's unread counts in a room per thread
// (storage.MainThread for the main timeline), counted from Read.
type UnreadCounts struct {
	Read      ReadPositions
	PerThread map[string]storage.Counts
}

func (u UnreadCounts) clone() UnreadCounts {
	return UnreadCounts{Read: ReadPositions{Unthreaded: u.Read.Unthreaded, Threads: maps.Clone(u.Read.Threads)}, PerThread: maps.Clone(u.PerThread)}
}

// add counts action a if it is unread.
func (u *UnreadCounts) add(a storage.PushAction) {
	if !u.Read.Unread(a.StreamPos, a.ThreadID) {
		return
	}
	if u.PerThread == nil {
		u.PerThread = map[string]storage.Counts{}
	}
	c := u.PerThread[a.ThreadID]
	c.Notifications++
	if a.Highlight {
		c.Highlights++
	}
	u.PerThread[a.ThreadID] = c
}

// UnreadLookup is what LookupUnread found.
type UnreadLookup struct {
	// Cached are the counts of the written actions, nil when not cached.
	Cached *UnreadCounts
	// WrittenUpTo is the position up to which the room's actions are
	// written (math.MaxInt64: all are): count the database up to it.
	WrittenUpTo int64
	// Pending are the actions after WrittenUpTo, not written yet.
	Pending []storage.PushAction

	gen, epoch uint64
}

// Total returns counts (of the written actions) plus the pending ones,
// per thread and in total.
func (l UnreadLookup) Total(written UnreadCounts) (total storage.Counts, perThread map[string]storage.Counts) {
	u := written.clone()
	for _, a := range l.Pending {
		u.add(a)
	}
	for _, c := range u.PerThread {
		total.Notifications += c.Notifications
		total.Highlights += c.Highlights
	}
	return total, u.PerThread
}

// maxUnreadEntries bounds the cache (users × rooms being synced); past it
// the cache starts over.
const maxUnreadEntries = 200_000

// unreadMaxAge is how long cached counts are trusted: long enough to
// spare the queries, short enough that the pruning of month-old unread
// highlights shows within the hour.
const unreadMaxAge = time.Hour

type unreadEntry struct {
	UnreadCounts
	at time.Time
}

// LookupUnread returns userID's cached unread counts in roomID, or what to
// count them from.
func (p *PendingActions) LookupUnread(userID, roomID string) UnreadLookup {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := UnreadLookup{WrittenUpTo: math.MaxInt64, gen: p.gen[roomID], epoch: p.epoch}
	if w, ok := p.written[roomID]; ok {
		l.WrittenUpTo = w
		l.Pending = append([]storage.PushAction(nil), p.pending[userID+" "+roomID]...)
	}
	if e := p.counts[roomID][userID]; e != nil && time.Since(e.at) < unreadMaxAge {
		c := e.clone()
		l.Cached = &c
	}
	return l
}

// RememberUnread caches counts of the written actions read from the
// database after l: kept only if nothing changed the room's actions or
// receipts since l.
func (p *PendingActions) RememberUnread(userID, roomID string, l UnreadLookup, counts UnreadCounts) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gen[roomID] != l.gen || p.epoch != l.epoch {
		return
	}
	if p.counts == nil || p.cached >= maxUnreadEntries {
		p.counts, p.cached = map[string]map[string]*unreadEntry{}, 0
		p.epoch++
	}
	room := p.counts[roomID]
	if room == nil {
		room = map[string]*unreadEntry{}
		p.counts[roomID] = room
	}
	if room[userID] == nil {
		p.cached++
	}
	room[userID] = &unreadEntry{UnreadCounts: counts.clone(), at: time.Now()}
}

// ReceiptMoved forgets userID's counts in roomID: a receipt of theirs
// changed what is read. Call it after the receipt is written.
func (p *PendingActions) ReceiptMoved(userID, roomID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bumpLocked(roomID)
	if room := p.counts[roomID]; room[userID] != nil {
		delete(room, userID)
		p.cached--
	}
}

func (p *PendingActions) bumpLocked(roomID string) {
	if p.gen == nil {
		p.gen = map[string]uint64{}
	}
	p.gen[roomID]++
}
