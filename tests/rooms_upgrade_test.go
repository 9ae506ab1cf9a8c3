package tests

import (
	"net/url"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// upgradeRoom upgrades room as c with body and returns the replacement.
func upgradeRoom(t testing.TB, s *Server, c *mautrix.Client, room id.RoomID, body map[string]any) id.RoomID {
	t.Helper()
	r := s.Do("POST", roomPath(room, "upgrade"), c.AccessToken, body).Expect(t, 200, "")
	replacement, _ := r.Body["replacement_room"].(string)
	if replacement == "" {
		t.Fatalf("upgrade: no replacement_room in %s", r.Raw)
	}
	return id.RoomID(replacement)
}

// TestRoomUpgrade upgrades rooms of versions 10 and 11 to 12, and 10 to
// 11, and checks the spec's server behaviour: the replacement's create
// event (version, predecessor, additional creators), the state carried
// over (and what is not), the power levels (creators left out from
// version 12), the bans, the tombstone, the old room restricted, the
// aliases, canonical alias and directory entry moved; and the refusals.
func TestRoomUpgrade(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob, carol, dave := s.Register("alice"), s.Register("bob"), s.Register("carol"), s.Register("dave")
		for _, tc := range []struct{ from, to string }{{"10", "12"}, {"11", "12"}, {"10", "11"}} {
			t.Run(tc.from+" to "+tc.to, func(t *testing.T) {
				localpart := "salon" + tc.from + "to" + tc.to
				alias := "#" + localpart + ":" + serverName
				old := createRoom(t, s, alice, map[string]any{
					"preset": "public_chat", "room_version": tc.from, "visibility": "public",
					"name": "Le salon", "topic": "On y parle de tout", "room_alias_name": localpart,
					"initial_state": []map[string]any{
						{"type": "m.room.encryption", "content": map[string]any{"algorithm": "m.megolm.v1.aes-sha2"}},
						{"type": "m.room.avatar", "content": map[string]any{"url": "mxc://test.local/avatar"}},
						{"type": "m.room.history_visibility", "content": map[string]any{"history_visibility": "world_readable"}},
						{"type": "com.example.setting", "content": map[string]any{"on": true}},
					},
				})
				for _, c := range []*mautrix.Client{bob, carol, dave} {
					if _, err := c.JoinRoomByID(ctx(), old); err != nil {
						t.Fatalf("%s joins: %v", c.UserID, err)
					}
				}
				// bob becomes a moderator: 50, less than the tombstone's 100.
				pl := stateContent(t, s, alice, old, "m.room.power_levels", "")
				pl["users"].(map[string]any)[bob.UserID.String()] = 50
				s.Do("PUT", roomPath(old, "state", "m.room.power_levels", ""), alice.AccessToken, pl).Expect(t, 200, "")
				if _, err := alice.BanUser(ctx(), old, &mautrix.ReqBanUser{UserID: dave.UserID, Reason: "spam"}); err != nil {
					t.Fatal(err)
				}
				last := sendText(t, alice, old, "before the upgrade")

				// Refusals.
				s.Do("POST", roomPath(old, "upgrade"), bob.AccessToken, map[string]any{"new_version": tc.to}).Expect(t, 403, "M_FORBIDDEN")
				s.Do("POST", roomPath(old, "upgrade"), carol.AccessToken, map[string]any{"new_version": tc.to}).Expect(t, 403, "M_FORBIDDEN")
				s.Do("POST", roomPath(old, "upgrade"), alice.AccessToken, map[string]any{"new_version": "999"}).Expect(t, 400, "M_UNSUPPORTED_ROOM_VERSION")
				s.Do("POST", roomPath(old, "upgrade"), alice.AccessToken, map[string]any{}).Expect(t, 400, "M_MISSING_PARAM")
				s.Do("POST", roomPath("!nosuchroom:"+serverName, "upgrade"), alice.AccessToken, map[string]any{"new_version": tc.to}).Expect(t, 404, "M_NOT_FOUND")

				body := map[string]any{"new_version": tc.to}
				if tc.to == "12" {
					body["additional_creators"] = []string{bob.UserID.String()}
				}
				repl := upgradeRoom(t, s, alice, old, body)
				if repl == old {
					t.Fatal("the replacement is the old room")
				}

				// The replacement's create event.
				create := stateContent(t, s, alice, repl, "m.room.create", "")
				if create["room_version"] != tc.to {
					t.Errorf("room_version = %v, want %s", create["room_version"], tc.to)
				}
				pred, _ := create["predecessor"].(map[string]any)
				if pred["room_id"] != old.String() {
					t.Errorf("predecessor = %v, want room_id %s", pred, old)
				}
				if tc.to == "12" {
					if _, ok := pred["event_id"]; ok {
						t.Errorf("predecessor of a v12 room has an event_id: %v", pred)
					}
					if ac, _ := create["additional_creators"].([]any); len(ac) != 1 || ac[0] != bob.UserID.String() {
						t.Errorf("additional_creators = %v, want [bob]", create["additional_creators"])
					}
				} else if pred["event_id"] != last.String() {
					t.Errorf("predecessor event_id = %v, want the old room's last event %s", pred["event_id"], last)
				}

				// The state carried over, and what is not.
				for _, want := range []struct{ typ, key, value string }{
					{"m.room.name", "name", "Le salon"},
					{"m.room.topic", "topic", "On y parle de tout"},
					{"m.room.avatar", "url", "mxc://test.local/avatar"},
					{"m.room.encryption", "algorithm", "m.megolm.v1.aes-sha2"},
					{"m.room.history_visibility", "history_visibility", "world_readable"},
					{"m.room.join_rules", "join_rule", "public"},
					{"m.room.guest_access", "guest_access", "forbidden"},
					{"m.room.canonical_alias", "alias", alias},
				} {
					if got := stateContent(t, s, alice, repl, want.typ, "")[want.key]; got != want.value {
						t.Errorf("%s %s = %v, want %s", want.typ, want.key, got, want.value)
					}
				}
				s.Do("GET", roomPath(repl, "state", "com.example.setting", ""), alice.AccessToken, nil).Expect(t, 404, "M_NOT_FOUND")
				if m := stateContent(t, s, alice, repl, "m.room.member", dave.UserID.String()); m["membership"] != "ban" || m["reason"] != "spam" {
					t.Errorf("dave in the replacement: %v, want banned with the reason", m)
				}
				members, err := alice.JoinedMembers(ctx(), repl)
				if err != nil || len(members.Joined) != 1 {
					t.Errorf("joined members of the replacement: %v %v, want alice alone", members, err)
				}

				// Power levels: the old room's, the creators left out in v12.
				newPL := stateContent(t, s, alice, repl, "m.room.power_levels", "")
				users, _ := newPL["users"].(map[string]any)
				if tc.to == "12" {
					if _, ok := users[alice.UserID.String()]; ok {
						t.Errorf("v12: the upgrading user is listed in power_levels.users: %v", users)
					}
					if _, ok := users[bob.UserID.String()]; ok {
						t.Errorf("v12: an additional creator is listed in power_levels.users: %v", users)
					}
				} else if jsonNumber(users[alice.UserID.String()]) != 100 || jsonNumber(users[bob.UserID.String()]) != 50 {
					t.Errorf("power_levels.users = %v, want alice 100 and bob 50", users)
				}
				if events, _ := newPL["events"].(map[string]any); jsonNumber(events["m.room.history_visibility"]) != 100 {
					t.Errorf("power_levels.events not carried over: %v", newPL["events"])
				}

				// The old room: tombstone, power levels raised, alias gone.
				tomb := stateContent(t, s, alice, old, "m.room.tombstone", "")
				if tomb["replacement_room"] != repl.String() || tomb["body"] == "" {
					t.Errorf("tombstone = %v", tomb)
				}
				oldPL := stateContent(t, s, alice, old, "m.room.power_levels", "")
				if jsonNumber(oldPL["events_default"]) < 50 || jsonNumber(oldPL["invite"]) < 50 {
					t.Errorf("old room power levels not restricted: events_default %v invite %v", oldPL["events_default"], oldPL["invite"])
				}
				if _, err := carol.SendText(ctx(), old, "still here?"); errcode(err) != "M_FORBIDDEN" {
					t.Errorf("carol sending in the old room: want M_FORBIDDEN, got %v", err)
				}
				sendText(t, bob, old, "moderators still may")
				if _, ok := stateContent(t, s, alice, old, "m.room.canonical_alias", "")["alias"]; ok {
					t.Errorf("the old room still names the moved alias")
				}

				// The alias and the directory entry moved.
				r := s.Do("GET", "/_matrix/client/v3/directory/room/"+url.PathEscape(alias), "", nil).Expect(t, 200, "")
				if r.Body["room_id"] != repl.String() {
					t.Errorf("%s points to %v, want %s", alias, r.Body["room_id"], repl)
				}
				aliases := s.Do("GET", roomPath(repl, "aliases"), alice.AccessToken, nil).Expect(t, 200, "").Body["aliases"]
				if list, _ := aliases.([]any); len(list) != 1 || list[0] != alias {
					t.Errorf("aliases of the replacement = %v", aliases)
				}
				for room, want := range map[id.RoomID]string{old: "private", repl: "public"} {
					if v := s.Do("GET", "/_matrix/client/v3/directory/list/room/"+url.PathEscape(room.String()), "", nil).Expect(t, 200, "").Body["visibility"]; v != want {
						t.Errorf("directory visibility of %s = %v, want %s", room, v, want)
					}
				}

				// Others follow through the public join rule.
				if _, err := carol.JoinRoomByID(ctx(), repl); err != nil {
					t.Errorf("carol joins the replacement: %v", err)
				}
				if _, err := dave.JoinRoomByID(ctx(), repl); errcode(err) != "M_FORBIDDEN" {
					t.Errorf("banned dave joins the replacement: want M_FORBIDDEN, got %v", err)
				}
			})
		}
	})
}

