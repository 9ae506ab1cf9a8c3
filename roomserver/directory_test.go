package roomserver_test

import (
	"errors"
	"reflect"
	"sort"
	"testing"

	"github.com/matrix-gouv/homeserver/internal/bus/bustest"
	"github.com/matrix-gouv/homeserver/internal/storage"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

func TestAliases(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *storage.DB) {
		rs := newRoomserver(t, db, bustest.Embedded(t), testKey(t))
		room, other := publicRoom(t, rs, "12"), publicRoom(t, rs, "10")

		for _, a := range []string{"#b:test.local", "#a:test.local"} {
			if err := rs.SetAlias(ctx(), a, room, alice); err != nil {
				t.Fatalf("set alias %s: %v", a, err)
			}
		}
		if err := rs.SetAlias(ctx(), "#a:test.local", other, bob); !errors.Is(err, api.ErrAliasExists) {
			t.Fatalf("taken alias: %v, want ErrAliasExists", err)
		}
		if err := rs.SetAlias(ctx(), "#c:test.local", "!nope:test.local", alice); !errors.Is(err, api.ErrRoomNotFound) {
			t.Fatalf("alias to an unknown room: %v, want ErrRoomNotFound", err)
		}
		got, err := rs.ResolveAlias(ctx(), "#a:test.local")
		if want := (api.RoomAlias{Alias: "#a:test.local", RoomID: room, Creator: alice}); err != nil || got != want {
			t.Fatalf("resolve: %+v %v, want %+v", got, err, want)
		}
		if _, err := rs.ResolveAlias(ctx(), "#c:test.local"); !errors.Is(err, api.ErrNotFound) {
			t.Fatalf("resolve unknown: %v, want ErrNotFound", err)
		}
		if list, err := rs.AliasesOf(ctx(), room); err != nil || !reflect.DeepEqual(list, []string{"#a:test.local", "#b:test.local"}) {
			t.Fatalf("aliases of room: %v %v", list, err)
		}
		if list, err := rs.AliasesOf(ctx(), "!nope:test.local"); err != nil || len(list) != 0 {
			t.Fatalf("aliases of unknown room: %v %v", list, err)
		}

		// Deleting needs what resolving returned: a stale view deletes nothing.
		if err := rs.DeleteAlias(ctx(), api.RoomAlias{Alias: "#a:test.local", RoomID: room, Creator: bob}); !errors.Is(err, api.ErrNotFound) {
			t.Fatalf("delete with another creator: %v, want ErrNotFound", err)
		}
		if err := rs.DeleteAlias(ctx(), api.RoomAlias{Alias: "#a:test.local", RoomID: other, Creator: alice}); !errors.Is(err, api.ErrNotFound) {
			t.Fatalf("delete with another room: %v, want ErrNotFound", err)
		}
		if err := rs.DeleteAlias(ctx(), got); err != nil {
			t.Fatalf("delete: %v", err)
		}
		if err := rs.DeleteAlias(ctx(), got); !errors.Is(err, api.ErrNotFound) {
			t.Fatalf("delete twice: %v, want ErrNotFound", err)
		}
		if _, err := rs.ResolveAlias(ctx(), "#a:test.local"); !errors.Is(err, api.ErrNotFound) {
			t.Fatalf("resolve deleted: %v, want ErrNotFound", err)
		}
		// A deleted alias is free again, for any room.
		if err := rs.SetAlias(ctx(), "#a:test.local", other, bob); err != nil {
			t.Fatalf("reuse alias: %v", err)
		}
	})
}

