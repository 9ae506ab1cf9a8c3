package appservices

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/matrix-gouv/homeserver/config"
	rsapi "github.com/matrix-gouv/homeserver/roomserver/api"
)

// fakeRooms is a RoomReader over fixed state.
type fakeRooms struct {
	state   map[string][]rsapi.Event
	aliases map[string][]string
	joined  map[string][]string
}

func (f fakeRooms) CurrentState(_ context.Context, roomID string) ([]rsapi.Event, error) {
	return f.state[roomID], nil
}

func (f fakeRooms) AliasesOf(_ context.Context, roomID string) ([]string, error) {
	return f.aliases[roomID], nil
}

func (f fakeRooms) RoomsOf(_ context.Context, userID, _ string) ([]string, error) {
	return f.joined[userID], nil
}

func memberEvent(t *testing.T, roomID, userID, membership string) rsapi.Event {
	t.Helper()
	raw, _ := json.Marshal(map[string]any{"type": "m.room.member", "state_key": userID, "sender": userID, "room_id": roomID,
		"content": map[string]string{"membership": membership}})
	return rsapi.Event{EventID: "$" + userID + membership, RoomID: roomID, JSON: raw}
}

func testRegistration(t *testing.T) *config.AppService {
	t.Helper()
	dir := t.TempDir()
	reg := `id: tg
url: http://127.0.0.1:1
as_token: a
hs_token: h
sender_localpart: tgbot
namespaces:
  users: [{exclusive: true, regex: '@tg_.*:example\.org'}]
  aliases: [{exclusive: true, regex: '#tg_.*:example\.org'}]
  rooms: [{exclusive: false, regex: '!bridged:example\.org'}]
`
	if err := os.WriteFile(filepath.Join(dir, "tg.yaml"), []byte(reg), 0o600); err != nil {
		t.Fatal(err)
	}
	as, err := config.ParseAppService(filepath.Join(dir, "tg.yaml"), "example.org")
	if err != nil {
		t.Fatal(err)
	}
	return as
}

func TestInterest(t *testing.T) {
	ctx := context.Background()
	rooms := fakeRooms{
		state: map[string][]rsapi.Event{
			"!withbob:example.org": {memberEvent(t, "!withbob:example.org", "@tg_bob:example.org", "join")},
			"!left:example.org":    {memberEvent(t, "!left:example.org", "@tg_bob:example.org", "leave")},
		},
		aliases: map[string][]string{"!aliased:example.org": {"#tg_chat:example.org"}},
		joined:  map[string][]string{"@alice:example.org": {"!plain:example.org", "!withbob:example.org"}},
	}
	text := func(roomID, sender string) pdu {
		return pdu{Type: "m.room.message", Sender: sender, RoomID: roomID, Content: json.RawMessage(`{"body":"x"}`)}
	}
	tests := []struct {
		name string
		ev   pdu
		want bool
	}{
		{"plain room, plain sender", text("!plain:example.org", "@alice:example.org"), false},
		{"bridge user sends", text("!plain:example.org", "@tg_x:example.org"), true},
		{"bridge bot sends", text("!plain:example.org", "@tgbot:example.org"), true},
		{"bridge user joined", text("!withbob:example.org", "@alice:example.org"), true},
		{"bridge user left", text("!left:example.org", "@alice:example.org"), false},
		{"alias in namespace", text("!aliased:example.org", "@alice:example.org"), true},
		{"room in namespace", text("!bridged:example.org", "@alice:example.org"), true},
	}
	for _, tt := range tests {
		c := newRoomCache(testRegistration(t), rooms)
		if got, err := c.interested(ctx, tt.ev); err != nil || got != tt.want {
			t.Errorf("%s: interested = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}

	// Membership follows the events: an invite of a bridge user interests
	// it (state key), its join makes the room's later events interesting,
	// its leave ends that.
	c := newRoomCache(testRegistration(t), rooms)
	key := "@tg_carol:example.org"
	member := func(m string) pdu {
		return pdu{Type: "m.room.member", Sender: "@alice:example.org", RoomID: "!plain:example.org", StateKey: &key,
			Content: json.RawMessage(`{"membership":"` + m + `"}`)}
	}
	for i, step := range []struct {
		ev   pdu
		want bool
	}{
		{text("!plain:example.org", "@alice:example.org"), false},
		{member("join"), true},
		{text("!plain:example.org", "@alice:example.org"), true},
		{member("leave"), true},
		{text("!plain:example.org", "@alice:example.org"), false},
	} {
		if got, _ := c.interested(ctx, step.ev); got != step.want {
			t.Fatalf("step %d: interested = %v, want %v", i, got, step.want)
		}
	}

	// Presence: its users, and users sharing a room with them.
	c = newRoomCache(testRegistration(t), rooms)
	for user, want := range map[string]bool{"@alice:example.org": true, "@tg_z:example.org": true, "@eve:example.org": false} {
		if got, err := c.userInterested(ctx, user); err != nil || got != want {
			t.Errorf("userInterested(%s) = %v, %v", user, got, err)
		}
	}
}

func TestNextWait(t *testing.T) {
	w := &worker{maxWait: 2 * time.Second}
	var got []time.Duration
	d := time.Duration(0)
	for i := 0; i < 6; i++ {
		d = w.nextWait(d)
		got = append(got, d)
	}
	want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("waits %v, want %v", got, want)
		}
	}
	if (&worker{maxWait: 100 * time.Millisecond}).nextWait(0) != 100*time.Millisecond {
		t.Fatal("a maximum below the first wait is still the maximum")
	}
}

func TestDurableName(t *testing.T) {
	a, b := durableName("my.bridge"), durableName("my_bridge")
	if a == b {
		t.Fatalf("ids that clean up alike share a consumer: %s", a)
	}
	for _, c := range a {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			t.Fatalf("durable name %q holds %q", a, c)
		}
	}
}

func TestClientJSON(t *testing.T) {
	raw := json.RawMessage(`{"type":"m.room.create","sender":"@a:example.org","content":{"room_version":"12"},"state_key":"","origin_server_ts":5,"hashes":{},"signatures":{},"auth_events":[],"prev_events":[],"depth":1}`)
	ev := rsapi.Event{EventID: "$create", RoomID: "!create", JSON: raw}
	p, err := parseEvent(ev)
	if err != nil {
		t.Fatal(err)
	}
	out, err := clientJSON(ev, p)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	_ = json.Unmarshal([]byte(out), &got)
	if got["event_id"] != "$create" || got["room_id"] != "!create" || got["state_key"] != "" || got["origin_server_ts"] != float64(5) || got["hashes"] != nil {
		t.Fatalf("client format %s", out)
	}
}
