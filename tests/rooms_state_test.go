package tests

import (
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
)

// TestStateEvents sets and reads state: empty state keys with and without
// the trailing slash, ?format=event, /state, /members with its filters,
// the same state twice, and the refusals (no power, another user's state
// key).
func TestStateEvents(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob := s.Register("alice"), s.Register("bob")
		for _, version := range []string{"10", "11", "12"} {
			t.Run("v"+version, func(t *testing.T) {
				room := createRoom(t, s, alice, map[string]any{"preset": "public_chat", "room_version": version})
				if _, err := bob.JoinRoomByID(ctx(), room); err != nil {
					t.Fatal(err)
				}
				tok := alice.AccessToken
				withSlash := s.Do("PUT", roomPath(room, "state", "m.room.name", ""), tok, map[string]any{"name": "one"}).Expect(t, 200, "")
				without := s.Do("PUT", roomPath(room, "state", "m.room.name"), tok, map[string]any{"name": "two"}).Expect(t, 200, "")
				if withSlash.Body["event_id"] == without.Body["event_id"] {
					t.Fatal("two names, one event")
				}
				// The same state again is the same event.
				again := s.Do("PUT", roomPath(room, "state", "m.room.name"), tok, map[string]any{"name": "two"}).Expect(t, 200, "")
				if again.Body["event_id"] != without.Body["event_id"] {
					t.Errorf("unchanged state sent a new event")
				}
				if got := s.Do("GET", roomPath(room, "state", "m.room.name"), tok, nil).Expect(t, 200, "").Body["name"]; got != "two" {
					t.Errorf("name without slash = %v", got)
				}
				full := s.Do("GET", roomPath(room, "state", "m.room.name", "")+"?format=event", tok, nil).Expect(t, 200, "")
				if full.Body["event_id"] != without.Body["event_id"] || full.Body["state_key"] != "" || full.Body["type"] != "m.room.name" {
					t.Errorf("format=event: %s", full.Raw)
				}
				s.Do("GET", roomPath(room, "state", "m.room.avatar", ""), tok, nil).Expect(t, 404, "M_NOT_FOUND")

				// State keys with characters that need escaping.
				s.Do("PUT", roomPath(room, "state", "com.example.doc", "a/b c"), tok, map[string]any{"v": 1}).Expect(t, 200, "")
				if got := stateContent(t, s, alice, room, "com.example.doc", "a/b c")["v"]; jsonNumber(got) != 1 {
					t.Errorf("escaped state key: %v", got)
				}

				// bob has no power to rename the room.
				if _, err := bob.SendStateEvent(ctx(), room, event.StateRoomName, "", map[string]any{"name": "bob's"}); errcode(err) != "M_FORBIDDEN" {
					t.Fatalf("state without power: want M_FORBIDDEN, got %v", err)
				}
				// A state key naming another user is that user's to set.
				s.Do("PUT", roomPath(room, "state", "com.example.status", bob.UserID.String()), tok, map[string]any{}).Expect(t, 403, "M_FORBIDDEN")
				s.Do("PUT", roomPath(room, "state", "m.room.member", bob.UserID.String()), tok, map[string]any{"membership": "join"}).Expect(t, 403, "M_FORBIDDEN")
				// ...though bob may not set even his own: state_default is 50.
				s.Do("PUT", roomPath(room, "state", "com.example.status", bob.UserID.String()), bob.AccessToken, map[string]any{}).Expect(t, 403, "M_FORBIDDEN")
				s.Do("PUT", roomPath(room, "state", "m.room.name"), tok, `[1]`).Expect(t, 400, "M_BAD_JSON")

				// /state holds it all.
				st, err := bob.State(ctx(), room)
				if err != nil {
					t.Fatal(err)
				}
				if st[event.StateRoomName][""] == nil || st[event.StateCreate][""] == nil || len(st[event.StateMember]) != 2 {
					t.Errorf("/state: %v", st)
				}
				if name := st[event.StateRoomName][""].Content.AsRoomName().Name; name != "two" {
					t.Errorf("/state name = %q", name)
				}

				// /members with membership filters, and at a token.
				before, err := alice.Messages(ctx(), room, "", "", mautrix.DirectionBackward, nil, 1)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := alice.KickUser(ctx(), room, &mautrix.ReqKickUser{UserID: bob.UserID}); err != nil {
					t.Fatal(err)
				}
				for _, tc := range []struct {
					req  mautrix.ReqMembers
					want int
				}{
					{mautrix.ReqMembers{}, 2},
					{mautrix.ReqMembers{Membership: event.MembershipJoin}, 1},
					{mautrix.ReqMembers{NotMembership: event.MembershipJoin}, 1},
					{mautrix.ReqMembers{Membership: event.MembershipLeave, NotMembership: event.MembershipLeave}, 2},
					{mautrix.ReqMembers{At: before.Start, Membership: event.MembershipJoin}, 2},
				} {
					resp, err := alice.Members(ctx(), room, tc.req)
					if err != nil || len(resp.Chunk) != tc.want {
						t.Errorf("members %+v: %d, want %d (%v)", tc.req, len(resp.Chunk), tc.want, err)
					}
				}
			})
		}
	})
}

