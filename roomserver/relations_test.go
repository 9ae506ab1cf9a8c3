package roomserver_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/matrix-gouv/homeserver/internal/bus"
	"github.com/matrix-gouv/homeserver/internal/bus/bustest"
	"github.com/matrix-gouv/homeserver/internal/storage"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

func TestRelationsThreadsAndAggregations(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *storage.DB) {
		rs := newRoomserver(t, db, bustest.Embedded(t), testKey(t))
		roomID := publicRoom(t, rs, "12")
		send(t, rs, roomID, bob, "m.room.member", sk(bob), map[string]string{"membership": "join"})
		root := send(t, rs, roomID, alice, "m.room.message", nil, map[string]string{"body": "root"})
		other := send(t, rs, roomID, alice, "m.room.message", nil, map[string]string{"body": "another root"})
		rel := func(typ, id string) map[string]any {
			return map[string]any{"body": "x", "m.relates_to": map[string]string{"rel_type": typ, "event_id": id}}
		}
		r1 := send(t, rs, roomID, bob, "m.room.message", nil, rel("m.thread", root.EventID))
		r2 := send(t, rs, roomID, alice, "m.room.message", nil, rel("m.thread", root.EventID))
		o1 := send(t, rs, roomID, alice, "m.room.message", nil, rel("m.thread", other.EventID))
		edit := send(t, rs, roomID, alice, "m.room.message", nil, rel("m.replace", root.EventID))
		send(t, rs, roomID, bob, "m.room.message", nil, rel("m.replace", other.EventID)) // not the sender: invalid edit
		ref := send(t, rs, roomID, bob, "m.room.message", nil, rel("m.reference", root.EventID))
		send(t, rs, roomID, bob, "m.reaction", nil, map[string]any{"m.relates_to": map[string]string{"rel_type": "m.annotation", "event_id": root.EventID, "key": "👍"}})

		all, err := rs.RelatedEvents(ctx(), api.RelationsRequest{RoomID: roomID, EventID: root.EventID, Limit: 10})
		if err != nil || len(all) != 5 || all[len(all)-1].EventID != r1.EventID {
			t.Fatalf("all relations of root, newest first: %d %v", len(all), err)
		}
		threads, err := rs.RelatedEvents(ctx(), api.RelationsRequest{RoomID: roomID, EventID: root.EventID, RelType: "m.thread", Dir: api.Forward, Limit: 10})
		if err != nil || len(threads) != 2 || threads[0].EventID != r1.EventID || threads[1].EventID != r2.EventID {
			t.Fatalf("thread replies, oldest first: %v %v", threads, err)
		}
		page, err := rs.RelatedEvents(ctx(), api.RelationsRequest{RoomID: roomID, EventID: root.EventID, RelType: "m.thread", Dir: api.Forward, From: threads[0].StreamPos, Limit: 10})
		if err != nil || len(page) != 1 || page[0].EventID != r2.EventID {
			t.Fatalf("second page: %v %v", page, err)
		}

		aggs, err := rs.Aggregations(ctx(), bob, []string{root.EventID, other.EventID})
		if err != nil {
			t.Fatal(err)
		}
		a := aggs[root.EventID]
		if a.Thread == nil || a.Thread.Count != 2 || a.Thread.Latest.EventID != r2.EventID || !a.Thread.CurrentUserParticipated {
			t.Fatalf("root's thread summary: %+v", a.Thread)
		}
		if a.Replace == nil || a.Replace.EventID != edit.EventID {
			t.Fatalf("root's edit: %+v", a.Replace)
		}
		if len(a.References) != 1 || a.References[0] != ref.EventID {
			t.Fatalf("root's references: %v", a.References)
		}
		if o := aggs[other.EventID]; o.Replace != nil || o.Thread == nil || o.Thread.CurrentUserParticipated {
			t.Fatalf("other root: an edit by someone else must not count, and bob took no part: %+v", o)
		}

		roots, pos, err := rs.Threads(ctx(), roomID, "", 0, 10)
		if err != nil || len(roots) != 2 || roots[0].EventID != other.EventID || roots[1].EventID != root.EventID {
			t.Fatalf("threads, most recently active first: %v %v", roots, err)
		}
		if pos[0] != o1.StreamPos {
			t.Fatalf("thread paging key must be the latest reply: %d vs %d", pos[0], o1.StreamPos)
		}
		mine, _, err := rs.Threads(ctx(), roomID, bob, 0, 10)
		if err != nil || len(mine) != 1 || mine[0].EventID != root.EventID {
			t.Fatalf("threads bob took part in: %v %v", mine, err)
		}
		next, _, err := rs.Threads(ctx(), roomID, "", pos[0], 10)
		if err != nil || len(next) != 1 || next[0].EventID != root.EventID {
			t.Fatalf("threads after the first: %v %v", next, err)
		}
	})
}

func TestEventNearTimestamp(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *storage.DB) {
		rs := newRoomserver(t, db, bustest.Embedded(t), testKey(t))
		roomID := publicRoom(t, rs, "12")
		a := send(t, rs, roomID, alice, "m.room.message", nil, map[string]string{"body": "a"})
		pa, _ := a.PDU()
		ts := int64(pa.OriginServerTS())
		got, err := rs.EventNearTimestamp(ctx(), roomID, ts, api.Backward)
		if err != nil || got.EventID != a.EventID {
			t.Fatalf("backward from the event's own ts: %v %v", got.EventID, err)
		}
		if _, err := rs.EventNearTimestamp(ctx(), roomID, ts+60_000, api.Forward); err == nil {
			t.Fatalf("forward from the future must find nothing")
		}
		first, err := rs.EventNearTimestamp(ctx(), roomID, 0, api.Forward)
		if err != nil || first.EventID == a.EventID {
			t.Fatalf("forward from 0 must find the create event: %v %v", first.EventID, err)
		}
	})
}

func TestStrippedStateOfInvites(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *storage.DB) {
		b := bustest.Embedded(t)
		rs := newRoomserver(t, db, b, testKey(t))
		roomID := publicRoom(t, rs, "12")
		invite := send(t, rs, roomID, alice, "m.room.member", sk(bob), map[string]string{"membership": "invite"})

		st, err := rs.StrippedState(ctx(), roomID)
		if err != nil || len(st) < 3 {
			t.Fatalf("stripped state: %d events, %v", len(st), err)
		}
		var create, other map[string]any
		_ = json.Unmarshal(st[0], &create)
		_ = json.Unmarshal(st[1], &other)
		if create["type"] != "m.room.create" || create["signatures"] == nil || create["hashes"] == nil {
			t.Fatalf("the create event must come first and in full: %s", st[0])
		}
		if other["signatures"] != nil || other["sender"] == nil || other["content"] == nil {
			t.Fatalf("other events must be stripped: %s", st[1])
		}

		// The invite's output event carries the same.
		got := make(chan api.OutputEvent, 100)
		stop, err := b.Consume(ctx(), bus.StreamRoomserverOutput, "stripped", "", func(_ context.Context, m bus.Message) error {
			var out api.OutputEvent
			if err := m.Decode(&out); err != nil {
				return err
			}
			got <- out
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case out := <-got:
				if out.Event.EventID != invite.EventID {
					if len(out.StrippedState) != 0 {
						t.Fatalf("stripped state on an event that is no invite: %s", out.Event.JSON)
					}
					continue
				}
				if len(out.StrippedState) != len(st) {
					t.Fatalf("invite output event: %d stripped events, want %d", len(out.StrippedState), len(st))
				}
				return
			case <-deadline:
				t.Fatal("the invite never reached the bus")
			}
		}
	})
}
