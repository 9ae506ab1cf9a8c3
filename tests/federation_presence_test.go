package tests

import (
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// TestFederationPresence: presence crosses servers for users who share a
// room: alice's status set on A reaches bob's sync and his
// GET /presence on B; bob coming online by syncing reaches alice. A
// presence EDU from B for a user of A is dropped.
func TestFederationPresence(t *testing.T) {
	t.Parallel()
	federationEngines(t, []string{fedA, fedB}, func(t *testing.T, f *Federation) {
		a, b, alice, bob, _ := publicRoomOnA(t, f)
		aliceSync, _ := newSyncer(t, alice, "")
		bobSync, _ := newSyncer(t, bob, "")
		presenceOf := func(r *mautrix.RespSync, user id.UserID) *event.PresenceEventContent {
			for _, e := range r.Presence.Events {
				if e.Sender == user {
					_ = e.Content.ParseRaw(event.EphemeralEventPresence)
					return e.Content.AsPresence()
				}
			}
			return nil
		}
		if err := alice.SetPresence(ctx(), mautrix.ReqPresence{Presence: event.PresenceOnline, StatusMsg: "in a meeting"}); err != nil {
			t.Fatal(err)
		}
		bobSync.until("alice's presence", func(r *mautrix.RespSync) bool {
			p := presenceOf(r, alice.UserID)
			return p != nil && p.Presence == event.PresenceOnline && p.StatusMessage == "in a meeting"
		})
		r := b.Do("GET", "/_matrix/client/v3/presence/"+alice.UserID.String()+"/status", bob.AccessToken, nil).Expect(t, 200, "")
		if r.Body["presence"] != "online" || r.Body["status_msg"] != "in a meeting" {
			t.Errorf("alice's presence read on B: %v", r.Body)
		}
		aliceSync.until("bob online", func(r *mautrix.RespSync) bool {
			p := presenceOf(r, bob.UserID)
			return p != nil && p.Presence == event.PresenceOnline
		})

		status, _ := f.asServer(t, fedA, fedB, "PUT", "/_matrix/federation/v1/send/forged-presence", map[string]any{
			"origin": fedB, "origin_server_ts": time.Now().UnixMilli(), "pdus": []any{},
			"edus": []any{map[string]any{"edu_type": "m.presence", "content": map[string]any{"push": []any{
				map[string]any{"user_id": alice.UserID, "presence": "offline", "last_active_ago": 0}}}}},
		})
		if status != 200 {
			t.Fatalf("transaction with a forged presence EDU: %d", status)
		}
		time.Sleep(300 * time.Millisecond)
		r = a.Do("GET", "/_matrix/client/v3/presence/"+alice.UserID.String()+"/status", alice.AccessToken, nil).Expect(t, 200, "")
		if r.Body["presence"] != "online" {
			t.Errorf("a presence EDU from B for a user of A was taken: %v", r.Body)
		}
	})
}