// TestRedactions redacts events and reads them back redacted, with
// unsigned.redacted_because; a user without the redact power cannot
// redact someone else's event, but can redact their own.
func TestRedactions(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob := s.Register("alice"), s.Register("bob")
		for _, version := range []string{"10", "11", "12"} {
			t.Run("v"+version, func(t *testing.T) {
				room := createRoom(t, s, alice, map[string]any{"preset": "public_chat", "room_version": version})
				if _, err := bob.JoinRoomByID(ctx(), room); err != nil {
					t.Fatal(err)
				}
				mine := sendText(t, alice, room, "oops")
				bobs := sendText(t, bob, room, "bob's words")

				red, err := alice.RedactEvent(ctx(), room, mine, mautrix.ReqRedact{Reason: "typo", TxnID: "r1"})
				if err != nil {
					t.Fatalf("redact: %v", err)
				}
				again, err := alice.RedactEvent(ctx(), room, mine, mautrix.ReqRedact{Reason: "typo", TxnID: "r1"})
				if err != nil || again.EventID != red.EventID {
					t.Fatalf("redact retry: %v %v", again, err)
				}
				e := s.Do("GET", roomPath(room, "event", string(mine)), bob.AccessToken, nil).Expect(t, 200, "")
				if content, _ := e.Body["content"].(map[string]any); len(content) != 0 {
					t.Errorf("redacted event content: %v", content)
				}
				unsigned, _ := e.Body["unsigned"].(map[string]any)
				because, _ := unsigned["redacted_because"].(map[string]any)
				if because["event_id"] != string(red.EventID) || because["type"] != "m.room.redaction" || because["redacts"] != string(mine) {
					t.Errorf("redacted_because: %s", e.Raw)
				}
				if reason, _ := because["content"].(map[string]any)["reason"].(string); reason != "typo" {
					t.Errorf("redaction reason: %s", e.Raw)
				}

				s.Do("PUT", roomPath(room, "redact", string(mine), "r2"), bob.AccessToken, map[string]any{}).Expect(t, 403, "M_FORBIDDEN")
				s.Do("PUT", roomPath(room, "redact", "notanevent", "r3"), alice.AccessToken, map[string]any{}).Expect(t, 400, "M_INVALID_PARAM")
				if _, err := bob.RedactEvent(ctx(), room, bobs); err != nil {
					t.Fatalf("bob redacting his own event: %v", err)
				}
				// The creator (infinite power in v12, 100 before) may redact
				// anyone's.
				other := sendText(t, bob, room, "second")
				if _, err := alice.RedactEvent(ctx(), room, other); err != nil {
					t.Fatalf("alice redacting bob's event: %v", err)
				}
				msgs, err := alice.Messages(ctx(), room, "", "", mautrix.DirectionBackward, nil, 10)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range msgs.Chunk {
					if e.ID == other && (e.Unsigned.RedactedBecause == nil || len(e.Content.Raw) != 0) {
						t.Errorf("/messages serves a redacted event unredacted: %+v", e)
					}
				}
			})
		}
	})
}