// TestRoomUpgradeSpace upgrades a space: the type and the children come
// along, and a moderator with the power to send the tombstone may upgrade
// (the new room's power levels then let them do the copy, and end as in
// the old room).
func TestRoomUpgradeSpace(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob := s.Register("alice"), s.Register("bob")
		space := createRoom(t, s, alice, map[string]any{
			"preset": "public_chat", "room_version": "10", "name": "Espace",
			"creation_content": map[string]any{"type": "m.space"},
		})
		child := createRoom(t, s, alice, map[string]any{"preset": "public_chat"})
		s.Do("PUT", roomPath(space, "state", "m.space.child", child.String()), alice.AccessToken,
			map[string]any{"via": []string{serverName}}).Expect(t, 200, "")
		if _, err := bob.JoinRoomByID(ctx(), space); err != nil {
			t.Fatal(err)
		}
		pl := stateContent(t, s, alice, space, "m.room.power_levels", "")
		pl["users"].(map[string]any)[bob.UserID.String()] = 60
		pl["events"].(map[string]any)["m.room.tombstone"] = 60
		s.Do("PUT", roomPath(space, "state", "m.room.power_levels", ""), alice.AccessToken, pl).Expect(t, 200, "")

		repl := upgradeRoom(t, s, bob, space, map[string]any{"new_version": "11"})
		if typ := stateContent(t, s, bob, repl, "m.room.create", "")["type"]; typ != "m.space" {
			t.Errorf("replacement type = %v, want m.space", typ)
		}
		if via := stateContent(t, s, bob, repl, "m.space.child", child.String())["via"]; via == nil {
			t.Errorf("the space child was not carried over")
		}
		users, _ := stateContent(t, s, bob, repl, "m.room.power_levels", "")["users"].(map[string]any)
		if jsonNumber(users[bob.UserID.String()]) != 60 || jsonNumber(users[alice.UserID.String()]) != 100 {
			t.Errorf("final power levels users = %v, want bob back at 60 and alice at 100", users)
		}
	})
}
