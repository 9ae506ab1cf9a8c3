package tests

import (
	"net/url"
	"sort"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/synapseadmin"
)

// Tests of the room directory: room aliases and the public room list.

// aliasPath is the v3 path of /directory/room/{alias}.
func aliasPath(alias string) string {
	return "/_matrix/client/v3/directory/room/" + url.PathEscape(alias)
}

// listPath is the v3 path of /directory/list/room/{roomId}.
func listPath(room id.RoomID) string {
	return "/_matrix/client/v3/directory/list/room/" + url.PathEscape(string(room))
}

// dirRoom creates a public_chat room of c's with a name and a topic.
func dirRoom(t *testing.T, c *mautrix.Client, name, topic string) id.RoomID {
	t.Helper()
	resp, err := c.CreateRoom(ctx(), &mautrix.ReqCreateRoom{Preset: "public_chat", Name: name, Topic: topic})
	if err != nil {
		t.Fatalf("create room %q: %v", name, err)
	}
	return resp.RoomID
}

// registerAdmin registers a server admin and returns its client.
func registerAdmin(t *testing.T, s *Server, localpart string) *mautrix.Client {
	t.Helper()
	admin := &synapseadmin.Client{Client: s.Client()}
	resp, err := admin.SharedSecretRegister(ctx(), sharedSecret, synapseadmin.ReqSharedSecretRegister{
		Username: localpart, Password: testPassword, Admin: true,
	})
	if err != nil {
		t.Fatalf("register admin %s: %v", localpart, err)
	}
	c := s.Client()
	c.SetCredentials(resp.UserID, resp.AccessToken)
	return c
}

