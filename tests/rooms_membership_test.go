package tests

import (
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// TestMemberInviteJoinLeaveForget is the life of a member in a private
// room: invited, joins (and sees the room), leaves (and no longer sees
// what follows), forgets (and sees nothing more).
func TestMemberInviteJoinLeaveForget(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob := s.Register("alice"), s.Register("bob")
		room := createRoom(t, s, alice, map[string]any{"preset": "private_chat", "name": "private"})
		sendText(t, alice, room, "before the invite")

		// Not invited: bob cannot join an invite-only room.
		if _, err := bob.JoinRoomByID(ctx(), room); errcode(err) != "M_FORBIDDEN" {
			t.Fatalf("join uninvited: want M_FORBIDDEN, got %v", err)
		}
		if _, err := alice.InviteUser(ctx(), room, &mautrix.ReqInviteUser{UserID: bob.UserID, Reason: "welcome"}); err != nil {
			t.Fatalf("invite: %v", err)
		}
		invite := stateContent(t, s, alice, room, "m.room.member", bob.UserID.String())
		if invite["membership"] != "invite" || invite["reason"] != "welcome" {
			t.Fatalf("invite event content: %v", invite)
		}
		// Repeating the same invite sends nothing and succeeds.
		if _, err := alice.InviteUser(ctx(), room, &mautrix.ReqInviteUser{UserID: bob.UserID, Reason: "welcome"}); err != nil {
			t.Fatalf("repeated invite: %v", err)
		}

		// bob joins through /join/{roomIdOrAlias}.
		if _, err := bob.JoinRoom(ctx(), room.String(), nil); err != nil {
			t.Fatalf("join: %v", err)
		}
		joined, err := bob.JoinedRooms(ctx())
		if err != nil || len(joined.JoinedRooms) != 1 || joined.JoinedRooms[0] != room {
			t.Fatalf("joined_rooms: %v %v", joined, err)
		}
		members, err := alice.JoinedMembers(ctx(), room)
		if err != nil || len(members.Joined) != 2 {
			t.Fatalf("joined_members: %+v %v", members, err)
		}
		if _, ok := members.Joined[bob.UserID]; !ok {
			t.Fatalf("joined_members lacks bob: %+v", members.Joined)
		}
		// Joining twice changes nothing.
		if _, err := bob.JoinRoomByID(ctx(), room); err != nil {
			t.Fatalf("second join: %v", err)
		}
		// shared history: bob sees what was said before his invite.
		got, _ := allMessages(t, bob, room, mautrix.DirectionForward, 50)
		if !sameList(got, []string{"before the invite"}) {
			t.Fatalf("bob's history after joining: %q", got)
		}

		sendText(t, bob, room, "hello from bob")
		if _, err := bob.LeaveRoom(ctx(), room, &mautrix.ReqLeave{Reason: "bye"}); err != nil {
			t.Fatalf("leave: %v", err)
		}
		sendText(t, alice, room, "after bob left")
		if _, err := alice.SendStateEvent(ctx(), room, event.StateRoomName, "", map[string]any{"name": "renamed"}); err != nil {
			t.Fatal(err)
		}

		joined, err = bob.JoinedRooms(ctx())
		if err != nil || len(joined.JoinedRooms) != 0 {
			t.Fatalf("joined_rooms after leaving: %v %v", joined, err)
		}
		got, _ = allMessages(t, bob, room, mautrix.DirectionBackward, 50)
		if !sameList(got, []string{"hello from bob", "before the invite"}) {
			t.Fatalf("bob's history after leaving: %q", got)
		}
		// /state of a room left is the state when leaving.
		if name := stateContent(t, s, bob, room, "m.room.name", "")["name"]; name != "private" {
			t.Errorf("bob reads the name set after he left: %v", name)
		}
		if m := stateContent(t, s, bob, room, "m.room.member", bob.UserID.String()); m["membership"] != "leave" || m["reason"] != "bye" {
			t.Errorf("bob's own membership as he sees it: %v", m)
		}
		s.Do("GET", roomPath(room, "joined_members"), bob.AccessToken, nil).Expect(t, 403, "M_FORBIDDEN")

		// Forgetting needs leaving first.
		s.Do("POST", roomPath(room, "forget"), alice.AccessToken, map[string]any{}).Expect(t, 400, "M_UNKNOWN")
		if _, err := bob.ForgetRoom(ctx(), room); err != nil {
			t.Fatalf("forget: %v", err)
		}
		for _, p := range []string{roomPath(room, "messages") + "?dir=b", roomPath(room, "state"), roomPath(room, "members")} {
			s.Do("GET", p, bob.AccessToken, nil).Expect(t, 403, "M_FORBIDDEN")
		}
		// Invited again and joined again, bob sees the room again.
		if _, err := alice.InviteUser(ctx(), room, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.JoinRoomByID(ctx(), room); err != nil {
			t.Fatal(err)
		}
		if name := stateContent(t, s, bob, room, "m.room.name", "")["name"]; name != "renamed" {
			t.Errorf("name after rejoining: %v", name)
		}
	})
}

