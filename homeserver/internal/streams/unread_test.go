package streams

import (
	"math"
	"testing"

	"github.com/matrix-gouv/homeserver/homeserver/storage"
)

func TestUnreadCache(t *testing.T) {
	const room = "!r:x"
	var p PendingActions
	total := func(user string, l UnreadLookup) storage.Counts {
		t.Helper()
		if l.Cached == nil {
			t.Fatalf("%s: counts not cached", user)
		}
		c, _ := l.Total(*l.Cached)
		return c
	}

	l := p.LookupUnread("@a:x", room)
	if l.Cached != nil || l.WrittenUpTo != math.MaxInt64 || len(l.Pending) != 0 {
		t.Fatalf("empty lookup = %+v", l)
	}
	// @a read up to 11; 3 written unread counted from the database.
	p.RememberUnread("@a:x", room, l, UnreadCounts{Read: ReadPositions{Unthreaded: 11},
		PerThread: map[string]storage.Counts{"main": {Notifications: 3, Highlights: 1}}})
	if c := total("@a", p.LookupUnread("@a:x", room)); c != (storage.Counts{Notifications: 3, Highlights: 1}) {
		t.Fatalf("cached = %+v", c)
	}
	// @b's count is read from the database across a batch: not cached.
	stale := p.LookupUnread("@b:x", room)

	ranges := map[string]RoomRange{room: {First: 10, Last: 13}}
	p.Add([]storage.PushAction{
		{UserID: "@a:x", RoomID: room, StreamPos: 11, ThreadID: "main"}, // already read
		{UserID: "@a:x", RoomID: room, StreamPos: 12, ThreadID: "$t", Highlight: true},
		{UserID: "@a:x", RoomID: room, StreamPos: 13, ThreadID: "main"},
		{UserID: "@b:x", RoomID: room, StreamPos: 13, ThreadID: "main"},
	}, ranges)
	p.RememberUnread("@b:x", room, stale, UnreadCounts{})
	if l := p.LookupUnread("@b:x", room); l.Cached != nil || l.WrittenUpTo != 9 || len(l.Pending) != 1 {
		t.Fatalf("@b after a count across a batch: %+v", l)
	}
	want := storage.Counts{Notifications: 5, Highlights: 2}
	if c := total("@a", p.LookupUnread("@a:x", room)); c != want {
		t.Fatalf("cached + pending = %+v, want %+v", c, want)
	}
	p.Written(ranges)
	l = p.LookupUnread("@a:x", room)
	if len(l.Pending) != 0 || l.WrittenUpTo != math.MaxInt64 {
		t.Fatalf("after the batch is written: %+v", l)
	}
	if c := total("@a", l); c != want {
		t.Fatalf("written into the cache = %+v, want %+v", c, want)
	}
	if _, per := l.Total(*l.Cached); per["$t"] != (storage.Counts{Notifications: 1, Highlights: 1}) {
		t.Errorf("thread counts = %+v", per)
	}
	// A receipt: counted again from the database.
	p.ReceiptMoved("@a:x", room)
	if l := p.LookupUnread("@a:x", room); l.Cached != nil {
		t.Fatalf("counts still cached after a receipt: %+v", l.Cached)
	}
	// A lookup's result cannot be changed through it.
	p.RememberUnread("@a:x", room, p.LookupUnread("@a:x", room), UnreadCounts{PerThread: map[string]storage.Counts{"main": {Notifications: 1}}})
	l = p.LookupUnread("@a:x", room)
	l.Cached.PerThread["main"] = storage.Counts{Notifications: 99}
	if c := total("@a", p.LookupUnread("@a:x", room)); c.Notifications != 1 {
		t.Errorf("cache changed through a lookup: %+v", c)
	}
}
