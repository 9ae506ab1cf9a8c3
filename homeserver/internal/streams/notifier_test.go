package streams

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/matrix-gouv/homeserver/homeserver/storage"
)

func TestNotifierRecentEvents(t *testing.T) {
	n := NewNotifier("x")
	for i := int64(1); i <= recentEvents+8; i++ {
		n.OnRoomEvent(storage.SyncEvent{SyncPos: i * 2, RoomID: "!r:x", EventID: "$e", StreamPos: i * 10}, nil)
	}
	last := int64(recentEvents+8) * 2
	oldest := last - int64(recentEvents-1)*2
	for _, tt := range []struct {
		since           int64
		wantPos         int64
		wantOK, wantKnw bool
	}{
		{since: last, wantOK: false, wantKnw: true},
		{since: last - 1, wantPos: last, wantOK: true, wantKnw: true},
		{since: oldest, wantPos: oldest + 2, wantOK: true, wantKnw: true},
		{since: oldest - 1, wantKnw: false},
	} {
		ev, ok, known := n.FirstAfter("!r:x", tt.since)
		if known != tt.wantKnw || ok != tt.wantOK || (ok && ev.SyncPos != tt.wantPos) {
			t.Errorf("FirstAfter(%d) = %d %v %v, want %d %v %v", tt.since, ev.SyncPos, ok, known, tt.wantPos, tt.wantOK, tt.wantKnw)
		}
	}
	if ev, ok, known := n.EventAtOrBefore("!r:x", last-1); !known || !ok || ev.SyncPos != last-2 {
		t.Errorf("EventAtOrBefore(%d) = %d %v %v", last-1, ev.SyncPos, ok, known)
	}
	if _, _, known := n.EventAtOrBefore("!r:x", oldest-1); known {
		t.Error("EventAtOrBefore before the recent events claims to know")
	}
	if _, ok, known := n.EventAtOrBefore("!other:x", 5); ok || !known {
		t.Error("a room without events has an event")
	}
}

func TestNotifierWakesMembers(t *testing.T) {
	n := NewNotifier("x")
	join := storage.MembershipChange{RoomID: "!r:x", UserID: "@a:x", Membership: "join", EventID: "$j"}
	n.OnRoomEvent(storage.SyncEvent{SyncPos: 1, RoomID: "!r:x", EventID: "$j", StreamPos: 1}, []storage.MembershipChange{join})
	a, b := n.Wait("@a:x"), n.Wait("@b:x")
	n.OnRoomEvent(storage.SyncEvent{SyncPos: 2, RoomID: "!r:x", EventID: "$m", StreamPos: 2}, nil)
	select {
	case <-a:
	default:
		t.Fatal("a member was not woken")
	}
	select {
	case <-b:
		t.Fatal("a stranger was woken")
	default:
	}
	if ms := n.MembershipsOf("@a:x", 0); len(ms) != 1 || ms[0].SyncPos != 1 {
		t.Fatalf("memberships = %+v", ms)
	}
	if ms := n.MembershipsOf("@a:x", 1); len(ms) != 0 {
		t.Fatalf("memberships after 1 = %+v", ms)
	}
	// WaitForEvent returns once the event is there, or at its timeout.
	done := make(chan struct{})
	go func() {
		n.WaitForEvent(context.Background(), "!r:x", 3, 5*time.Second)
		close(done)
	}()
	n.OnRoomEvent(storage.SyncEvent{SyncPos: 3, RoomID: "!r:x", EventID: "$n", StreamPos: 3}, nil)
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("WaitForEvent did not see the event")
	}
}

func TestPendingActions(t *testing.T) {
	var p PendingActions
	if w, pend := p.Snapshot("@a:x", "!r:x"); w != math.MaxInt64 || pend != nil {
		t.Fatalf("empty snapshot = %d %v", w, pend)
	}
	ranges := map[string]RoomRange{"!r:x": {First: 10, Last: 12}}
	p.Add([]storage.PushAction{{UserID: "@a:x", RoomID: "!r:x", StreamPos: 11}}, ranges)
	if w, pend := p.Snapshot("@a:x", "!r:x"); w != 9 || len(pend) != 1 {
		t.Fatalf("pending snapshot = %d %v", w, pend)
	}
	p.Written(ranges)
	if w, pend := p.Snapshot("@a:x", "!r:x"); w != math.MaxInt64 || len(pend) != 0 {
		t.Fatalf("written snapshot = %d %v", w, pend)
	}
}

func TestNotifierUnrelated(t *testing.T) {
	n := NewNotifier("x")
	n.OnRoomEvent(storage.SyncEvent{SyncPos: 1, RoomID: "!r:x", EventID: "$a", StreamPos: 1}, nil)
	n.OnRoomEvent(storage.SyncEvent{SyncPos: 2, RoomID: "!r:x", EventID: "$b", StreamPos: 2}, nil)
	n.OnRelation("!r:x", "$a")
	n.OnRoomEvent(storage.SyncEvent{SyncPos: 3, RoomID: "!r:x", EventID: "$edit", StreamPos: 3}, nil)
	got := n.Unrelated("!r:x", []string{"$a", "$b", "$old"})
	if got["$a"] || !got["$b"] || got["$old"] {
		t.Fatalf("Unrelated = %v: want only $b (related $a, unknown $old)", got)
	}
}

func TestNotifierActivity(t *testing.T) {
	n := NewNotifier("x")
	n.OnRoomEvent(storage.SyncEvent{SyncPos: 1, RoomID: "!a:x", EventID: "$1", StreamPos: 1, Bump: true}, nil)
	n.OnRoomEvent(storage.SyncEvent{SyncPos: 2, RoomID: "!b:x", EventID: "$2", StreamPos: 1, Bump: true}, nil)
	// A name change or a join in !a is no activity: !b stays ahead.
	n.OnRoomEvent(storage.SyncEvent{SyncPos: 3, RoomID: "!a:x", EventID: "$3", StreamPos: 2}, nil)
	// A room without any bump event ranks by its latest event.
	n.OnRoomEvent(storage.SyncEvent{SyncPos: 4, RoomID: "!c:x", EventID: "$4", StreamPos: 1}, nil)
	bumps, latest := n.Activity([]string{"!a:x", "!b:x", "!c:x", "!unknown:x"})
	if want := []int64{1, 2, 4, 0}; !slices.Equal(bumps, want) {
		t.Errorf("bumps = %v, want %v", bumps, want)
	}
	if want := []int64{3, 2, 4, 0}; !slices.Equal(latest, want) {
		t.Errorf("latest = %v, want %v", latest, want)
	}
}
