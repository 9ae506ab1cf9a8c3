package roomserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/internal/bus"
	"github.com/matrix-gouv/homeserver/internal/bus/bustest"
	"github.com/matrix-gouv/homeserver/internal/storage"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
	"github.com/matrix-gouv/homeserver/roomserver"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

const (
	serverName = "test.local"
	alice      = "@alice:test.local"
	bob        = "@bob:test.local"
)

func ctx() context.Context { return context.Background() }

// newRoomserver starts a roomserver on db with an embedded bus.
func newRoomserver(t *testing.T, db *storage.DB, b *bus.Bus, key config.SigningKey) *roomserver.Component {
	return newRoomserverTB(t, db, b, key)
}

func newRoomserverTB(t testing.TB, db *storage.DB, b *bus.Bus, key config.SigningKey) *roomserver.Component {
	t.Helper()
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	rs, err := roomserver.New(roomserver.Deps{
		Global: &config.Global{ServerName: serverName, SigningKey: key.String()},
		DB:     db, Bus: b, Log: logrus.NewEntry(log),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Start(ctx()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.Stop(ctx()) })
	return rs
}

func testKey(t *testing.T) config.SigningKey { return testKeyB(t) }

func testKeyB(t testing.TB) config.SigningKey {
	k, err := config.NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sk(s string) *string { return &s }

func raw(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// powerLevels are power levels giving users their levels, with creators
// left out in room version 12 (the auth rules refuse them there).
func powerLevels(version string, users map[string]int) json.RawMessage {
	u := map[string]int{}
	for id, l := range users {
		if version == "12" && id == alice {
			continue
		}
		u[id] = l
	}
	return raw(map[string]any{"users": u, "users_default": 0, "state_default": 50, "events_default": 0,
		"ban": 50, "kick": 50, "redact": 50, "invite": 0,
		"events": map[string]int{"m.room.power_levels": 100, "m.room.join_rules": 50}})
}

// publicRoom creates a public room of alice's.
func publicRoom(t *testing.T, rs *roomserver.Component, version string, extra ...api.ProtoEvent) string {
	return publicRoomTB(t, rs, version, extra...)
}

func publicRoomTB(t testing.TB, rs *roomserver.Component, version string, extra ...api.ProtoEvent) string {
	t.Helper()
	events := append([]api.ProtoEvent{
		{Type: "m.room.member", StateKey: sk(alice), Sender: alice, Content: raw(map[string]string{"membership": "join"})},
		{Type: "m.room.power_levels", StateKey: sk(""), Sender: alice, Content: powerLevels(version, map[string]int{alice: 100})},
		{Type: "m.room.join_rules", StateKey: sk(""), Sender: alice, Content: raw(map[string]string{"join_rule": "public"})},
		{Type: "m.room.history_visibility", StateKey: sk(""), Sender: alice, Content: raw(map[string]string{"history_visibility": "shared"})},
		{Type: "m.room.name", StateKey: sk(""), Sender: alice, Content: raw(map[string]string{"name": "first"})},
	}, extra...)
	roomID, ids, err := rs.CreateRoom(ctx(), api.CreateRoomRequest{RoomVersion: version, Creator: alice, CreateContent: raw(map[string]any{}), Events: events})
	if err != nil {
		t.Fatalf("create room v%s: %v", version, err)
	}
	if len(ids) != len(events)+1 {
		t.Fatalf("create room: %d event ids for %d events", len(ids), len(events)+1)
	}
	return roomID
}

func send(t *testing.T, rs *roomserver.Component, roomID, sender, typ string, stateKey *string, content any) api.Event {
	t.Helper()
	ev, err := rs.Send(ctx(), roomID, api.ProtoEvent{Type: typ, StateKey: stateKey, Sender: sender, Content: raw(content)})
	if err != nil {
		t.Fatalf("send %s from %s: %v", typ, sender, err)
	}
	return ev
}

func contentOf(t *testing.T, e api.Event) map[string]any {
	t.Helper()
	var ev struct {
		Content map[string]any `json:"content"`
	}
	if err := json.Unmarshal(e.JSON, &ev); err != nil {
		t.Fatal(err)
	}
	return ev.Content
}

var versions = []string{"1", "6", "10", "11", "12"}

func TestCreateSendAndRead(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *storage.DB) {
		rs := newRoomserver(t, db, bustest.Embedded(t), testKey(t))
		for _, v := range versions {
			t.Run("v"+v, func(t *testing.T) {
				roomID := publicRoom(t, rs, v)
				if got, err := rs.RoomVersion(ctx(), roomID); err != nil || got != v {
					t.Fatalf("room version: %q %v", got, err)
				}
				if v == "12" && !strings.HasPrefix(roomID, "!") || v != "12" && !strings.HasSuffix(roomID, ":"+serverName) {
					t.Fatalf("room id %q does not fit version %s", roomID, v)
				}
				msg := send(t, rs, roomID, alice, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": "hello"})
				send(t, rs, roomID, bob, "m.room.member", sk(bob), map[string]string{"membership": "join"})
				name := send(t, rs, roomID, alice, "m.room.name", sk(""), map[string]string{"name": "second"})

				st, err := rs.CurrentState(ctx(), roomID)
				if err != nil || len(st) != 7 { // create, 2 members, PL, JR, HV, name
					t.Fatalf("current state: %d events, %v", len(st), err)
				}
				cur, err := rs.CurrentStateEvent(ctx(), roomID, api.StateKey{Type: "m.room.name"})
				if err != nil || cur.EventID != name.EventID {
					t.Fatalf("current name: %v %v", cur.EventID, err)
				}
				before, err := rs.StateEventsBefore(ctx(), name.EventID, []api.StateKey{{Type: "m.room.name"}})
				if err != nil || len(before) != 1 || contentOf(t, before[0])["name"] != "first" {
					t.Fatalf("name before the rename: %v %v", before, err)
				}
				if m, _, err := rs.Membership(ctx(), roomID, bob); err != nil || m != "join" {
					t.Fatalf("bob's membership: %q %v", m, err)
				}
				rooms, err := rs.RoomsOf(ctx(), bob, "join")
				if err != nil || len(rooms) == 0 || rooms[len(rooms)-1] != roomID {
					t.Fatalf("bob's rooms: %v %v", rooms, err)
				}
				tl, err := rs.Timeline(ctx(), roomID, api.TimelineEnd, api.Backward, 3)
				if err != nil || len(tl) != 3 || tl[0].EventID != name.EventID || tl[2].EventID != msg.EventID {
					t.Fatalf("timeline backward: %v %v", tl, err)
				}
				fwd, err := rs.Timeline(ctx(), roomID, tl[2].StreamPos-1, api.Forward, 10)
				if err != nil || len(fwd) != 3 || fwd[0].EventID != msg.EventID {
					t.Fatalf("timeline forward: %v %v", fwd, err)
				}
				got, err := rs.Event(ctx(), msg.EventID)
				if err != nil || contentOf(t, got)["body"] != "hello" {
					t.Fatalf("event: %v", err)
				}
			})
		}
	})
}

func TestAuthRulesRefuse(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *storage.DB) {
		rs := newRoomserver(t, db, bustest.Embedded(t), testKey(t))
		for _, v := range []string{"10", "12"} {
			t.Run("v"+v, func(t *testing.T) {
				roomID := publicRoom(t, rs, v)
				refused := func(what, sender, typ string, stateKey *string, content any) {
					t.Helper()
					_, err := rs.Send(ctx(), roomID, api.ProtoEvent{Type: typ, StateKey: stateKey, Sender: sender, Content: raw(content)})
					var na *api.NotAllowedError
					if !errors.As(err, &na) {
						t.Fatalf("%s: want NotAllowedError, got %v", what, err)
					}
				}
				refused("non-member message", bob, "m.room.message", nil, map[string]string{"body": "hi"})
				send(t, rs, roomID, bob, "m.room.member", sk(bob), map[string]string{"membership": "join"})
				refused("unprivileged name change", bob, "m.room.name", sk(""), map[string]string{"name": "mine"})
				refused("member event for someone else", bob, "m.room.member", sk(alice), map[string]string{"membership": "leave"})
				send(t, rs, roomID, alice, "m.room.member", sk(bob), map[string]string{"membership": "ban"})
				refused("banned user rejoins", bob, "m.room.member", sk(bob), map[string]string{"membership": "join"})
				if _, err := rs.Send(ctx(), roomID, api.ProtoEvent{Type: "m.room.message", Sender: alice,
					Content: raw(map[string]string{"body": strings.Repeat("x", 70000)})}); !errors.Is(err, api.ErrTooLarge) {
					t.Fatalf("oversized event: want ErrTooLarge, got %v", err)
				}
				if _, err := rs.Send(ctx(), "!nowhere:"+serverName, api.ProtoEvent{Type: "m.room.message", Sender: alice, Content: raw(map[string]any{})}); !errors.Is(err, api.ErrRoomNotFound) {
					t.Fatalf("unknown room: want ErrRoomNotFound, got %v", err)
				}
			})
		}
	})
}

