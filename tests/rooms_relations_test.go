package tests

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// relatedTo sends a message related to target with relType.
func relatedTo(t *testing.T, c *mautrix.Client, room id.RoomID, relType string, target id.EventID, body string) id.EventID {
	t.Helper()
	content := map[string]any{"msgtype": "m.text", "body": body,
		"m.relates_to": map[string]any{"rel_type": relType, "event_id": target}}
	if relType == "m.replace" {
		content["m.new_content"] = map[string]any{"msgtype": "m.text", "body": body}
	}
	resp, err := c.SendMessageEvent(ctx(), room, event.EventMessage, content)
	if err != nil {
		t.Fatalf("send %s: %v", relType, err)
	}
	return resp.EventID
}

func v1RoomPath(room id.RoomID, parts ...string) string {
	p := "/_matrix/client/v1/rooms/" + url.PathEscape(string(room))
	for _, part := range parts {
		p += "/" + url.PathEscape(part)
	}
	return p
}

func TestRelationsThreadsAndTimestamps(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob, eve := s.Register("alice"), s.Register("bob"), s.Register("eve")
		room := createRoom(t, s, alice, map[string]any{"preset": "public_chat"})
		if _, err := bob.JoinRoomByID(ctx(), room); err != nil {
			t.Fatal(err)
		}
		before := time.Now().UnixMilli()
		root := sendText(t, alice, room, "root")
		r1 := relatedTo(t, bob, room, "m.thread", root, "reply 1")
		r2 := relatedTo(t, alice, room, "m.thread", root, "reply 2")
		edit := relatedTo(t, alice, room, "m.replace", root, "root, edited")
		relatedTo(t, bob, room, "m.reference", root, "see above")

		// /relations: all, by type, paged.
		all := s.Do("GET", v1RoomPath(room, "relations", string(root)), bob.AccessToken, nil).Expect(t, 200, "")
		if n := len(all.Body["chunk"].([]any)); n != 4 {
			t.Fatalf("relations of root: %d, want 4: %s", n, all.Raw)
		}
		page := s.Do("GET", v1RoomPath(room, "relations", string(root), "m.thread")+"?limit=1&dir=f", bob.AccessToken, nil).Expect(t, 200, "")
		chunk := page.Body["chunk"].([]any)
		next, _ := page.Body["next_batch"].(string)
		if len(chunk) != 1 || chunk[0].(map[string]any)["event_id"] != string(r1) || next == "" {
			t.Fatalf("first thread page: %s", page.Raw)
		}
		page = s.Do("GET", v1RoomPath(room, "relations", string(root), "m.thread")+"?limit=1&dir=f&from="+next, bob.AccessToken, nil).Expect(t, 200, "")
		if c := page.Body["chunk"].([]any); len(c) != 1 || c[0].(map[string]any)["event_id"] != string(r2) {
			t.Fatalf("second thread page: %s", page.Raw)
		}
		byType := s.Do("GET", v1RoomPath(room, "relations", string(root), "m.thread", "m.room.message"), bob.AccessToken, nil).Expect(t, 200, "")
		if n := len(byType.Body["chunk"].([]any)); n != 2 {
			t.Fatalf("thread replies of type m.room.message: %d", n)
		}

		// Aggregations in unsigned.m.relations of the root.
		ev := s.Do("GET", roomPath(room, "event", string(root)), bob.AccessToken, nil).Expect(t, 200, "")
		rels, _ := ev.Body["unsigned"].(map[string]any)["m.relations"].(map[string]any)
		thread, _ := rels["m.thread"].(map[string]any)
		if thread == nil || thread["count"] != float64(2) || thread["current_user_participated"] != true ||
			thread["latest_event"].(map[string]any)["event_id"] != string(r2) {
			t.Fatalf("thread aggregation: %s", ev.Raw)
		}
		if rep, _ := rels["m.replace"].(map[string]any); rep == nil || rep["event_id"] != string(edit) {
			t.Fatalf("edit aggregation: %s", ev.Raw)
		}
		if ref, _ := rels["m.reference"].(map[string]any); ref == nil || len(ref["chunk"].([]any)) != 1 {
			t.Fatalf("reference aggregation: %s", ev.Raw)
		}
		if _, ok := rels["m.annotation"]; ok {
			t.Fatalf("reactions are not aggregated: %s", ev.Raw)
		}

		// /threads.
		other := sendText(t, bob, room, "another root")
		relatedTo(t, bob, room, "m.thread", other, "bob's thread")
		threads := s.Do("GET", v1RoomPath(room, "threads"), alice.AccessToken, nil).Expect(t, 200, "")
		list := threads.Body["chunk"].([]any)
		if len(list) != 2 || list[0].(map[string]any)["event_id"] != string(other) {
			t.Fatalf("threads, most recently active first: %s", threads.Raw)
		}
		mine := s.Do("GET", v1RoomPath(room, "threads")+"?include=participated", alice.AccessToken, nil).Expect(t, 200, "")
		if l := mine.Body["chunk"].([]any); len(l) != 1 || l[0].(map[string]any)["event_id"] != string(root) {
			t.Fatalf("threads alice took part in: %s", mine.Raw)
		}

		// /timestamp_to_event.
		found := s.Do("GET", v1RoomPath(room, "timestamp_to_event")+fmt.Sprintf("?ts=%d&dir=f", before), bob.AccessToken, nil).Expect(t, 200, "")
		if found.Body["event_id"] != string(root) {
			t.Fatalf("first event after %d: %s", before, found.Raw)
		}
		s.Do("GET", v1RoomPath(room, "timestamp_to_event")+fmt.Sprintf("?ts=%d&dir=f", time.Now().Add(time.Hour).UnixMilli()), bob.AccessToken, nil).Expect(t, 404, "M_NOT_FOUND")
		s.Do("GET", v1RoomPath(room, "timestamp_to_event")+"?ts=1", bob.AccessToken, nil).Expect(t, 400, "M_INVALID_PARAM")

		// Non-members see none of it.
		s.Do("GET", v1RoomPath(room, "relations", string(root)), eve.AccessToken, nil).Expect(t, 403, "M_FORBIDDEN")
		s.Do("GET", v1RoomPath(room, "threads"), eve.AccessToken, nil).Expect(t, 403, "M_FORBIDDEN")
		s.Do("GET", v1RoomPath(room, "timestamp_to_event")+"?ts=1&dir=f", eve.AccessToken, nil).Expect(t, 403, "M_FORBIDDEN")
		s.Do("GET", v1RoomPath(room, "relations", "$nope"), bob.AccessToken, nil).Expect(t, 404, "M_NOT_FOUND")
	})
}