func TestRoomAliases(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob, carol := s.Register("alice"), s.Register("bob"), s.Register("carol")
		room := dirRoom(t, alice, "Salon", "")
		bobsRoom := dirRoom(t, bob, "Chez Bob", "")
		const salon = "#salon:test.local"

		if _, err := alice.CreateAlias(ctx(), salon, room); err != nil {
			t.Fatalf("create alias: %v", err)
		}
		resolved, err := bob.ResolveAlias(ctx(), salon)
		if err != nil || resolved.RoomID != room || len(resolved.Servers) != 1 || resolved.Servers[0] != serverName {
			t.Fatalf("resolve: %+v %v", resolved, err)
		}
		// Resolving needs no access token.
		if r := s.Do("GET", aliasPath(salon), "", nil).Expect(t, 200, ""); r.Body["room_id"] != string(room) {
			t.Fatalf("resolve without token: %s", r.Raw)
		}

		// Refusals.
		s.Do("PUT", aliasPath(salon), bob.AccessToken, map[string]any{"room_id": bobsRoom}).Expect(t, 409, "M_UNKNOWN")
		s.Do("PUT", aliasPath("#salon:other.example"), alice.AccessToken, map[string]any{"room_id": room}).Expect(t, 400, "M_INVALID_PARAM")
		s.Do("PUT", aliasPath("salon"), alice.AccessToken, map[string]any{"room_id": room}).Expect(t, 400, "M_INVALID_PARAM")
		s.Do("PUT", aliasPath("#nowhere:test.local"), alice.AccessToken, map[string]any{"room_id": "!nowhere:test.local"}).Expect(t, 404, "M_NOT_FOUND")
		s.Do("PUT", aliasPath("#nowhere:test.local"), alice.AccessToken, map[string]any{}).Expect(t, 400, "M_MISSING_PARAM")
		s.Do("PUT", aliasPath("#squat:test.local"), bob.AccessToken, map[string]any{"room_id": room}).Expect(t, 403, "M_FORBIDDEN")
		s.Do("PUT", aliasPath("#nobody:test.local"), "", map[string]any{"room_id": room}).Expect(t, 401, "M_MISSING_TOKEN")
		s.Do("GET", aliasPath("#nowhere:test.local"), "", nil).Expect(t, 404, "M_NOT_FOUND")
		s.Do("GET", aliasPath("nowhere"), "", nil).Expect(t, 400, "M_INVALID_PARAM")
		if _, err := bob.ResolveAlias(ctx(), "#nowhere:test.local"); errcode(err) != "M_NOT_FOUND" {
			t.Fatalf("resolve unknown alias: %v", err)
		}

		// A member may add aliases; the room lists them all.
		if _, err := bob.JoinRoomByID(ctx(), room); err != nil {
			t.Fatal(err)
		}
		for _, a := range []id.RoomAlias{"#bobs:test.local", "#bobs-too:test.local"} {
			if _, err := bob.CreateAlias(ctx(), a, room); err != nil {
				t.Fatalf("member creates alias %s: %v", a, err)
			}
		}
		list, err := alice.GetAliases(ctx(), room)
		if want := []id.RoomAlias{"#bobs-too:test.local", "#bobs:test.local", salon}; err != nil || !sameAliases(list.Aliases, want) {
			t.Fatalf("aliases of room: %v %v, want %v", list, err, want)
		}
		// Only members see them, unless the room is world readable.
		s.Do("GET", roomPath(room, "aliases"), carol.AccessToken, nil).Expect(t, 403, "M_FORBIDDEN")
		s.Do("GET", roomPath("!unknown:test.local", "aliases"), carol.AccessToken, nil).Expect(t, 403, "M_FORBIDDEN")
		if _, err := alice.SendStateEvent(ctx(), room, event.StateHistoryVisibility, "",
			map[string]any{"history_visibility": "world_readable"}); err != nil {
			t.Fatal(err)
		}
		if list, err := carol.GetAliases(ctx(), room); err != nil || len(list.Aliases) != 3 {
			t.Fatalf("aliases of a world-readable room for a non-member: %v %v", list, err)
		}

		// Deleting: the creator, a member with power to send
		// m.room.canonical_alias, or an admin; nobody else.
		s.Do("DELETE", aliasPath(salon), bob.AccessToken, nil).Expect(t, 403, "M_FORBIDDEN")
		s.Do("DELETE", aliasPath(salon), carol.AccessToken, nil).Expect(t, 403, "M_FORBIDDEN")
		if _, err := bob.DeleteAlias(ctx(), "#bobs:test.local"); err != nil {
			t.Fatalf("creator deletes alias: %v", err)
		}
		if _, err := alice.DeleteAlias(ctx(), "#bobs-too:test.local"); err != nil {
			t.Fatalf("room admin deletes a member's alias: %v", err)
		}
		if _, err := registerAdmin(t, s, "admin").DeleteAlias(ctx(), salon); err != nil {
			t.Fatalf("server admin deletes alias: %v", err)
		}
		s.Do("DELETE", aliasPath(salon), alice.AccessToken, nil).Expect(t, 404, "M_NOT_FOUND")
		s.Do("DELETE", aliasPath("#salon:other.example"), alice.AccessToken, nil).Expect(t, 400, "M_INVALID_PARAM")
		s.Do("GET", aliasPath(salon), "", nil).Expect(t, 404, "M_NOT_FOUND")
		if list, err := alice.GetAliases(ctx(), room); err != nil || len(list.Aliases) != 0 {
			t.Fatalf("aliases after deletion: %v %v", list, err)
		}
		// A deleted alias is free again, for another room.
		if _, err := bob.CreateAlias(ctx(), salon, bobsRoom); err != nil {
			t.Fatalf("reuse alias: %v", err)
		}

		// However the client escapes the alias.
		s.Do("GET", "/_matrix/client/v3/directory/room/%23salon%3Atest.local", "", nil).Expect(t, 200, "")
		s.Do("GET", "/_matrix/client/r0/directory/room/%23salon:test.local", "", nil).Expect(t, 200, "")

		// Aliases survive a restart.
		s.Restart()
		if resolved, err := alice.ResolveAlias(ctx(), salon); err != nil || resolved.RoomID != bobsRoom {
			t.Fatalf("resolve after restart: %+v %v", resolved, err)
		}
	})
}

func sameAliases(got, want []id.RoomAlias) bool {
	g := make([]string, len(got))
	for i, a := range got {
		g[i] = string(a)
	}
	sort.Strings(g)
	w := make([]string, len(want))
	for i, a := range want {
		w[i] = string(a)
	}
	return sameList(g, w)
}