func TestCreateRoomIsAllOrNothing(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *storage.DB) {
		rs := newRoomserver(t, db, bustest.Embedded(t), testKey(t))
		_, _, err := rs.CreateRoom(ctx(), api.CreateRoomRequest{RoomVersion: "10", Creator: alice, Events: []api.ProtoEvent{
			{Type: "m.room.member", StateKey: sk(alice), Sender: alice, Content: raw(map[string]string{"membership": "join"})},
			// bob is not in the room: this one fails, so nothing is kept.
			{Type: "m.room.name", StateKey: sk(""), Sender: bob, Content: raw(map[string]string{"name": "x"})},
		}})
		var na *api.NotAllowedError
		if !errors.As(err, &na) {
			t.Fatalf("want NotAllowedError, got %v", err)
		}
		rooms, err := rs.RoomsOf(ctx(), alice, "join")
		if err != nil || len(rooms) != 0 {
			t.Fatalf("a failed creation left rooms behind: %v %v", rooms, err)
		}
		if _, _, err := rs.CreateRoom(ctx(), api.CreateRoomRequest{RoomVersion: "99", Creator: alice}); !errors.Is(err, api.ErrUnsupportedVersion) {
			t.Fatalf("unknown version: %v", err)
		}
	})
}

func TestRedaction(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *storage.DB) {
		rs := newRoomserver(t, db, bustest.Embedded(t), testKey(t))
		roomID := publicRoom(t, rs, "12")
		send(t, rs, roomID, bob, "m.room.member", sk(bob), map[string]string{"membership": "join"})
		msg := send(t, rs, roomID, bob, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": "oops"})
		// A member without power cannot redact another's event: the
		// redaction is accepted (it is an event) but does not apply.
		other := send(t, rs, roomID, alice, "m.room.message", nil, map[string]string{"body": "keep"})
		red, err := rs.Send(ctx(), roomID, api.ProtoEvent{Type: "m.room.redaction", Sender: bob, Redacts: other.EventID, Content: raw(map[string]any{"redacts": other.EventID})})
		if err != nil {
			t.Fatalf("send redaction: %v", err)
		}
		if got, _ := rs.Event(ctx(), other.EventID); got.RedactedBecause != nil || contentOf(t, got)["body"] != "keep" {
			t.Fatalf("unprivileged redaction applied: %s", got.JSON)
		}
		red, err = rs.Send(ctx(), roomID, api.ProtoEvent{Type: "m.room.redaction", Sender: bob, Redacts: msg.EventID, Content: raw(map[string]any{"redacts": msg.EventID})})
		if err != nil {
			t.Fatalf("send redaction: %v", err)
		}
		got, err := rs.Event(ctx(), msg.EventID)
		if err != nil || got.RedactedBecause == nil || contentOf(t, got)["body"] != nil {
			t.Fatalf("redacted event served: %s (because %s) %v", got.JSON, got.RedactedBecause, err)
		}
		if got.RedactedBy != red.EventID || !strings.Contains(string(got.RedactedBecause), `"m.room.redaction"`) {
			t.Fatalf("redacted_because is not the redaction: %s", got.RedactedBecause)
		}
	})
}

