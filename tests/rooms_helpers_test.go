package tests

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Helpers of the room API tests (rooms_*_test.go).

// roomPath is the v3 path of a room endpoint, each part path-escaped:
// roomPath(room, "state", "m.room.name", "").
func roomPath(room id.RoomID, parts ...string) string {
	p := "/_matrix/client/v3/rooms/" + url.PathEscape(string(room))
	for _, part := range parts {
		p += "/" + url.PathEscape(part)
	}
	return p
}

// createRoom creates a room through the raw API (so that the request is
// exactly body) and returns its id.
func createRoom(t testing.TB, s *Server, c *mautrix.Client, body map[string]any) id.RoomID {
	t.Helper()
	r := s.Do("POST", "/_matrix/client/v3/createRoom", c.AccessToken, body).Expect(t, 200, "")
	room, _ := r.Body["room_id"].(string)
	if room == "" {
		t.Fatalf("createRoom: no room_id in %s", r.Raw)
	}
	return id.RoomID(room)
}

// stateContent returns the content of a state event as c sees it; it
// fails the test when c may not read it.
func stateContent(t testing.TB, s *Server, c *mautrix.Client, room id.RoomID, typ, key string) map[string]any {
	t.Helper()
	return s.Do("GET", roomPath(room, "state", typ, key), c.AccessToken, nil).Expect(t, 200, "").Body
}

// sendText sends a text message with mautrix and returns its event id.
func sendText(t testing.TB, c *mautrix.Client, room id.RoomID, body string) id.EventID {
	t.Helper()
	resp, err := c.SendText(ctx(), room, body)
	if err != nil {
		t.Fatalf("send %q: %v", body, err)
	}
	return resp.EventID
}

// bodies returns the text bodies of the m.room.message events of evs, in
// order.
func bodies(evs []*event.Event) []string {
	var out []string
	for _, e := range evs {
		if e.Type.Type != "m.room.message" {
			continue
		}
		b, _ := e.Content.Raw["body"].(string)
		out = append(out, b)
	}
	return out
}

// texts returns n message bodies "prefix 1" … "prefix n".
func texts(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s %d", prefix, i+1)
	}
	return out
}

// reversed returns a reversed copy of list.
func reversed(list []string) []string {
	out := make([]string, len(list))
	for i, v := range list {
		out[len(list)-1-i] = v
	}
	return out
}

// sameList reports whether a and b hold the same strings in order.
func sameList(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00") && len(a) == len(b)
}

// jsonNumber reads a JSON number decoded into any (float64) as int64; -1
// when v is not a number.
func jsonNumber(v any) int64 {
	f, ok := v.(float64)
	if !ok {
		return -1
	}
	return int64(f)
}

// allMessages pages through the whole timeline of room as c sees it, in
// direction dir, limit events per page, following end tokens until none
// is given, and returns the message bodies in the order received and the
// number of pages.
func allMessages(t testing.TB, c *mautrix.Client, room id.RoomID, dir mautrix.Direction, limit int) ([]string, int) {
	t.Helper()
	evs, pages := allEvents(t, c, room, dir, limit)
	return bodies(evs), pages
}

// allEvents is allMessages with the events themselves.
func allEvents(t testing.TB, c *mautrix.Client, room id.RoomID, dir mautrix.Direction, limit int) ([]*event.Event, int) {
	t.Helper()
	var got []*event.Event
	from, pages := "", 0
	for {
		resp, err := c.Messages(ctx(), room, from, "", dir, nil, limit)
		if err != nil {
			t.Fatalf("messages from %q: %v", from, err)
		}
		pages++
		if len(resp.Chunk) > limit {
			t.Fatalf("messages: %d events for limit %d", len(resp.Chunk), limit)
		}
		got = append(got, resp.Chunk...)
		if resp.End == "" {
			return got, pages
		}
		if pages > 1000 {
			t.Fatal("messages: paging does not end")
		}
		from = resp.End
	}
}

// rawEvents decodes a JSON list of events of a raw response.
func rawEvents(t testing.TB, v any) []map[string]any {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("not a list of events: %s", raw)
	}
	return out
}
