package tests

import (
	"testing"

	"maunium.net/go/mautrix"
)

// TestRestrictedJoin joins restricted rooms (versions 8, 10 and 12) whose
// allow list names a space: a member of the space joins, and the join
// names a local member with the power to invite (the creator, from
// version 12 by its creator power); a user outside the space is refused;
// invited, he may join; a room left with no one to let people in answers
// M_UNABLE_TO_GRANT_JOIN. knock_restricted rooms admit the space's
// members and take knocks from others; before version 8 the restricted
// rule admits no one.
func TestRestrictedJoin(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob, carol, dave := s.Register("alice"), s.Register("bob"), s.Register("carol"), s.Register("dave")
		space := createRoom(t, s, alice, map[string]any{"preset": "public_chat", "creation_content": map[string]any{"type": "m.space"}})
		for _, c := range []*mautrix.Client{bob, dave} {
			if _, err := c.JoinRoomByID(ctx(), space); err != nil {
				t.Fatal(err)
			}
		}
		for _, version := range []string{"8", "10", "12"} {
			t.Run("v"+version, func(t *testing.T) {
				room := createRoom(t, s, alice, map[string]any{"preset": "private_chat", "room_version": version,
					"initial_state": joinRule("restricted", space)})
				if _, err := bob.JoinRoomByID(ctx(), room); err != nil {
					t.Fatalf("a member of the space joins: %v", err)
				}
				m := stateContent(t, s, alice, room, "m.room.member", bob.UserID.String())
				if m["membership"] != "join" || m["join_authorised_via_users_server"] != alice.UserID.String() {
					t.Fatalf("bob's join = %v, want authorised via alice", m)
				}
				// Joining again changes nothing and needs no one.
				if _, err := bob.JoinRoomByID(ctx(), room); err != nil {
					t.Fatalf("second join: %v", err)
				}
				if _, err := carol.JoinRoomByID(ctx(), room); errcode(err) != "M_FORBIDDEN" {
					t.Fatalf("a user outside the space joins: want M_FORBIDDEN, got %v", err)
				}
				if _, err := alice.InviteUser(ctx(), room, &mautrix.ReqInviteUser{UserID: carol.UserID}); err != nil {
					t.Fatal(err)
				}
				if _, err := carol.JoinRoomByID(ctx(), room); err != nil {
					t.Fatalf("invited, carol joins: %v", err)
				}
				if m := stateContent(t, s, alice, room, "m.room.member", carol.UserID.String()); m["join_authorised_via_users_server"] != nil {
					t.Errorf("an invited user's join names an authoriser: %v", m)
				}
				// With alice gone, no member may invite (private_chat lets
				// everyone invite: take that back first).
				pl := stateContent(t, s, alice, room, "m.room.power_levels", "")
				pl["invite"] = 50
				s.Do("PUT", roomPath(room, "state", "m.room.power_levels", ""), alice.AccessToken, pl).Expect(t, 200, "")
				if _, err := alice.LeaveRoom(ctx(), room); err != nil {
					t.Fatal(err)
				}
				s.Do("POST", roomPath(room, "join"), dave.AccessToken, map[string]any{}).Expect(t, 400, "M_UNABLE_TO_GRANT_JOIN")
			})
		}

		// knock_restricted (version 10): members of the space join, others
		// knock.
		kr := createRoom(t, s, alice, map[string]any{"preset": "private_chat", "room_version": "10",
			"initial_state": joinRule("knock_restricted", space)})
		if _, err := bob.JoinRoomByID(ctx(), kr); err != nil {
			t.Fatalf("a member of the space joins a knock_restricted room: %v", err)
		}
		if _, err := carol.JoinRoomByID(ctx(), kr); errcode(err) != "M_FORBIDDEN" {
			t.Fatalf("a user outside the space joins a knock_restricted room: want M_FORBIDDEN, got %v", err)
		}
		s.Do("POST", knockPath(kr.String()), carol.AccessToken, map[string]any{}).Expect(t, 200, "")

		// Version 7 knows no restricted rule: the room is invite-only.
		v7 := createRoom(t, s, alice, map[string]any{"preset": "private_chat", "room_version": "7",
			"initial_state": joinRule("restricted", space)})
		if _, err := bob.JoinRoomByID(ctx(), v7); errcode(err) != "M_FORBIDDEN" {
			t.Fatalf("restricted join in version 7: want M_FORBIDDEN, got %v", err)
		}
	})
}