func TestRestartKeepsRoomsAndPublishesInOrder(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *storage.DB) {
		b := bustest.Embedded(t)
		key := testKey(t)
		rs := newRoomserver(t, db, b, key)
		roomID := publicRoom(t, rs, "12")
		var sent []string
		for i := 0; i < 5; i++ {
			sent = append(sent, send(t, rs, roomID, alice, "m.room.message", nil, map[string]int{"n": i}).EventID)
		}
		_ = rs.Stop(ctx())
		// A new roomserver on the same database carries on the same DAG.
		rs2 := newRoomserver(t, db, b, key)
		next := send(t, rs2, roomID, alice, "m.room.message", nil, map[string]int{"n": 5})
		pdu, err := next.PDU()
		if err != nil || len(pdu.PrevEventIDs()) != 1 || pdu.PrevEventIDs()[0] != sent[4] {
			t.Fatalf("after restart the event must follow the last one: %v %v", pdu.PrevEventIDs(), err)
		}
		sent = append(sent, next.EventID)

		// Every event reached the bus, in order.
		var mu sync.Mutex
		var seen []string
		stop, err := b.Consume(ctx(), bus.StreamRoomserverOutput, "test", "", func(_ context.Context, m bus.Message) error {
			var out api.OutputEvent
			if err := m.Decode(&out); err != nil {
				return err
			}
			mu.Lock()
			seen = append(seen, out.Event.EventID)
			mu.Unlock()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			n := len(seen)
			mu.Unlock()
			if n >= 6+len(sent) || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		tail := seen[len(seen)-len(sent):]
		for i := range sent {
			if tail[i] != sent[i] {
				t.Fatalf("published out of order or missing: got %v, want tail %v", seen, sent)
			}
		}
	})
}

// TestIdenticalCreatesMakeDistinctRooms: a v12 room id is its create
// event's hash, so identical concurrent requests must still get rooms of
// their own.
func TestIdenticalCreatesMakeDistinctRooms(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *storage.DB) {
		rs := newRoomserver(t, db, bustest.Embedded(t), testKey(t))
		const n = 20
		ids := make(chan string, n)
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id, _, err := rs.CreateRoom(ctx(), api.CreateRoomRequest{RoomVersion: "12", Creator: alice, Events: []api.ProtoEvent{
					{Type: "m.room.member", StateKey: sk(alice), Sender: alice, Content: raw(map[string]string{"membership": "join"})},
				}})
				if err != nil {
					t.Errorf("create: %v", err)
				}
				ids <- id
			}()
		}
		wg.Wait()
		close(ids)
		seen := map[string]bool{}
		for id := range ids {
			if seen[id] {
				t.Fatalf("room %s created twice", id)
			}
			seen[id] = true
		}
	})
}
