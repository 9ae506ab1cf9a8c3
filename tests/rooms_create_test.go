package tests

import (
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/matrix-gouv/homeserver/config"
)

// TestCreateRoomPresets creates a room with each preset in room versions
// 10, 11 and 12 and checks the state it starts with: creator power (in
// power_levels.users before 12, in the create event from 12 on), join
// rules, history visibility, guest access, name, topic, initial_state,
// invites (with is_direct) and, for trusted_private_chat, the invitees'
// creator power.
func TestCreateRoomPresets(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob := s.Register("alice"), s.Register("bob")
		for _, version := range []string{"10", "11", "12"} {
			for _, tc := range []struct {
				preset, joinRule, guestAccess string
				trusted, everyoneInvites      bool
			}{
				{"private_chat", "invite", "can_join", false, true},
				{"trusted_private_chat", "invite", "can_join", true, true},
				{"public_chat", "public", "forbidden", false, false},
			} {
				t.Run(tc.preset+" v"+version, func(t *testing.T) {
					room := createRoom(t, s, alice, map[string]any{
						"preset": tc.preset, "room_version": version,
						"name": "Le salon", "topic": "De tout et de rien",
						"invite": []string{bob.UserID.String()}, "is_direct": true,
						"initial_state": []map[string]any{
							{"type": "com.example.setting", "state_key": "k", "content": map[string]any{"on": true}},
						},
					})
					create := stateContent(t, s, alice, room, "m.room.create", "")
					if create["room_version"] != version {
						t.Errorf("create event room_version = %v, want %s", create["room_version"], version)
					}
					if version == "10" && create["creator"] != alice.UserID.String() {
						t.Errorf("v10 create event creator = %v", create["creator"])
					}
					if got := stateContent(t, s, alice, room, "m.room.join_rules", "")["join_rule"]; got != tc.joinRule {
						t.Errorf("join_rule = %v, want %s", got, tc.joinRule)
					}
					if got := stateContent(t, s, alice, room, "m.room.history_visibility", "")["history_visibility"]; got != "shared" {
						t.Errorf("history_visibility = %v, want shared", got)
					}
					if got := stateContent(t, s, alice, room, "m.room.guest_access", "")["guest_access"]; got != tc.guestAccess {
						t.Errorf("guest_access = %v, want %s", got, tc.guestAccess)
					}
					if got := stateContent(t, s, alice, room, "m.room.name", "")["name"]; got != "Le salon" {
						t.Errorf("name = %v", got)
					}
					if got := stateContent(t, s, alice, room, "m.room.topic", "")["topic"]; got != "De tout et de rien" {
						t.Errorf("topic = %v", got)
					}
					if got := stateContent(t, s, alice, room, "com.example.setting", "k")["on"]; got != true {
						t.Errorf("initial_state event content on = %v", got)
					}
					member := stateContent(t, s, alice, room, "m.room.member", bob.UserID.String())
					if member["membership"] != "invite" || member["is_direct"] != true {
						t.Errorf("bob's member event = %v, want an invite with is_direct", member)
					}

					pl := stateContent(t, s, alice, room, "m.room.power_levels", "")
					users, _ := pl["users"].(map[string]any)
					events, _ := pl["events"].(map[string]any)
					additional, _ := create["additional_creators"].([]any)
					if version == "12" {
						if _, listed := users[alice.UserID.String()]; listed {
							t.Errorf("v12: the creator is listed in power_levels.users: %v", users)
						}
						if _, listed := users[bob.UserID.String()]; listed {
							t.Errorf("v12: an invitee is listed in power_levels.users: %v", users)
						}
						if jsonNumber(events["m.room.tombstone"]) != 150 {
							t.Errorf("v12: m.room.tombstone level = %v, want 150", events["m.room.tombstone"])
						}
						wantAdditional := 0
						if tc.trusted {
							wantAdditional = 1
						}
						if len(additional) != wantAdditional || (wantAdditional == 1 && additional[0] != bob.UserID.String()) {
							t.Errorf("v12 additional_creators = %v, want %d (bob)", additional, wantAdditional)
						}
					} else {
						if jsonNumber(users[alice.UserID.String()]) != 100 {
							t.Errorf("creator power = %v, want 100 (users %v)", users[alice.UserID.String()], users)
						}
						bobPower := jsonNumber(users[bob.UserID.String()])
						if tc.trusted && bobPower != 100 {
							t.Errorf("trusted_private_chat: invitee power = %d, want 100", bobPower)
						}
						if !tc.trusted && bobPower != -1 {
							t.Errorf("%s: invitee listed with power %d", tc.preset, bobPower)
						}
						if additional != nil {
							t.Errorf("v%s: additional_creators = %v", version, additional)
						}
					}
					wantInvite := int64(50)
					if tc.everyoneInvites {
						wantInvite = 0
					}
					if jsonNumber(pl["invite"]) != wantInvite {
						t.Errorf("invite level = %v, want %d", pl["invite"], wantInvite)
					}

					// The invitee joins: the invite was a real one.
					if _, err := bob.JoinRoomByID(ctx(), room); err != nil {
						t.Fatalf("bob joins: %v", err)
					}
					if tc.trusted && version == "12" {
						// bob is a creator: he may change the power levels.
						if _, err := bob.SendStateEvent(ctx(), room, event.StatePowerLevels, "", map[string]any{"users": map[string]any{}}); err != nil {
							t.Errorf("v12 additional creator setting power levels: %v", err)
						}
					}
				})
			}
		}
	})
}