func TestPublicRoomDirectory(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob := s.Register("alice"), s.Register("bob")
		alpha := dirRoom(t, alice, "Salon Alpha", "on parle de tout")
		beta := dirRoom(t, alice, "Salon Beta", "fromages")
		gamma := dirRoom(t, alice, "Salon Gamma", "")
		secret := dirRoom(t, alice, "Salon secret", "")

		// Visibility: private until published; reading it is open.
		if r := s.Do("GET", listPath(alpha), "", nil).Expect(t, 200, ""); r.Body["visibility"] != "private" {
			t.Fatalf("visibility of a new room: %s", r.Raw)
		}
		s.Do("GET", listPath("!unknown:test.local"), "", nil).Expect(t, 404, "M_NOT_FOUND")
		s.Do("PUT", listPath(alpha), bob.AccessToken, map[string]any{"visibility": "public"}).Expect(t, 403, "M_FORBIDDEN")
		s.Do("PUT", listPath(alpha), alice.AccessToken, map[string]any{"visibility": "visible"}).Expect(t, 400, "M_INVALID_PARAM")
		s.Do("PUT", listPath("!unknown:test.local"), alice.AccessToken, map[string]any{"visibility": "public"}).Expect(t, 404, "M_NOT_FOUND")
		for _, room := range []id.RoomID{alpha, beta, gamma} {
			s.Do("PUT", listPath(room), alice.AccessToken, map[string]any{"visibility": "public"}).Expect(t, 200, "")
		}
		if r := s.Do("GET", listPath(alpha), "", nil).Expect(t, 200, ""); r.Body["visibility"] != "public" {
			t.Fatalf("visibility of a published room: %s", r.Raw)
		}

		// Joined members sort first: beta has two.
		if _, err := bob.JoinRoomByID(ctx(), beta); err != nil {
			t.Fatal(err)
		}
		rest := []string{string(alpha), string(gamma)}
		sort.Strings(rest)
		want := append([]string{string(beta)}, rest...)

		// Paging by 2 with mautrix (GET, open): every published room
		// once, in order, and the secret one never.
		var got []string
		since, pages := "", 0
		for {
			resp, err := s.Client().PublicRooms(ctx(), &mautrix.ReqPublicRooms{Limit: 2, Since: since})
			if err != nil {
				t.Fatalf("public rooms since %q: %v", since, err)
			}
			pages++
			if len(resp.Chunk) > 2 || resp.TotalRoomCountEstimate != 3 {
				t.Fatalf("page %d: %d rooms, total %d", pages, len(resp.Chunk), resp.TotalRoomCountEstimate)
			}
			if (pages > 1) != (resp.PrevBatch != "") {
				t.Fatalf("page %d: prev_batch %q", pages, resp.PrevBatch)
			}
			for _, r := range resp.Chunk {
				got = append(got, string(r.RoomID))
				if r.RoomID == beta && (r.NumJoinedMembers != 2 || r.Name != "Salon Beta" || r.Topic != "fromages" ||
					r.JoinRule != "public" || r.WorldReadable || r.GuestCanJoin) {
					t.Errorf("beta's entry: %+v", r)
				}
			}
			if resp.NextBatch == "" {
				break
			}
			since = resp.NextBatch
		}
		if !sameList(got, want) || pages != 2 {
			t.Fatalf("public rooms: %v in %d pages, want %v in 2", got, pages, want)
		}

		// Search (POST, authenticated) by name, topic or canonical alias,
		// case-insensitively, with paging.
		if _, err := alice.CreateAlias(ctx(), "#alpha-room:test.local", alpha); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.SendStateEvent(ctx(), alpha, event.StateCanonicalAlias, "",
			map[string]any{"alias": "#alpha-room:test.local"}); err != nil {
			t.Fatal(err)
		}
		for term, wantIDs := range map[string][]string{
			"GAMMA":      {string(gamma)},
			"Fromage":    {string(beta)},
			"alpha-ROOM": {string(alpha)},
			"secret":     {},
			"salon":      want,
		} {
			r := s.Do("POST", "/_matrix/client/v3/publicRooms", bob.AccessToken,
				map[string]any{"filter": map[string]any{"generic_search_term": term}}).Expect(t, 200, "")
			if ids := chunkIDs(r); !sameList(ids, wantIDs) || jsonNumber(r.Body["total_room_count_estimate"]) != int64(len(wantIDs)) {
				t.Errorf("search %q: %v, want %v; %s", term, ids, wantIDs, r.Raw)
			}
		}
		p1 := s.Do("POST", "/_matrix/client/v3/publicRooms", bob.AccessToken,
			map[string]any{"limit": 2, "filter": map[string]any{"generic_search_term": "salon"}}).Expect(t, 200, "")
		next, _ := p1.Body["next_batch"].(string)
		p2 := s.Do("POST", "/_matrix/client/v3/publicRooms", bob.AccessToken,
			map[string]any{"limit": 2, "since": next, "filter": map[string]any{"generic_search_term": "salon"}}).Expect(t, 200, "")
		if ids := append(chunkIDs(p1), chunkIDs(p2)...); !sameList(ids, want) || p2.Body["next_batch"] != nil {
			t.Fatalf("search pages: %v, want %v; %s", ids, want, p2.Raw)
		}
		// Back from the second page to the first.
		prev, _ := p2.Body["prev_batch"].(string)
		back := s.Do("POST", "/_matrix/client/v3/publicRooms", bob.AccessToken,
			map[string]any{"limit": 2, "since": prev, "filter": map[string]any{"generic_search_term": "salon"}}).Expect(t, 200, "")
		if ids := chunkIDs(back); !sameList(ids, want[:2]) {
			t.Fatalf("page back: %v, want %v", ids, want[:2])
		}

		// Refusals: POST needs a token; the list of a server this one
		// does not federate with is refused; a made-up token is refused.
		s.Do("POST", "/_matrix/client/v3/publicRooms", "", map[string]any{}).Expect(t, 401, "M_MISSING_TOKEN")
		s.Do("GET", "/_matrix/client/v3/publicRooms?server=other.example", "", nil).Expect(t, 403, "M_FORBIDDEN")
		s.Do("GET", "/_matrix/client/v3/publicRooms?server=test.local", "", nil).Expect(t, 200, "")
		s.Do("GET", "/_matrix/client/v3/publicRooms?since=made-up", "", nil).Expect(t, 400, "M_INVALID_PARAM")
		s.Do("GET", "/_matrix/client/v3/publicRooms?limit=many", "", nil).Expect(t, 400, "M_INVALID_PARAM")

		// Withdrawn rooms leave the list.
		s.Do("PUT", listPath(alpha), alice.AccessToken, map[string]any{"visibility": "private"}).Expect(t, 200, "")
		resp, err := bob.PublicRooms(ctx(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range resp.Chunk {
			ids = append(ids, string(r.RoomID))
		}
		if wantNow := []string{string(beta), string(gamma)}; !sameList(ids, wantNow) {
			t.Fatalf("after withdrawing alpha: %v, want %v", ids, wantNow)
		}
		_ = secret
	})
}

