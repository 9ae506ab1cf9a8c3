package tests

import (
	"fmt"
	"net/url"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// searchResp is the room_events part of a /search answer.
type searchResp struct {
	ids       []string
	bodies    []string
	nextBatch string
	body      map[string]any
}

// searchRooms runs POST /search for c with the room_events criteria crit.
func searchRooms(t testing.TB, s *Server, c *mautrix.Client, crit map[string]any, nextBatch string) searchResp {
	t.Helper()
	path := "/_matrix/client/v3/search"
	if nextBatch != "" {
		path += "?next_batch=" + url.QueryEscape(nextBatch)
	}
	r := s.Do("POST", path, c.AccessToken, map[string]any{"search_categories": map[string]any{"room_events": crit}}).Expect(t, 200, "")
	re := r.Body["search_categories"].(map[string]any)["room_events"].(map[string]any)
	out := searchResp{body: re}
	out.nextBatch, _ = re["next_batch"].(string)
	for _, res := range re["results"].([]any) {
		ev := res.(map[string]any)["result"].(map[string]any)
		out.ids = append(out.ids, ev["event_id"].(string))
		body, _ := ev["content"].(map[string]any)["body"].(string)
		out.bodies = append(out.bodies, body)
	}
	return out
}

func TestSearchRoomEvents(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob := s.Register("alice"), s.Register("bob")
		room := createRoom(t, s, alice, map[string]any{"preset": "public_chat", "name": "Fox den"})
		other := createRoom(t, s, alice, map[string]any{"preset": "private_chat"})
		if _, err := bob.JoinRoomByID(ctx(), room); err != nil {
			t.Fatal(err)
		}
		sendText(t, alice, room, "the quick brown fox")
		sendText(t, alice, room, "a lazy dog")
		redacted := sendText(t, alice, room, "fox to be redacted")
		sendText(t, alice, other, "a fox in a room bob never joined")
		// Encrypted events are never searchable.
		if _, err := alice.SendMessageEvent(ctx(), room, event.EventEncrypted, map[string]any{
			"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "fox", "body": "fox", "sender_key": "k", "session_id": "s", "device_id": "D",
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.RedactEvent(ctx(), room, redacted); err != nil {
			t.Fatal(err)
		}
		// The indexer takes the room's events in order: once a message
		// sent after the redaction is found, everything before is in.
		sendText(t, alice, room, "zebra marker")
		waitUntil(t, "everything indexed", func() bool {
			return len(searchRooms(t, s, bob, map[string]any{"search_term": "zebra"}, "").ids) > 0
		})
		for _, order := range []string{"rank", "recent"} {
			r := searchRooms(t, s, bob, map[string]any{"search_term": "FOX", "order_by": order, "keys": []string{"content.body"}}, "")
			if len(r.bodies) != 1 || r.bodies[0] != "the quick brown fox" {
				t.Fatalf("%s: found %q", order, r.bodies)
			}
		}
		// Keys: the room's name.
		r := searchRooms(t, s, bob, map[string]any{"search_term": "den", "keys": []string{"content.name"}}, "")
		if len(r.ids) != 1 || r.body["count"].(float64) != 1 {
			t.Fatalf("name search: %v", r.body)
		}
		if r := searchRooms(t, s, bob, map[string]any{"search_term": "den", "keys": []string{"content.body"}}, ""); len(r.ids) != 0 {
			t.Fatalf("body search found the name: %v", r.body)
		}

		// Bob leaves: what alice says afterwards is not his to find.
		if _, err := bob.LeaveRoom(ctx(), room); err != nil {
			t.Fatal(err)
		}
		sendText(t, alice, room, "fox after bob left")
		waitUntil(t, "alice finds the new fox", func() bool {
			return len(searchRooms(t, s, alice, map[string]any{"search_term": "fox", "order_by": "recent", "keys": []string{"content.body"}}, "").ids) == 3
		})
		r = searchRooms(t, s, bob, map[string]any{"search_term": "fox", "order_by": "recent", "keys": []string{"content.body"}}, "")
		if len(r.bodies) != 1 || r.bodies[0] != "the quick brown fox" {
			t.Fatalf("bob after leaving found %q", r.bodies)
		}

		// Context, profiles, state and groupings.
		r = searchRooms(t, s, alice, map[string]any{"search_term": "lazy", "include_state": true,
			"event_context": map[string]any{"before_limit": 1, "after_limit": 1, "include_profile": true},
			"groupings":     map[string]any{"group_by": []map[string]any{{"key": "room_id"}, {"key": "sender"}}}}, "")
		if len(r.ids) != 1 {
			t.Fatalf("lazy: %v", r.body)
		}
		res := r.body["results"].([]any)[0].(map[string]any)
		cx := res["context"].(map[string]any)
		before, after := cx["events_before"].([]any), cx["events_after"].([]any)
		if len(before) != 1 || len(after) != 1 || before[0].(map[string]any)["content"].(map[string]any)["body"] != "the quick brown fox" {
			t.Fatalf("context: %v", cx)
		}
		if p := cx["profile_info"].(map[string]any)[alice.UserID.String()].(map[string]any); p["displayname"] != "alice" {
			t.Fatalf("profile_info: %v", cx["profile_info"])
		}
		if st := r.body["state"].(map[string]any)[room.String()].([]any); len(st) == 0 {
			t.Fatal("no state")
		}
		groups := r.body["groups"].(map[string]any)
		if g := groups["room_id"].(map[string]any)[room.String()].(map[string]any); len(g["results"].([]any)) != 1 {
			t.Fatalf("groups: %v", groups)
		}
		if _, ok := groups["sender"].(map[string]any)[alice.UserID.String()]; !ok {
			t.Fatalf("groups: %v", groups)
		}

		// Bad input.
		s.Do("POST", "/_matrix/client/v3/search", alice.AccessToken, map[string]any{"search_categories": map[string]any{"room_events": map[string]any{}}}).Expect(t, 400, "M_MISSING_PARAM")
		s.Do("POST", "/_matrix/client/v3/search", alice.AccessToken, map[string]any{"search_categories": map[string]any{"room_events": map[string]any{"search_term": "x", "keys": []string{"content.url"}}}}).Expect(t, 400, "M_INVALID_PARAM")
		s.Do("POST", "/_matrix/client/v3/search", alice.AccessToken, map[string]any{"search_categories": map[string]any{"room_events": map[string]any{"search_term": "x", "order_by": "size"}}}).Expect(t, 400, "M_INVALID_PARAM")
		s.Do("POST", "/_matrix/client/v3/search?next_batch=zzz", alice.AccessToken, map[string]any{"search_categories": map[string]any{"room_events": map[string]any{"search_term": "x"}}}).Expect(t, 400, "M_INVALID_PARAM")
	})
}

func TestSearchPaging(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		room := createRoom(t, s, alice, map[string]any{"preset": "private_chat"})
		var want []string
		for i := 0; i < 12; i++ {
			body := fmt.Sprintf("paging message %d", i)
			sendText(t, alice, room, body)
			want = append([]string{body}, want...)
		}
		waitUntil(t, "all indexed", func() bool {
			return searchRooms(t, s, alice, map[string]any{"search_term": "paging"}, "").body["count"].(float64) == 12
		})
		for _, order := range []string{"recent", "rank"} {
			var got []string
			seen := map[string]bool{}
			next := ""
			for page := 0; ; page++ {
				r := searchRooms(t, s, alice, map[string]any{"search_term": "paging message", "order_by": order, "filter": map[string]any{"limit": 5}}, next)
				if len(r.ids) > 5 || page > 4 {
					t.Fatalf("%s: page %d has %d results", order, page, len(r.ids))
				}
				for i, id := range r.ids {
					if seen[id] {
						t.Fatalf("%s: %s twice", order, id)
					}
					seen[id] = true
					got = append(got, r.bodies[i])
				}
				if next = r.nextBatch; next == "" {
					break
				}
			}
			if len(got) != 12 || (order == "recent" && !sameList(got, want)) {
				t.Fatalf("%s: got %q", order, got)
			}
		}
		// Filters: senders and rooms.
		if r := searchRooms(t, s, alice, map[string]any{"search_term": "paging", "filter": map[string]any{"senders": []string{"@bob:test.local"}}}, ""); len(r.ids) != 0 {
			t.Fatalf("senders filter: %v", r.body)
		}
		if r := searchRooms(t, s, alice, map[string]any{"search_term": "paging", "filter": map[string]any{"not_rooms": []id.RoomID{room}}}, ""); len(r.ids) != 0 {
			t.Fatalf("not_rooms filter: %v", r.body)
		}
	})
}
