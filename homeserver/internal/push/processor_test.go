package push

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/bus/bustest"
	dbstorage "github.com/matrix-gouv/homeserver/internal/storage"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
	"github.com/matrix-gouv/homeserver/roomserver"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// The Processor is tested on a real roomserver (the room state it reads)
// and a real database, both engines.

const testServer = "test.local"

func user(name string) string { return "@" + name + ":" + testServer }

func raw(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

func sk(s string) *string { return &s }

// ignoreList is an IgnoredUsers of fixed lists.
type ignoreList map[string]map[string]bool

func (l ignoreList) IgnoredUsers(_ context.Context, userID string) (map[string]bool, error) {
	return l[userID], nil
}

type fixture struct {
	rs    *roomserver.Component
	store *storage.Store
	proc  *Processor
	room  string
}

// newFixture makes a public room created by user "u0" and joined by
// users u1..u(n-1), plus a remote user, with display names "User i".
func newFixture(t testing.TB, db *dbstorage.DB, n int, ignored ignoreList) *fixture {
	t.Helper()
	ctx := context.Background()
	key, err := config.NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	global := &config.Global{ServerName: testServer, SigningKey: key.String()}
	rs, err := roomserver.New(roomserver.Deps{Global: global, DB: db, Bus: bustest.Embedded(t), Log: logrus.NewEntry(log)})
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.Stop(ctx) })
	creator := user("u0")
	room, _, err := rs.CreateRoom(ctx, rsapi.CreateRoomRequest{RoomVersion: "11", Creator: creator, CreateContent: raw(map[string]any{}),
		Events: []rsapi.ProtoEvent{
			{Type: "m.room.member", StateKey: sk(creator), Sender: creator, Content: raw(map[string]string{"membership": "join", "displayname": "User 0"})},
			{Type: "m.room.power_levels", StateKey: sk(""), Sender: creator, Content: raw(map[string]any{"users": map[string]int{creator: 100}})},
			{Type: "m.room.join_rules", StateKey: sk(""), Sender: creator, Content: raw(map[string]string{"join_rule": "public"})},
		}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < n; i++ {
		u := user(fmt.Sprintf("u%d", i))
		if _, err := rs.Send(ctx, room, rsapi.ProtoEvent{Type: "m.room.member", StateKey: sk(u), Sender: u,
			Content: raw(map[string]string{"membership": "join", "displayname": fmt.Sprintf("User %d", i)})}); err != nil {
			t.Fatal(err)
		}
	}
	store := storage.New(db)
	var ig IgnoredUsers
	if ignored != nil {
		ig = ignored
	}
	svc, err := New(Deps{Global: global, Config: &config.Push{}, Store: store, Rooms: rs, Ignored: ig, Log: logrus.NewEntry(log)})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{rs: rs, store: store, proc: svc.Processor(), room: room}
}

func (f *fixture) send(t testing.TB, sender string, typ string, stateKey *string, content any) rsapi.Event {
	t.Helper()
	ev, err := f.rs.Send(context.Background(), f.room, rsapi.ProtoEvent{Type: typ, StateKey: stateKey, Sender: sender, Content: raw(content)})
	if err != nil {
		t.Fatalf("send %s: %v", typ, err)
	}
	return ev
}

// process has the Processor process ev as the roomserver outputs it: a
// state event with itself in StateAdded.
func (f *fixture) process(t testing.TB, ev rsapi.Event, softFailed bool) {
	t.Helper()
	out := rsapi.OutputEvent{Event: ev, SoftFailed: softFailed}
	var pdu struct {
		StateKey *string `json:"state_key"`
	}
	if err := json.Unmarshal(ev.JSON, &pdu); err != nil {
		t.Fatal(err)
	}
	if pdu.StateKey != nil && !softFailed {
		out.StateAdded = []string{ev.EventID}
	}
	if err := f.proc.ProcessEvent(context.Background(), out); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) counts(t testing.TB, userID string) (storage.Counts, map[string]storage.Counts) {
	t.Helper()
	total, per, err := f.store.UnreadCounts(context.Background(), userID, f.room, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	return total, per
}

func TestProcessEvent(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *dbstorage.DB) {
		u0, u1, u2, u3 := user("u0"), user("u1"), user("u2"), user("u3")
		f := newFixture(t, db, 3, ignoreList{u2: {u1: true}})

		// u1 speaks: u0 is notified; u1 (the sender) is not; u2 ignores u1.
		msg := f.send(t, u1, "m.room.message", nil, map[string]any{"msgtype": "m.text", "body": "hello"})
		f.process(t, msg, false)
		f.process(t, msg, false) // replayed: counted once
		for _, tc := range []struct {
			user string
			want storage.Counts
		}{{u0, cnt(1, 0)}, {u1, storage.Counts{}}, {u2, storage.Counts{}}} {
			if got, _ := f.counts(t, tc.user); got != tc.want {
				t.Errorf("%s after a message: %+v, want %+v", tc.user, got, tc.want)
			}
		}
		// A soft-failed event counts for nobody.
		f.process(t, f.send(t, u0, "m.room.message", nil, map[string]any{"body": "soft"}), true)
		if got, _ := f.counts(t, u1); got != (storage.Counts{}) {
			t.Errorf("soft-failed event counted: %+v", got)
		}

		// A display name mention without m.mentions highlights u2 (the
		// deprecated rule); a thread reply counts in its thread.
		f.process(t, f.send(t, u0, "m.room.message", nil, map[string]any{"body": "hey User 2!"}), false)
		f.process(t, f.send(t, u0, "m.room.message", nil, map[string]any{"body": "in thread",
			"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": msg.EventID}}), false)
		total, per := f.counts(t, u2)
		if total != (cnt(2, 1)) || per["main"] != (cnt(1, 1)) || per[msg.EventID] != (cnt(1, 0)) {
			t.Errorf("u2: %+v %+v", total, per)
		}

		// @room by the creator (power 100) highlights everyone; by u1
		// (power 0) it does not.
		f.process(t, f.send(t, u0, "m.room.message", nil, map[string]any{"body": "all", "m.mentions": map[string]any{"room": true}}), false)
		f.process(t, f.send(t, u1, "m.room.message", nil, map[string]any{"body": "all", "m.mentions": map[string]any{"room": true}}), false)
		if total, _ := f.counts(t, u1); total != (cnt(3, 1)) {
			t.Errorf("u1 after room mentions: %+v", total)
		}

		// An invite notifies the invitee, who is not joined; a remote
		// invitee is not this server's to notify.
		f.process(t, f.send(t, u0, "m.room.member", sk(u3), map[string]string{"membership": "invite"}), false)
		if total, _ := f.counts(t, u3); total != (cnt(1, 0)) {
			t.Errorf("invitee: %+v", total)
		}
		f.process(t, f.send(t, u0, "m.room.member", sk("@x:elsewhere.example"), map[string]string{"membership": "invite"}), false)

		// The member list follows state: u3 joins and is notified next.
		f.process(t, f.send(t, u3, "m.room.member", sk(u3), map[string]string{"membership": "join"}), false)
		f.process(t, f.send(t, u1, "m.room.message", nil, map[string]any{"body": "welcome"}), false)
		if total, _ := f.counts(t, u3); total != (cnt(2, 0)) {
			t.Errorf("u3 after joining: %+v", total)
		}
		// A new display name is the one mentions match (the member list
		// is updated in place from the member event).
		f.process(t, f.send(t, u2, "m.room.member", sk(u2), map[string]string{"membership": "join", "displayname": "Zed"}), false)
		before2, _ := f.counts(t, u2)
		f.process(t, f.send(t, u0, "m.room.message", nil, map[string]any{"body": "ping zed"}), false)
		if after2, _ := f.counts(t, u2); after2.Highlights != before2.Highlights+1 {
			t.Errorf("new display name not highlighted: %+v -> %+v", before2, after2)
		}
		// u3 leaves: no longer notified; the room is a 1:1 again for the rest.
		f.process(t, f.send(t, u3, "m.room.member", sk(u3), map[string]string{"membership": "leave"}), false)
		before3, _ := f.counts(t, u3)
		f.process(t, f.send(t, u1, "m.room.message", nil, map[string]any{"body": "bye"}), false)
		if after3, _ := f.counts(t, u3); after3 != before3 {
			t.Errorf("a member who left was notified: %+v -> %+v", before3, after3)
		}
		// The member list kept up to date in place is the one the state
		// gives.
		f.proc.mu.Lock()
		cached := f.proc.roomCache[f.room]
		f.proc.mu.Unlock()
		fresh, err := f.proc.loadRoom(context.Background(), f.room)
		if err != nil {
			t.Fatal(err)
		}
		sortedLocal := func(ri *roomInfo) []string { l := append([]string(nil), ri.local...); sort.Strings(l); return l }
		if cached == nil || !reflect.DeepEqual(cached.joinedSet, fresh.joinedSet) || !reflect.DeepEqual(cached.displayNames, fresh.displayNames) ||
			cached.joined != fresh.joined || !reflect.DeepEqual(sortedLocal(cached), sortedLocal(fresh)) {
			t.Errorf("cached room info drifted from state:\n%+v\n%+v", cached, fresh)
		}
		// A user's rules apply: u0 silences the room.
		if err := f.store.PutPushRule(context.Background(), u0, "room", f.room, raw(map[string]any{"actions": []any{}}), "", ""); err != nil {
			t.Fatal(err)
		}
		if err := f.proc.rules.changed(context.Background(), u0); err != nil {
			t.Fatal(err)
		}
		before, _ := f.counts(t, u0)
		f.process(t, f.send(t, u1, "m.room.message", nil, map[string]any{"body": "quiet"}), false)
		if after, _ := f.counts(t, u0); after != before {
			t.Errorf("silenced room counted: %+v -> %+v", before, after)
		}
	})
}

