package tests

import (
	"net/url"
	"strconv"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// hierarchyPath is the path of a space's hierarchy with query q.
func hierarchyPath(room id.RoomID, q url.Values) string {
	p := "/_matrix/client/v1/rooms/" + url.PathEscape(room.String()) + "/hierarchy"
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	return p
}

// hierarchy pages through a space's hierarchy as c sees it, limit rooms a
// page (0: the server's default), and returns the rooms in order.
func hierarchy(t testing.TB, s *Server, c *mautrix.Client, room id.RoomID, q url.Values, limit int) []map[string]any {
	t.Helper()
	if q == nil {
		q = url.Values{}
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out []map[string]any
	for pages := 0; ; pages++ {
		if pages > 20 {
			t.Fatal("hierarchy: paging does not end")
		}
		r := s.Do("GET", hierarchyPath(room, q), c.AccessToken, nil).Expect(t, 200, "")
		rooms := rawEvents(t, r.Body["rooms"])
		if limit > 0 && len(rooms) > limit {
			t.Fatalf("hierarchy: %d rooms for limit %d", len(rooms), limit)
		}
		out = append(out, rooms...)
		next, _ := r.Body["next_batch"].(string)
		if next == "" {
			return out
		}
		q.Set("from", next)
	}
}

// roomIDs returns the room_id of each entry.
func roomIDs(rooms []map[string]any) []string {
	var out []string
	for _, r := range rooms {
		out = append(out, r["room_id"].(string))
	}
	return out
}

// addChild makes child a child of space with content.
func addChild(t testing.TB, s *Server, c *mautrix.Client, space id.RoomID, child string, content map[string]any) {
	t.Helper()
	s.Do("PUT", roomPath(space, "state", "m.space.child", child), c.AccessToken, content).Expect(t, 200, "")
}

// TestSpaceHierarchy walks a space of public and private rooms, a
// sub-space, a restricted room, a loop, an unknown room and an invalid
// child, as its creator and as others, with paging, max_depth and
// suggested_only, and checks the refusals.
func TestSpaceHierarchy(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob := s.Register("alice"), s.Register("bob")
		space := createRoom(t, s, alice, map[string]any{"preset": "public_chat", "name": "Espace", "topic": "Tout",
			"creation_content": map[string]any{"type": "m.space"}})
		general := createRoom(t, s, alice, map[string]any{"preset": "public_chat", "name": "Général"})
		lounge := createRoom(t, s, alice, map[string]any{"preset": "public_chat", "name": "Salon"})
		secret := createRoom(t, s, alice, map[string]any{"preset": "private_chat", "name": "Secret"})
		sub := createRoom(t, s, alice, map[string]any{"preset": "public_chat", "name": "Sous-espace",
			"creation_content": map[string]any{"type": "m.space"}})
		deep := createRoom(t, s, alice, map[string]any{"preset": "public_chat", "name": "Profond"})
		club := createRoom(t, s, alice, map[string]any{"preset": "private_chat", "name": "Club",
			"initial_state": []map[string]any{{"type": "m.room.join_rules", "content": map[string]any{
				"join_rule": "restricted", "allow": []map[string]any{{"type": "m.room_membership", "room_id": space.String()}},
			}}}})
		via := []string{serverName}
		// Order keys put general after lounge though it was added first.
		addChild(t, s, alice, space, general.String(), map[string]any{"via": via, "order": "b"})
		addChild(t, s, alice, space, secret.String(), map[string]any{"via": via, "order": "c", "suggested": true})
		addChild(t, s, alice, space, lounge.String(), map[string]any{"via": via, "order": "a", "suggested": true})
		addChild(t, s, alice, space, sub.String(), map[string]any{"via": via, "order": "d"})
		addChild(t, s, alice, space, club.String(), map[string]any{"via": via, "order": "e"})
		addChild(t, s, alice, space, "!unknown:"+serverName, map[string]any{"via": via})
		addChild(t, s, alice, space, "!removed:"+serverName, map[string]any{})
		addChild(t, s, alice, sub, deep.String(), map[string]any{"via": via})
		addChild(t, s, alice, sub, space.String(), map[string]any{"via": via}) // a loop

		ids := func(rooms ...id.RoomID) []string {
			var out []string
			for _, r := range rooms {
				out = append(out, r.String())
			}
			return out
		}
		all := ids(space, lounge, general, secret, sub, deep, club)

		// alice, in every room, sees them all, depth first, once each.
		rooms := hierarchy(t, s, alice, space, nil, 0)
		if got := roomIDs(rooms); !sameList(got, all) {
			t.Fatalf("alice's hierarchy = %v, want %v", got, all)
		}
		root := rooms[0]
		if root["room_type"] != "m.space" || root["name"] != "Espace" || root["topic"] != "Tout" ||
			root["join_rule"] != "public" || jsonNumber(root["num_joined_members"]) != 1 ||
			root["world_readable"] != false || root["guest_can_join"] != false {
			t.Errorf("space entry = %v", root)
		}
		children := rawEvents(t, root["children_state"])
		wantChildren := append(ids(lounge, general, secret, sub, club), "!unknown:"+serverName)
		var got []string
		for _, c := range children {
			got = append(got, c["state_key"].(string))
			if c["type"] != "m.space.child" || c["sender"] != alice.UserID.String() || jsonNumber(c["origin_server_ts"]) <= 0 {
				t.Errorf("child event = %v", c)
			}
			if content, _ := c["content"].(map[string]any); content["via"] == nil {
				t.Errorf("child event content = %v", c["content"])
			}
		}
		if !sameList(got, wantChildren) {
			t.Errorf("children_state = %v, want %v", got, wantChildren)
		}
		if cs := rawEvents(t, rooms[1]["children_state"]); len(cs) != 0 || rooms[1]["room_type"] != nil {
			t.Errorf("a plain room's entry: children_state %v, room_type %v", cs, rooms[1]["room_type"])
		}

		// Paging gives the same rooms in the same order.
		if got := roomIDs(hierarchy(t, s, alice, space, nil, 2)); !sameList(got, all) {
			t.Errorf("paged by 2: %v, want %v", got, all)
		}
		// max_depth and suggested_only.
		if got := roomIDs(hierarchy(t, s, alice, space, url.Values{"max_depth": {"0"}}, 0)); !sameList(got, ids(space)) {
			t.Errorf("max_depth 0: %v", got)
		}
		if got := roomIDs(hierarchy(t, s, alice, space, url.Values{"max_depth": {"1"}}, 0)); !sameList(got, ids(space, lounge, general, secret, sub, club)) {
			t.Errorf("max_depth 1: %v", got)
		}
		suggested := hierarchy(t, s, alice, space, url.Values{"suggested_only": {"true"}}, 0)
		if got := roomIDs(suggested); !sameList(got, ids(space, lounge, secret)) {
			t.Errorf("suggested_only: %v", got)
		}

		// bob, in no room, sees the public ones only: not the private
		// room, nor the restricted one until he joins the space.
		if got := roomIDs(hierarchy(t, s, bob, space, nil, 0)); !sameList(got, ids(space, lounge, general, sub, deep)) {
			t.Errorf("bob's hierarchy = %v", got)
		}
		if _, err := bob.JoinRoomByID(ctx(), space); err != nil {
			t.Fatal(err)
		}
		if got := roomIDs(hierarchy(t, s, bob, space, nil, 0)); !sameList(got, ids(space, lounge, general, sub, deep, club)) {
			t.Errorf("bob's hierarchy once in the space = %v", got)
		}

		// Refusals.
		s.Do("GET", hierarchyPath(secret, nil), bob.AccessToken, nil).Expect(t, 403, "M_FORBIDDEN")
		s.Do("GET", hierarchyPath("!unknown:"+serverName, nil), bob.AccessToken, nil).Expect(t, 403, "M_FORBIDDEN")
		s.Do("GET", hierarchyPath(space, url.Values{"limit": {"0"}}), alice.AccessToken, nil).Expect(t, 400, "M_INVALID_PARAM")
		s.Do("GET", hierarchyPath(space, url.Values{"max_depth": {"-1"}}), alice.AccessToken, nil).Expect(t, 400, "M_INVALID_PARAM")
		s.Do("GET", hierarchyPath(space, url.Values{"from": {"nonsense"}}), alice.AccessToken, nil).Expect(t, 400, "M_INVALID_PARAM")
		first := s.Do("GET", hierarchyPath(space, url.Values{"limit": {"1"}}), alice.AccessToken, nil).Expect(t, 200, "")
		next, _ := first.Body["next_batch"].(string)
		if next == "" {
			t.Fatalf("no next_batch after one room of seven: %s", first.Raw)
		}
		s.Do("GET", hierarchyPath(space, url.Values{"from": {next}, "max_depth": {"1"}}), alice.AccessToken, nil).Expect(t, 400, "M_INVALID_PARAM")
		s.Do("GET", hierarchyPath(space, url.Values{"from": {next}, "suggested_only": {"true"}}), alice.AccessToken, nil).Expect(t, 400, "M_INVALID_PARAM")
		s.Do("GET", hierarchyPath(sub, url.Values{"from": {next}}), alice.AccessToken, nil).Expect(t, 400, "M_INVALID_PARAM")
	})
}
