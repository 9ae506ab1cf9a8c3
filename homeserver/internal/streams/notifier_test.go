package streams

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/matrix-gouv/homeserver/homeserver/storage"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
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

func TestNotifierEventBodies(t *testing.T) {
	n := NewNotifier("x")
	add := func(room string, sync, stream int64) {
		n.KeepEvent(rsapi.Event{RoomID: room, EventID: fmt.Sprintf("$%d", stream), StreamPos: stream}, "", nil)
		n.OnRoomEvent(storage.SyncEvent{SyncPos: sync, RoomID: room, EventID: fmt.Sprintf("$%d", stream), StreamPos: stream}, nil)
	}
	for i := int64(1); i <= 6; i++ {
		add("!a:x", i*2, i*10)
		add("!b:x", i*2+1, i*10+1)
	}
	ids := func(evs []rsapi.Event) string {
		var out []string
		for _, e := range evs {
			out = append(out, e.EventID)
		}
		return strings.Join(out, ",")
	}
	for _, tt := range []struct {
		name        string
		room        string
		since, upTo int64
		max         int
		want        string
		wantOK      bool
	}{
		{"new events of one room", "!a:x", 6, 12, 10, "$40,$50,$60", true},
		{"up to a position", "!a:x", 6, 9, 10, "$40", true},
		{"nothing new", "!a:x", 12, 13, 10, "", true},
		{"more than max: ask the roomserver", "!a:x", 2, 12, 3, "", false},
		{"before the recent events: ask the roomserver", "!a:x", 1, 12, 10, "", false},
		{"unknown room", "!c:x", 0, 12, 10, "", false},
	} {
		evs, ok := n.RecentEvents(tt.room, tt.since, tt.upTo, tt.max)
		if ok != tt.wantOK || ids(evs) != tt.want {
			t.Errorf("%s: RecentEvents = %q %v, want %q %v", tt.name, ids(evs), ok, tt.want, tt.wantOK)
		}
	}
	// A redaction drops the body of the event it redacts: the roomserver
	// has it redacted.
	n.KeepEvent(rsapi.Event{RoomID: "!a:x", EventID: "$redaction", StreamPos: 70}, "$50", nil)
	if _, ok := n.RecentEvents("!a:x", 6, 12, 10); ok {
		t.Error("RecentEvents serves an event after its redaction")
	}
	if evs, ok := n.RecentEvents("!a:x", 10, 12, 10); !ok || ids(evs) != "$60" {
		t.Errorf("RecentEvents after the redacted one = %q %v", ids(evs), ok)
	}
	// The bodies are bounded: the oldest go first.
	for i := int64(0); i < recentBodies; i++ {
		n.KeepEvent(rsapi.Event{RoomID: "!z:x", EventID: fmt.Sprintf("$z%d", i), StreamPos: 1000 + i}, "", nil)
	}
	if len(n.bodies) != recentBodies || len(n.bodyPos) != recentBodies {
		t.Errorf("%d bodies, %d ids kept, want %d", len(n.bodies), len(n.bodyPos), recentBodies)
	}
	if _, ok := n.RecentEvents("!a:x", 10, 12, 10); ok {
		t.Error("RecentEvents serves an event pushed out of the bodies")
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
