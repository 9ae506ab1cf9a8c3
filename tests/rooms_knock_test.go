package tests

import (
	"net/url"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// knockPath is the path of POST /knock/{roomIdOrAlias}.
func knockPath(target string) string { return "/_matrix/client/v3/knock/" + url.PathEscape(target) }

// joinRule is an initial_state that sets the join rule (and its allow list
// of rooms whose members may join).
func joinRule(rule string, allow ...id.RoomID) []map[string]any {
	content := map[string]any{"join_rule": rule}
	if len(allow) > 0 {
		var list []map[string]any
		for _, r := range allow {
			list = append(list, map[string]any{"type": "m.room_membership", "room_id": r.String()})
		}
		content["allow"] = list
	}
	return []map[string]any{{"type": "m.room.join_rules", "content": content}}
}

// TestKnock knocks on rooms of versions 7, 10 and 12: the knock with its
// reason, refused joins while knocking, the invite that answers a knock,
// the leave that takes it back, the kick that refuses it; and the refusals
// of the auth rules (join rule not knock, a version before 7, a banned
// user, a member).
func TestKnock(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob, carol := s.Register("alice"), s.Register("bob"), s.Register("carol")
		for _, version := range []string{"7", "10", "12"} {
			t.Run("v"+version, func(t *testing.T) {
				localpart := "porte" + version
				room := createRoom(t, s, alice, map[string]any{"preset": "private_chat", "room_version": version,
					"room_alias_name": localpart, "initial_state": joinRule("knock")})
				member := func(c *mautrix.Client) map[string]any {
					return stateContent(t, s, alice, room, "m.room.member", c.UserID.String())
				}

				// bob knocks, by room id, with a reason.
				r := s.Do("POST", knockPath(room.String()), bob.AccessToken, map[string]any{"reason": "let me in"}).Expect(t, 200, "")
				if r.Body["room_id"] != room.String() {
					t.Fatalf("knock answer = %s", r.Raw)
				}
				if m := member(bob); m["membership"] != "knock" || m["reason"] != "let me in" {
					t.Fatalf("bob's member event = %v", m)
				}
				// Knocking is not joining.
				if _, err := bob.JoinRoomByID(ctx(), room); errcode(err) != "M_FORBIDDEN" {
					t.Fatalf("join while knocking: want M_FORBIDDEN, got %v", err)
				}
				// He takes it back, knocks again (by alias), is let in.
				if _, err := bob.LeaveRoom(ctx(), room); err != nil {
					t.Fatalf("leave to retract the knock: %v", err)
				}
				if m := member(bob); m["membership"] != "leave" {
					t.Fatalf("after retracting: %v", m)
				}
				s.Do("POST", knockPath("#"+localpart+":"+serverName), bob.AccessToken, map[string]any{}).Expect(t, 200, "")
				if m := member(bob); m["membership"] != "knock" {
					t.Fatalf("after knocking by alias: %v", m)
				}
				if _, err := alice.InviteUser(ctx(), room, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
					t.Fatalf("invite after a knock: %v", err)
				}
				if _, err := bob.JoinRoomByID(ctx(), room); err != nil {
					t.Fatalf("join after the invite: %v", err)
				}
				// A member knocks no more.
				s.Do("POST", knockPath(room.String()), bob.AccessToken, map[string]any{}).Expect(t, 403, "M_FORBIDDEN")

				// carol knocks and is refused by a kick; banned, she may not
				// knock again.
				s.Do("POST", knockPath(room.String()), carol.AccessToken, map[string]any{}).Expect(t, 200, "")
				if _, err := alice.KickUser(ctx(), room, &mautrix.ReqKickUser{UserID: carol.UserID, Reason: "no"}); err != nil {
					t.Fatalf("kick a knocking user: %v", err)
				}
				if m := member(carol); m["membership"] != "leave" || m["reason"] != "no" {
					t.Fatalf("carol after the refusal: %v", m)
				}
				if _, err := alice.BanUser(ctx(), room, &mautrix.ReqBanUser{UserID: carol.UserID}); err != nil {
					t.Fatal(err)
				}
				s.Do("POST", knockPath(room.String()), carol.AccessToken, map[string]any{}).Expect(t, 403, "M_FORBIDDEN")
			})
		}

		// The auth rules refuse knocks where the join rule is not knock,
		// and in room versions before 7 whatever the join rule.
		invite := createRoom(t, s, alice, map[string]any{"preset": "private_chat"})
		s.Do("POST", knockPath(invite.String()), bob.AccessToken, map[string]any{}).Expect(t, 403, "M_FORBIDDEN")
		public := createRoom(t, s, alice, map[string]any{"preset": "public_chat"})
		s.Do("POST", knockPath(public.String()), bob.AccessToken, map[string]any{}).Expect(t, 403, "M_FORBIDDEN")
		v6 := createRoom(t, s, alice, map[string]any{"preset": "private_chat", "room_version": "6", "initial_state": joinRule("knock")})
		s.Do("POST", knockPath(v6.String()), bob.AccessToken, map[string]any{}).Expect(t, 403, "M_FORBIDDEN")
		// knock_restricted (from version 10) takes knocks too; versions 7
		// to 9 have no such join rule and refuse them.
		kr9 := createRoom(t, s, alice, map[string]any{"preset": "private_chat", "room_version": "9", "initial_state": joinRule("knock_restricted", public)})
		s.Do("POST", knockPath(kr9.String()), bob.AccessToken, map[string]any{}).Expect(t, 403, "M_FORBIDDEN")
		kr10 := createRoom(t, s, alice, map[string]any{"preset": "private_chat", "room_version": "10", "initial_state": joinRule("knock_restricted", public)})
		s.Do("POST", knockPath(kr10.String()), bob.AccessToken, map[string]any{}).Expect(t, 200, "")

		s.Do("POST", knockPath("!nosuchroom:"+serverName), bob.AccessToken, map[string]any{}).Expect(t, 404, "M_NOT_FOUND")
		s.Do("POST", knockPath("#nosuchalias:"+serverName), bob.AccessToken, map[string]any{}).Expect(t, 404, "M_NOT_FOUND")
		s.Do("POST", knockPath("salon"), bob.AccessToken, map[string]any{}).Expect(t, 400, "M_INVALID_PARAM")
	})
}