// TestMemberKickBanUnban covers the moderation endpoints and their
// refusals: a member without power cannot kick, a banned user cannot
// rejoin, only a banned user can be unbanned.
func TestMemberKickBanUnban(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob, carol := s.Register("alice"), s.Register("bob"), s.Register("carol")
		for _, version := range []string{"10", "12"} {
			t.Run("v"+version, func(t *testing.T) {
				room := createRoom(t, s, alice, map[string]any{"preset": "public_chat", "room_version": version})
				for _, c := range []*mautrix.Client{bob, carol} {
					if _, err := c.JoinRoomByID(ctx(), room); err != nil {
						t.Fatalf("%s joins: %v", c.UserID, err)
					}
				}
				if _, err := bob.KickUser(ctx(), room, &mautrix.ReqKickUser{UserID: carol.UserID}); errcode(err) != "M_FORBIDDEN" {
					t.Fatalf("kick without power: want M_FORBIDDEN, got %v", err)
				}
				if _, err := bob.BanUser(ctx(), room, &mautrix.ReqBanUser{UserID: alice.UserID}); errcode(err) != "M_FORBIDDEN" {
					t.Fatalf("ban of the creator: want M_FORBIDDEN, got %v", err)
				}
				if _, err := alice.KickUser(ctx(), room, &mautrix.ReqKickUser{UserID: bob.UserID, Reason: "calm down"}); err != nil {
					t.Fatalf("kick: %v", err)
				}
				m := stateContent(t, s, alice, room, "m.room.member", bob.UserID.String())
				if m["membership"] != "leave" || m["reason"] != "calm down" {
					t.Fatalf("kicked member event: %v", m)
				}
				// A kicked user may come back to a public room...
				if _, err := bob.JoinRoomByID(ctx(), room); err != nil {
					t.Fatalf("rejoin after kick: %v", err)
				}
				// ...a banned one may not.
				if _, err := alice.BanUser(ctx(), room, &mautrix.ReqBanUser{UserID: bob.UserID, Reason: "spam"}); err != nil {
					t.Fatalf("ban: %v", err)
				}
				if _, err := bob.JoinRoomByID(ctx(), room); errcode(err) != "M_FORBIDDEN" {
					t.Fatalf("banned user rejoining: want M_FORBIDDEN, got %v", err)
				}
				if _, err := bob.SendText(ctx(), room, "still here?"); errcode(err) != "M_FORBIDDEN" {
					t.Fatalf("banned user sending: want M_FORBIDDEN, got %v", err)
				}
				s.Do("POST", roomPath(room, "kick"), alice.AccessToken, map[string]any{"user_id": bob.UserID}).Expect(t, 403, "M_FORBIDDEN")
				s.Do("POST", roomPath(room, "unban"), alice.AccessToken, map[string]any{"user_id": carol.UserID}).Expect(t, 403, "M_BAD_STATE")
				if _, err := alice.UnbanUser(ctx(), room, &mautrix.ReqUnbanUser{UserID: bob.UserID}); err != nil {
					t.Fatalf("unban: %v", err)
				}
				if _, err := bob.JoinRoomByID(ctx(), room); err != nil {
					t.Fatalf("join after unban: %v", err)
				}
				members, err := alice.Members(ctx(), room, mautrix.ReqMembers{Membership: event.MembershipJoin})
				if err != nil || len(members.Chunk) != 3 {
					t.Fatalf("members after unban: %d %v", len(members.Chunk), err)
				}
			})
		}
	})
}

// TestMemberRefusals checks the errors of the membership endpoints.
func TestMemberRefusals(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		room := createRoom(t, s, alice, map[string]any{})
		unknown := id.RoomID("!nosuchroom:" + serverName)
		tok := alice.AccessToken
		for _, tc := range []struct {
			name, method, path string
			body               any
			status             int
			errcode            string
		}{
			{"join by alias", "POST", "/_matrix/client/v3/join/%23salon:" + serverName, map[string]any{}, 404, "M_NOT_FOUND"},
			{"join unknown room", "POST", "/_matrix/client/v3/join/" + string(unknown), map[string]any{}, 404, "M_NOT_FOUND"},
			{"join unknown room by id path", "POST", roomPath(unknown, "join"), nil, 404, "M_NOT_FOUND"},
			{"join something else", "POST", "/_matrix/client/v3/join/salon", nil, 400, "M_INVALID_PARAM"},
			{"invite without user", "POST", roomPath(room, "invite"), map[string]any{}, 400, "M_MISSING_PARAM"},
			{"invite bad user id", "POST", roomPath(room, "invite"), map[string]any{"user_id": "bob"}, 400, "M_INVALID_PARAM"},
			{"invite remote user", "POST", roomPath(room, "invite"), map[string]any{"user_id": "@bob:elsewhere.example"}, 403, "M_FORBIDDEN"},
			{"invite to unknown room", "POST", roomPath(unknown, "invite"), map[string]any{"user_id": "@bob:" + serverName}, 404, "M_NOT_FOUND"},
			{"leave unknown room", "POST", roomPath(unknown, "leave"), nil, 404, "M_NOT_FOUND"},
			{"forget unknown room", "POST", roomPath(unknown, "forget"), nil, 404, "M_NOT_FOUND"},
			{"kick bad body", "POST", roomPath(room, "kick"), `[]`, 400, "M_BAD_JSON"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s.Do(tc.method, tc.path, tok, tc.body).Expect(t, tc.status, tc.errcode)
			})
		}
		// The r0 prefix serves the same endpoints.
		s.Do("POST", "/_matrix/client/r0/rooms/"+string(room)+"/join", tok, nil).Expect(t, 200, "")
	})
}