// TestCreateRoomOptions covers the defaults and the power level override.
func TestCreateRoomOptions(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, carol := s.Register("alice"), s.Register("carol")
		t.Run("default version and preset", func(t *testing.T) {
			resp, err := alice.CreateRoom(ctx(), &mautrix.ReqCreateRoom{})
			if err != nil {
				t.Fatal(err)
			}
			if v := stateContent(t, s, alice, resp.RoomID, "m.room.create", "")["room_version"]; v != "12" {
				t.Errorf("default room version = %v, want 12", v)
			}
			if jr := stateContent(t, s, alice, resp.RoomID, "m.room.join_rules", "")["join_rule"]; jr != "invite" {
				t.Errorf("default preset join_rule = %v, want invite", jr)
			}
			room := createRoom(t, s, alice, map[string]any{"visibility": "public"})
			if jr := stateContent(t, s, alice, room, "m.room.join_rules", "")["join_rule"]; jr != "public" {
				t.Errorf("public visibility: join_rule = %v, want public", jr)
			}
		})
		t.Run("override in v12 leaves the creator out", func(t *testing.T) {
			room := createRoom(t, s, alice, map[string]any{
				"room_version": "12",
				"power_level_content_override": map[string]any{
					"users":          map[string]any{alice.UserID.String(): 100, carol.UserID.String(): 50},
					"events_default": 20,
				},
			})
			pl := stateContent(t, s, alice, room, "m.room.power_levels", "")
			users, _ := pl["users"].(map[string]any)
			if _, listed := users[alice.UserID.String()]; listed || jsonNumber(users[carol.UserID.String()]) != 50 {
				t.Errorf("users = %v, want carol 50 and no creator", users)
			}
			if jsonNumber(pl["events_default"]) != 20 || jsonNumber(pl["state_default"]) != 50 {
				t.Errorf("override not merged over the defaults: %v", pl)
			}
		})
		t.Run("override in v11 keeps the creator only if it says so", func(t *testing.T) {
			room := createRoom(t, s, alice, map[string]any{
				"room_version":                 "11",
				"power_level_content_override": map[string]any{"users": map[string]any{alice.UserID.String(): 100, carol.UserID.String(): 75}},
			})
			users, _ := stateContent(t, s, alice, room, "m.room.power_levels", "")["users"].(map[string]any)
			if jsonNumber(users[alice.UserID.String()]) != 100 || jsonNumber(users[carol.UserID.String()]) != 75 {
				t.Errorf("users = %v", users)
			}
			// An override that leaves the creator powerless makes the rest
			// of the initial state fail the auth rules: the spec's 400.
			s.Do("POST", "/_matrix/client/v3/createRoom", alice.AccessToken, map[string]any{
				"room_version":                 "11",
				"power_level_content_override": map[string]any{"users": map[string]any{carol.UserID.String(): 100}},
			}).Expect(t, 400, "M_INVALID_ROOM_STATE")
		})
		t.Run("initial_state power levels are the base", func(t *testing.T) {
			room := createRoom(t, s, alice, map[string]any{
				"room_version": "12",
				"initial_state": []map[string]any{{"type": "m.room.power_levels", "content": map[string]any{
					"users": map[string]any{carol.UserID.String(): 10}, "state_default": 0, "events": map[string]any{},
				}}},
				"power_level_content_override": map[string]any{"kick": 99},
			})
			pl := stateContent(t, s, alice, room, "m.room.power_levels", "")
			if jsonNumber(pl["state_default"]) != 0 || jsonNumber(pl["kick"]) != 99 {
				t.Errorf("power levels = %v", pl)
			}
		})
		t.Run("initial_state overrides the preset", func(t *testing.T) {
			room := createRoom(t, s, alice, map[string]any{
				"preset": "public_chat",
				"initial_state": []map[string]any{
					{"type": "m.room.history_visibility", "content": map[string]any{"history_visibility": "joined"}},
					{"type": "m.room.name", "content": map[string]any{"name": "overridden"}},
				},
				"name": "final",
			})
			if hv := stateContent(t, s, alice, room, "m.room.history_visibility", "")["history_visibility"]; hv != "joined" {
				t.Errorf("history_visibility = %v, want joined", hv)
			}
			if name := stateContent(t, s, alice, room, "m.room.name", "")["name"]; name != "final" {
				t.Errorf("name = %v, want the name parameter's", name)
			}
		})
		t.Run("refusals", func(t *testing.T) {
			for _, tc := range []struct {
				name    string
				body    any
				status  int
				errcode string
			}{
				{"unknown room version", map[string]any{"room_version": "99"}, 400, "M_UNSUPPORTED_ROOM_VERSION"},
				{"room alias with a colon", map[string]any{"room_alias_name": "sa:lon"}, 400, "M_INVALID_PARAM"},
				{"unknown preset", map[string]any{"preset": "party"}, 400, "M_INVALID_PARAM"},
				{"bad visibility", map[string]any{"visibility": "secret"}, 400, "M_INVALID_PARAM"},
				{"invalid invitee", map[string]any{"invite": []string{"bob"}}, 400, "M_INVALID_PARAM"},
				{"remote invitee", map[string]any{"invite": []string{"@bob:elsewhere.example"}}, 403, "M_FORBIDDEN"},
				{"initial state content not an object", map[string]any{"initial_state": []map[string]any{{"type": "x", "content": 3}}}, 400, "M_BAD_JSON"},
				{"name not a string", map[string]any{"name": 3}, 400, "M_BAD_JSON"},
				{"not JSON", `{"name":`, 400, "M_NOT_JSON"},
				{"bad additional creators", map[string]any{"creation_content": map[string]any{"additional_creators": []string{"nope"}}}, 400, "M_INVALID_PARAM"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					s.Do("POST", "/_matrix/client/v3/createRoom", alice.AccessToken, tc.body).Expect(t, tc.status, tc.errcode)
				})
			}
		})
	})
}

// TestCreateRoomConfiguredDefaultVersion checks that
// global.default_room_version picks the version of new rooms.
func TestCreateRoomConfiguredDefaultVersion(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		room := createRoom(t, s, alice, map[string]any{})
		if v := stateContent(t, s, alice, room, "m.room.create", "")["room_version"]; v != "10" {
			t.Errorf("room version = %v, want the configured 10", v)
		}
		users, _ := stateContent(t, s, alice, room, "m.room.power_levels", "")["users"].(map[string]any)
		if jsonNumber(users[string(alice.UserID)]) != 100 {
			t.Errorf("v10 creator power: %v", users)
		}
	}, func(c *config.Config) { c.Global.DefaultRoomVersion = "10" })
}