// chunkIDs returns the room ids of a /publicRooms answer, in order.
func chunkIDs(r Response) []string {
	ids := []string{}
	chunk, _ := r.Body["chunk"].([]any)
	for _, c := range chunk {
		room, _ := c.(map[string]any)
		id, _ := room["room_id"].(string)
		ids = append(ids, id)
	}
	return ids
}

// TestCanonicalAliasCheck: an m.room.canonical_alias event may only add
// aliases that point to the room (400 M_BAD_ALIAS) and are valid (400
// M_INVALID_PARAM).
func TestCanonicalAliasCheck(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		room, other := dirRoom(t, alice, "Ici", ""), dirRoom(t, alice, "Ailleurs", "")
		for alias, target := range map[id.RoomAlias]id.RoomID{"#here:test.local": room, "#there:test.local": other} {
			if _, err := alice.CreateAlias(ctx(), alias, target); err != nil {
				t.Fatal(err)
			}
		}
		path := roomPath(room, "state", "m.room.canonical_alias", "")
		for _, c := range []struct {
			content map[string]any
			errcode string
		}{
			{map[string]any{"alias": "#there:test.local"}, "M_BAD_ALIAS"},
			{map[string]any{"alias": "#missing:test.local"}, "M_BAD_ALIAS"},
			{map[string]any{"alias": "#here:other.example"}, "M_BAD_ALIAS"},
			{map[string]any{"alias": "#here:test.local", "alt_aliases": []string{"#there:test.local"}}, "M_BAD_ALIAS"},
			{map[string]any{"alias": "%invalid_aliases"}, "M_INVALID_PARAM"},
			{map[string]any{"alt_aliases": "#here:test.local"}, "M_BAD_JSON"},
		} {
			s.Do("PUT", path, alice.AccessToken, c.content).Expect(t, 400, c.errcode)
		}
		s.Do("PUT", path, alice.AccessToken, map[string]any{"alias": "#here:test.local", "alt_aliases": []string{"#here:test.local"}}).Expect(t, 200, "")
		// Once the mapping is gone, the alias already in the event may stay.
		if _, err := alice.DeleteAlias(ctx(), "#here:test.local"); err != nil {
			t.Fatal(err)
		}
		s.Do("PUT", path, alice.AccessToken, map[string]any{"alias": "#here:test.local"}).Expect(t, 200, "")
	})
}

