package tests

import (
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
)

// TestPushInSync checks what push gives /sync: unread notification and
// highlight counts that move with messages and read receipts, the
// m.push_rules account data after a rule change, and no notification of
// an ignored user's messages.
func TestPushInSync(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob, carol := s.Register("alice"), s.Register("bob"), s.Register("carol")
		room := createRoom(t, s, alice, map[string]any{"preset": "public_chat"})
		for _, c := range []*mautrix.Client{bob, carol} {
			if _, err := c.JoinRoomByID(ctx(), room); err != nil {
				t.Fatal(err)
			}
		}
		sy, initial := newSyncer(t, alice, "")
		rulesIn := func(resp *mautrix.RespSync, substr string) bool {
			for _, ev := range resp.AccountData.Events {
				if ev.Type.Type == "m.push_rules" && strings.Contains(string(ev.Content.VeryRaw), substr) {
					return true
				}
			}
			return false
		}
		if !rulesIn(initial, ".m.rule.master") {
			t.Fatal("no m.push_rules in the initial sync")
		}

		sendText(t, bob, room, "one")
		mention, err := bob.SendMessageEvent(ctx(), room, event.EventMessage, map[string]any{"msgtype": "m.text", "body": "alice?",
			"m.mentions": map[string]any{"user_ids": []string{alice.UserID.String()}}})
		if err != nil {
			t.Fatal(err)
		}
		counts := func(resp *mautrix.RespSync) (int, int, bool) {
			jr, ok := resp.Rooms.Join[room]
			if !ok || jr.UnreadNotifications == nil {
				return 0, 0, false
			}
			return jr.UnreadNotifications.NotificationCount, jr.UnreadNotifications.HighlightCount, true
		}
		sy.until("2 unread, 1 highlight", func(resp *mautrix.RespSync) bool {
			n, h, ok := counts(resp)
			return ok && n == 2 && h == 1
		})
		if err := alice.MarkRead(ctx(), room, mention.EventID); err != nil {
			t.Fatal(err)
		}
		sy.until("counts cleared by the receipt", func(resp *mautrix.RespSync) bool {
			n, h, ok := counts(resp)
			return ok && n == 0 && h == 0
		})

		// A rule change reaches the user's syncs.
		s.Do("PUT", rulePath("content", "beer"), alice.AccessToken, map[string]any{"pattern": "beer", "actions": []any{"notify"}}).Expect(t, 200, "")
		sy.until("m.push_rules with the new rule", func(resp *mautrix.RespSync) bool { return rulesIn(resp, `"beer"`) })

		// alice ignores carol: carol's messages notify her no more.
		if err := alice.SetAccountData(ctx(), "m.ignored_user_list", map[string]any{"ignored_users": map[string]any{carol.UserID.String(): map[string]any{}}}); err != nil {
			t.Fatal(err)
		}
		ignored := sendText(t, carol, room, "from carol")
		later := sendText(t, bob, room, "from bob")
		waitNotified(t, s, alice, later)
		for _, n := range notifications(t, s, alice, "?limit=100").Body["notifications"].([]any) {
			if n.(map[string]any)["event"].(map[string]any)["event_id"] == ignored.String() {
				t.Fatal("an ignored user's message notified")
			}
		}
	})
}