func TestPublicRooms(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *storage.DB) {
		rs := newRoomserver(t, db, bustest.Embedded(t), testKey(t))
		r1, r2, r3, hidden := publicRoom(t, rs, "12"), publicRoom(t, rs, "11"), publicRoom(t, rs, "10"), publicRoom(t, rs, "12")
		space, _, err := rs.CreateRoom(ctx(), api.CreateRoomRequest{RoomVersion: "12", Creator: alice,
			CreateContent: raw(map[string]any{"type": "m.space"}),
			Events: []api.ProtoEvent{
				{Type: "m.room.member", StateKey: sk(alice), Sender: alice, Content: raw(map[string]string{"membership": "join"})},
			}})
		if err != nil {
			t.Fatal(err)
		}

		if pub, err := rs.Visibility(ctx(), r1); err != nil || pub {
			t.Fatalf("visibility of a new room: %v %v, want private", pub, err)
		}
		for _, r := range []string{r1, r2, r3, hidden, space} {
			if err := rs.SetVisibility(ctx(), r, true); err != nil {
				t.Fatal(err)
			}
		}
		if err := rs.SetVisibility(ctx(), hidden, false); err != nil {
			t.Fatal(err)
		}
		if pub, err := rs.Visibility(ctx(), r1); err != nil || !pub {
			t.Fatalf("visibility of a published room: %v %v", pub, err)
		}
		if err := rs.SetVisibility(ctx(), "!nope:test.local", true); !errors.Is(err, api.ErrRoomNotFound) {
			t.Fatalf("publish unknown room: %v", err)
		}
		if _, err := rs.Visibility(ctx(), "!nope:test.local"); !errors.Is(err, api.ErrRoomNotFound) {
			t.Fatalf("visibility of unknown room: %v", err)
		}

		send(t, rs, r2, bob, "m.room.member", sk(bob), map[string]string{"membership": "join"})
		send(t, rs, r2, alice, "m.room.topic", sk(""), map[string]string{"topic": "Cheese TALK"})
		send(t, rs, r3, alice, "m.room.history_visibility", sk(""), map[string]string{"history_visibility": "world_readable"})
		send(t, rs, r3, alice, "m.room.guest_access", sk(""), map[string]string{"guest_access": "can_join"})
		send(t, rs, r3, alice, "m.room.avatar", sk(""), map[string]string{"url": "mxc://test.local/abc"})
		if err := rs.SetAlias(ctx(), "#three:test.local", r3, alice); err != nil {
			t.Fatal(err)
		}
		send(t, rs, r3, alice, "m.room.canonical_alias", sk(""), map[string]string{"alias": "#three:test.local"})

		all, err := rs.PublicRooms(ctx(), api.PublicRoomsQuery{})
		if err != nil {
			t.Fatal(err)
		}
		// r2 has two members; the others one each, in room id order.
		want := append([]string{r2}, sortedIDs(r1, r3, space)...)
		if ids := roomIDs(all.Chunk); !reflect.DeepEqual(ids, want) || all.Total != 4 || all.NextBatch != "" || all.PrevBatch != "" {
			t.Fatalf("public rooms: %v total %d next %q prev %q, want %v", ids, all.Total, all.NextBatch, all.PrevBatch, want)
		}
		untyped := append([]string{r2}, sortedIDs(r1, r3)...)
		byID := map[string]api.PublicRoom{}
		for _, r := range all.Chunk {
			byID[r.RoomID] = r
		}
		if got, want := byID[r2], (api.PublicRoom{RoomID: r2, Name: "first", Topic: "Cheese TALK", NumJoinedMembers: 2, JoinRule: "public"}); got != want {
			t.Errorf("r2: %+v, want %+v", got, want)
		}
		if got, want := byID[r3], (api.PublicRoom{RoomID: r3, Name: "first", CanonicalAlias: "#three:test.local", AvatarURL: "mxc://test.local/abc",
			NumJoinedMembers: 1, WorldReadable: true, GuestCanJoin: true, JoinRule: "public"}); got != want {
			t.Errorf("r3: %+v, want %+v", got, want)
		}
		if got, want := byID[space], (api.PublicRoom{RoomID: space, NumJoinedMembers: 1, JoinRule: "invite", RoomType: "m.space"}); got != want {
			t.Errorf("space: %+v, want %+v", got, want)
		}

		// A state change shows in the next listing (the cached entry is
		// per state snapshot).
		send(t, rs, r1, alice, "m.room.name", sk(""), map[string]string{"name": "Renamed"})
		page, err := rs.PublicRooms(ctx(), api.PublicRoomsQuery{SearchTerm: "renAMED"})
		if err != nil || !reflect.DeepEqual(roomIDs(page.Chunk), []string{r1}) || page.Total != 1 {
			t.Fatalf("search by name: %v %v", roomIDs(page.Chunk), err)
		}
		for term, want := range map[string][]string{"cheese": {r2}, "THREE:test": {r3}, "nothing": {}} {
			page, err := rs.PublicRooms(ctx(), api.PublicRoomsQuery{SearchTerm: term})
			if err != nil || !reflect.DeepEqual(roomIDs(page.Chunk), want) {
				t.Errorf("search %q: %v %v, want %v", term, roomIDs(page.Chunk), err, want)
			}
		}
		for _, c := range []struct {
			types []string
			want  []string
		}{{[]string{"m.space"}, []string{space}}, {[]string{""}, untyped}, {[]string{"", "m.space"}, want}} {
			page, err := rs.PublicRooms(ctx(), api.PublicRoomsQuery{RoomTypes: c.types})
			if err != nil || !reflect.DeepEqual(roomIDs(page.Chunk), c.want) {
				t.Errorf("room types %q: %v %v, want %v", c.types, roomIDs(page.Chunk), err, c.want)
			}
		}

		// Paging forward by 3 then 1, back by 2, with a filter too.
		p1, err := rs.PublicRooms(ctx(), api.PublicRoomsQuery{Limit: 3})
		if err != nil || !reflect.DeepEqual(roomIDs(p1.Chunk), want[:3]) || p1.NextBatch == "" || p1.PrevBatch != "" || p1.Total != 4 {
			t.Fatalf("page 1: %v next %q prev %q %v", roomIDs(p1.Chunk), p1.NextBatch, p1.PrevBatch, err)
		}
		p2, err := rs.PublicRooms(ctx(), api.PublicRoomsQuery{Limit: 3, Since: p1.NextBatch})
		if err != nil || !reflect.DeepEqual(roomIDs(p2.Chunk), want[3:]) || p2.NextBatch != "" || p2.PrevBatch == "" {
			t.Fatalf("page 2: %v next %q prev %q %v", roomIDs(p2.Chunk), p2.NextBatch, p2.PrevBatch, err)
		}
		back, err := rs.PublicRooms(ctx(), api.PublicRoomsQuery{Limit: 2, Since: p2.PrevBatch})
		if err != nil || !reflect.DeepEqual(roomIDs(back.Chunk), want[1:3]) || back.NextBatch == "" || back.PrevBatch == "" {
			t.Fatalf("page back: %v next %q prev %q %v", roomIDs(back.Chunk), back.NextBatch, back.PrevBatch, err)
		}
		first, err := rs.PublicRooms(ctx(), api.PublicRoomsQuery{Limit: 2, Since: back.PrevBatch})
		if err != nil || !reflect.DeepEqual(roomIDs(first.Chunk), want[:1]) || first.PrevBatch != "" {
			t.Fatalf("first page back: %v prev %q %v", roomIDs(first.Chunk), first.PrevBatch, err)
		}
		f1, err := rs.PublicRooms(ctx(), api.PublicRoomsQuery{Limit: 1, RoomTypes: []string{""}})
		if err != nil || !reflect.DeepEqual(roomIDs(f1.Chunk), untyped[:1]) || f1.Total != 3 {
			t.Fatalf("filtered page: %v %v", roomIDs(f1.Chunk), err)
		}
		f2, err := rs.PublicRooms(ctx(), api.PublicRoomsQuery{Limit: 5, RoomTypes: []string{""}, Since: f1.NextBatch})
		if err != nil || !reflect.DeepEqual(roomIDs(f2.Chunk), untyped[1:]) || f2.NextBatch != "" {
			t.Fatalf("filtered page 2: %v next %q %v", roomIDs(f2.Chunk), f2.NextBatch, err)
		}
		for _, bad := range []string{"junk!", "bjE", "eDF8IXI"} {
			if _, err := rs.PublicRooms(ctx(), api.PublicRoomsQuery{Since: bad}); !errors.Is(err, api.ErrBadPageToken) {
				t.Errorf("token %q: %v, want ErrBadPageToken", bad, err)
			}
		}

		// A room nobody is in any more leaves the list.
		send(t, rs, space, alice, "m.room.member", sk(alice), map[string]string{"membership": "leave"})
		if page, err := rs.PublicRooms(ctx(), api.PublicRoomsQuery{}); err != nil || !reflect.DeepEqual(roomIDs(page.Chunk), untyped) {
			t.Fatalf("after the space emptied: %v %v", roomIDs(page.Chunk), err)
		}
	})
}

func roomIDs(rooms []api.PublicRoom) []string {
	ids := []string{}
	for _, r := range rooms {
		ids = append(ids, r.RoomID)
	}
	return ids
}

func sortedIDs(ids ...string) []string {
	out := append([]string(nil), ids...)
	sort.Strings(out)
	return out
}
