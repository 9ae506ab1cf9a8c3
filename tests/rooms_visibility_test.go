package tests

import (
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
)

// TestHistoryVisibility checks each history visibility on every read
// path: what a user invited and then joined sees of the messages sent
// before the invite, between invite and join, and after; and that a user
// who was never in the room sees nothing of it unless it is world
// readable.
func TestHistoryVisibility(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob, carol := s.Register("alice"), s.Register("bob"), s.Register("carol")
		for _, tc := range []struct {
			visibility string
			// bobSees are the messages bob sees once joined.
			bobSees []string
			// carolReads says a stranger may read the room.
			carolReads bool
		}{
			{"joined", []string{"after join"}, false},
			{"invited", []string{"after invite", "after join"}, false},
			{"shared", []string{"before invite", "after invite", "after join"}, false},
			{"world_readable", []string{"before invite", "after invite", "after join"}, true},
		} {
			t.Run(tc.visibility, func(t *testing.T) {
				room := createRoom(t, s, alice, map[string]any{
					"preset": "private_chat",
					"initial_state": []map[string]any{
						{"type": "m.room.history_visibility", "content": map[string]any{"history_visibility": tc.visibility}},
					},
				})
				early := sendText(t, alice, room, "before invite")
				if _, err := alice.InviteUser(ctx(), room, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
					t.Fatal(err)
				}
				sendText(t, alice, room, "after invite")
				if _, err := bob.JoinRoomByID(ctx(), room); err != nil {
					t.Fatal(err)
				}
				sendText(t, alice, room, "after join")

				got, _ := allMessages(t, bob, room, mautrix.DirectionForward, 2)
				if !sameList(got, tc.bobSees) {
					t.Errorf("bob /messages forward: %q, want %q", got, tc.bobSees)
				}
				got, _ = allMessages(t, bob, room, mautrix.DirectionBackward, 3)
				if !sameList(got, reversed(tc.bobSees)) {
					t.Errorf("bob /messages backward: %q, want %q", got, reversed(tc.bobSees))
				}
				// bob always sees his own join, whatever the visibility.
				msgs, err := bob.Messages(ctx(), room, "", "", mautrix.DirectionBackward, &mautrix.FilterPart{Types: []event.Type{event.StateMember}}, 10)
				if err != nil {
					t.Fatal(err)
				}
				ownJoin := false
				for _, e := range msgs.Chunk {
					ownJoin = ownJoin || (e.GetStateKey() == bob.UserID.String() && e.Content.Raw["membership"] == "join")
				}
				if !ownJoin {
					t.Error("bob does not see his own join")
				}
				earlyVisible := tc.bobSees[0] == "before invite"
				status, code := 404, "M_NOT_FOUND"
				if earlyVisible {
					status, code = 200, ""
				}
				s.Do("GET", roomPath(room, "event", string(early)), bob.AccessToken, nil).Expect(t, status, code)
				s.Do("GET", roomPath(room, "context", string(early)), bob.AccessToken, nil).Expect(t, status, code)

				// carol, never a member.
				paths := []string{
					roomPath(room, "messages") + "?dir=b",
					roomPath(room, "state"),
					roomPath(room, "state", "m.room.create", ""),
					roomPath(room, "members"),
					roomPath(room, "event", string(early)),
					roomPath(room, "context", string(early)),
				}
				for _, p := range paths {
					if tc.carolReads {
						s.Do("GET", p, carol.AccessToken, nil).Expect(t, 200, "")
					} else {
						s.Do("GET", p, carol.AccessToken, nil).Expect(t, 403, "M_FORBIDDEN")
					}
				}
				s.Do("GET", roomPath(room, "joined_members"), carol.AccessToken, nil).Expect(t, 403, "M_FORBIDDEN")
				if tc.carolReads {
					got, _ := allMessages(t, carol, room, mautrix.DirectionForward, 10)
					if !sameList(got, tc.bobSees) {
						t.Errorf("carol reads %q of a world-readable room", got)
					}
				}
			})
		}
	})
}

// TestHistoryVisibilityAfterLeaving checks that a user who left keeps
// what they could see and sees nothing sent after, on every read path,
// and that a change of visibility applies from the point it is made.
func TestHistoryVisibilityAfterLeaving(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob := s.Register("alice"), s.Register("bob")
		room := createRoom(t, s, alice, map[string]any{"preset": "public_chat"})
		sendText(t, alice, room, "shared 1")
		if _, err := bob.JoinRoomByID(ctx(), room); err != nil {
			t.Fatal(err)
		}
		sendText(t, alice, room, "shared 2")
		if _, err := alice.SendStateEvent(ctx(), room, event.StateHistoryVisibility, "", map[string]any{"history_visibility": "joined"}); err != nil {
			t.Fatal(err)
		}
		sendText(t, alice, room, "joined 1")
		if _, err := bob.LeaveRoom(ctx(), room); err != nil {
			t.Fatal(err)
		}
		late := sendText(t, alice, room, "after bob left")

		got, _ := allMessages(t, bob, room, mautrix.DirectionBackward, 2)
		if want := []string{"joined 1", "shared 2", "shared 1"}; !sameList(got, want) {
			t.Errorf("bob after leaving: %q, want %q", got, want)
		}
		s.Do("GET", roomPath(room, "event", string(late)), bob.AccessToken, nil).Expect(t, 404, "M_NOT_FOUND")
		s.Do("GET", roomPath(room, "context", string(late)), bob.AccessToken, nil).Expect(t, 404, "M_NOT_FOUND")
		// dave joins later: joined visibility hides the messages sent
		// under it before his join, not those sent under shared.
		dave := s.Register("dave")
		if _, err := dave.JoinRoomByID(ctx(), room); err != nil {
			t.Fatal(err)
		}
		sendText(t, alice, room, "for dave")
		got, _ = allMessages(t, dave, room, mautrix.DirectionBackward, 10)
		if want := []string{"for dave", "shared 2", "shared 1"}; !sameList(got, want) {
			t.Errorf("dave: %q, want %q", got, want)
		}
		// /members of a room left: as it was when leaving, without dave.
		members, err := bob.Members(ctx(), room)
		if err != nil || len(members.Chunk) != 2 {
			t.Fatalf("bob's /members after leaving: %d %v", len(members.Chunk), err)
		}
		for _, m := range members.Chunk {
			if m.GetStateKey() == bob.UserID.String() && m.Content.AsMember().Membership != event.MembershipLeave {
				t.Errorf("bob's membership in /members: %s", m.Content.AsMember().Membership)
			}
			if m.GetStateKey() == dave.UserID.String() {
				t.Error("bob sees a member who joined after he left")
			}
		}
	})
}