// BenchmarkProcessEvent measures ProcessEvent for a message in a room of
// ten local members (nine to evaluate and record), with warm caches.
func BenchmarkProcessEvent(b *testing.B) {
	for _, engine := range []string{"sqlite", "postgres"} {
		b.Run(engine, func(b *testing.B) {
			var url string
			if engine == "sqlite" {
				url = storagetest.SQLiteURL(b)
			} else {
				url = storagetest.PostgresURL(b)
			}
			f := newFixture(b, storagetest.Open(b, url), 10, nil)
			evs := make([]rsapi.Event, b.N+1)
			for i := range evs {
				evs[i] = f.send(b, user("u1"), "m.room.message", nil, map[string]any{"msgtype": "m.text", "body": fmt.Sprintf("message %d", i)})
			}
			f.process(b, evs[0], false) // warms the caches
			b.ResetTimer()
			for i := 1; i <= b.N; i++ {
				f.process(b, evs[i], false)
			}
		})
	}
}

// cnt is a Counts literal.
func cnt(n, h int) storage.Counts { return storage.Counts{Notifications: n, Highlights: h} }

// BenchmarkProcessEventParts splits ProcessEvent's cost for a message in
// a room of ten local members: the evaluation alone (warm caches), and
// ten events recorded per ProcessEvents call (one commit for ten).
func BenchmarkProcessEventParts(b *testing.B) {
	f := newFixture(b, storagetest.Open(b, storagetest.SQLiteURL(b)), 10, nil)
	evs := make([]rsapi.Event, 10*(b.N+1))
	for i := range evs {
		evs[i] = f.send(b, user("u1"), "m.room.message", nil, map[string]any{"msgtype": "m.text", "body": fmt.Sprintf("message %d", i)})
	}
	f.process(b, evs[0], false)
	b.Run("evaluate", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := f.proc.evaluate(context.Background(), rsapi.OutputEvent{Event: evs[1]}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sqlite-batch10-per-event", func(b *testing.B) {
		n := min(b.N, len(evs)/10-1)
		for i := 1; i <= n; i++ {
			outs := make([]rsapi.OutputEvent, 10)
			for j := range outs {
				outs[j] = rsapi.OutputEvent{Event: evs[i*10+j]}
			}
			if err := f.proc.ProcessEvents(context.Background(), outs); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*10), "ns/event")
	})
}