// TestCreateRoomWithAlias: createRoom's room_alias_name makes the alias
// (and the canonical alias), visibility public publishes the room.
func TestCreateRoomWithAlias(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		resp, err := alice.CreateRoom(ctx(), &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Lobby",
			RoomAliasName: "lobby", Visibility: "public"})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := alice.ResolveAlias(ctx(), "#lobby:test.local"); err != nil || got.RoomID != resp.RoomID {
			t.Fatalf("resolve the new room's alias: %+v %v", got, err)
		}
		if got := stateContent(t, s, alice, resp.RoomID, "m.room.canonical_alias", "")["alias"]; got != "#lobby:test.local" {
			t.Errorf("canonical alias = %v", got)
		}
		if r := s.Do("GET", listPath(resp.RoomID), "", nil).Expect(t, 200, ""); r.Body["visibility"] != "public" {
			t.Errorf("visibility: %s", r.Raw)
		}
		list, err := alice.PublicRooms(ctx(), nil)
		if err != nil || len(list.Chunk) != 1 || list.Chunk[0].RoomID != resp.RoomID || list.Chunk[0].CanonicalAlias != "#lobby:test.local" {
			t.Fatalf("public rooms: %+v %v", list, err)
		}
		// Others join by the alias.
		bob := s.Register("bob")
		if joined, err := bob.JoinRoom(ctx(), "#lobby:test.local", nil); err != nil || joined.RoomID != resp.RoomID {
			t.Fatalf("join by alias: %+v %v", joined, err)
		}
		s.Do("POST", "/_matrix/client/v3/join/"+url.PathEscape("#nowhere:test.local"), bob.AccessToken, map[string]any{}).Expect(t, 404, "M_NOT_FOUND")
		// A private room stays out of the list.
		if _, err := alice.CreateRoom(ctx(), &mautrix.ReqCreateRoom{Preset: "public_chat", Visibility: "private"}); err != nil {
			t.Fatal(err)
		}
		if list, err := alice.PublicRooms(ctx(), nil); err != nil || len(list.Chunk) != 1 {
			t.Fatalf("public rooms after a private room: %+v %v", list, err)
		}
		s.Do("POST", "/_matrix/client/v3/createRoom", alice.AccessToken, map[string]any{"room_alias_name": "lobby"}).Expect(t, 400, "M_ROOM_IN_USE")
		s.Do("POST", "/_matrix/client/v3/createRoom", alice.AccessToken, map[string]any{"room_alias_name": "bad name"}).Expect(t, 400, "M_INVALID_PARAM")
		s.Do("POST", "/_matrix/client/v3/createRoom", alice.AccessToken, map[string]any{"room_alias_name": "a:b"}).Expect(t, 400, "M_INVALID_PARAM")
	})
}
