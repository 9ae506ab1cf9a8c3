package tests

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/synapseadmin"
)

// waitUntil polls cond every 20 ms until it holds, failing the test after
// 15 s; for what the server does after answering (member event updates,
// the user directory's and search's consumers).
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	eventuallyEvery(t, what, 20*time.Millisecond, cond)
}

// profilePath is the path of a user's profile or of one field.
func profilePath(user id.UserID, key ...string) string {
	p := "/_matrix/client/v3/profile/" + url.PathEscape(user.String())
	for _, k := range key {
		p += "/" + url.PathEscape(k)
	}
	return p
}

// setDisplayName sets c's display name through the API.
func setDisplayName(t testing.TB, s *Server, c *mautrix.Client, name string) {
	t.Helper()
	s.Do("PUT", profilePath(c.UserID, "displayname"), c.AccessToken, map[string]any{"displayname": name}).Expect(t, 200, "")
}

func TestProfileFields(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob := s.Register("alice"), s.Register("bob")
		// A new account's name is its localpart, as on Synapse.
		r := s.Do("GET", profilePath(alice.UserID), bob.AccessToken, nil).Expect(t, 200, "")
		if r.Body["displayname"] != "alice" {
			t.Fatalf("new profile: %s", r.Raw)
		}
		setDisplayName(t, s, alice, "Alice Liddell")
		s.Do("PUT", profilePath(alice.UserID, "avatar_url"), alice.AccessToken, map[string]any{"avatar_url": "mxc://test.local/abc"}).Expect(t, 200, "")
		s.Do("PUT", profilePath(alice.UserID, "m.tz"), alice.AccessToken, map[string]any{"m.tz": "Europe/Paris"}).Expect(t, 200, "")
		s.Do("PUT", profilePath(alice.UserID, "org.example.job"), alice.AccessToken, map[string]any{"org.example.job": map[string]any{"title": "engineer"}}).Expect(t, 200, "")
		r = s.Do("GET", profilePath(alice.UserID), bob.AccessToken, nil).Expect(t, 200, "")
		if r.Body["displayname"] != "Alice Liddell" || r.Body["avatar_url"] != "mxc://test.local/abc" || r.Body["m.tz"] != "Europe/Paris" ||
			r.Body["org.example.job"].(map[string]any)["title"] != "engineer" {
			t.Fatalf("profile: %s", r.Raw)
		}
		r = s.Do("GET", profilePath(alice.UserID, "m.tz"), bob.AccessToken, nil).Expect(t, 200, "")
		if len(r.Body) != 1 || r.Body["m.tz"] != "Europe/Paris" {
			t.Fatalf("field: %s", r.Raw)
		}
		s.Do("DELETE", profilePath(alice.UserID, "m.tz"), alice.AccessToken, nil).Expect(t, 200, "")
		s.Do("GET", profilePath(alice.UserID, "m.tz"), bob.AccessToken, nil).Expect(t, 404, "M_NOT_FOUND")

		// Refusals, each changing nothing.
		s.Do("PUT", profilePath(alice.UserID, "displayname"), bob.AccessToken, map[string]any{"displayname": "x"}).Expect(t, 403, "M_FORBIDDEN")
		s.Do("DELETE", profilePath(alice.UserID, "displayname"), bob.AccessToken, nil).Expect(t, 403, "M_FORBIDDEN")
		s.Do("PUT", profilePath(alice.UserID, "displayname"), alice.AccessToken, map[string]any{"name": "x"}).Expect(t, 400, "M_MISSING_PARAM")
		s.Do("PUT", profilePath(alice.UserID, "displayname"), alice.AccessToken, map[string]any{"displayname": "x", "avatar_url": "mxc://a/b"}).Expect(t, 400, "M_BAD_JSON")
		s.Do("PUT", profilePath(alice.UserID, "displayname"), alice.AccessToken, map[string]any{"displayname": 3}).Expect(t, 400, "M_BAD_JSON")
		s.Do("PUT", profilePath(alice.UserID, "avatar_url"), alice.AccessToken, map[string]any{"avatar_url": "https://x/y.png"}).Expect(t, 400, "M_BAD_JSON")
		s.Do("PUT", profilePath(alice.UserID, "m.tz"), alice.AccessToken, map[string]any{"m.tz": "Mars/Olympus"}).Expect(t, 400, "M_BAD_JSON")
		long := strings.Repeat("k", 256)
		s.Do("PUT", profilePath(alice.UserID, long), alice.AccessToken, map[string]any{long: 1}).Expect(t, 400, "M_KEY_TOO_LARGE")
		big := strings.Repeat("x", 40<<10)
		s.Do("PUT", profilePath(alice.UserID, "org.example.a"), alice.AccessToken, map[string]any{"org.example.a": big}).Expect(t, 200, "")
		s.Do("PUT", profilePath(alice.UserID, "org.example.b"), alice.AccessToken, map[string]any{"org.example.b": big}).Expect(t, 400, "M_PROFILE_TOO_LARGE")
		s.Do("GET", profilePath(alice.UserID, "org.example.b"), bob.AccessToken, nil).Expect(t, 404, "M_NOT_FOUND")
		// Replacing a field counts it once.
		s.Do("PUT", profilePath(alice.UserID, "org.example.a"), alice.AccessToken, map[string]any{"org.example.a": big + "y"}).Expect(t, 200, "")
		r = s.Do("GET", profilePath(alice.UserID, "displayname"), bob.AccessToken, nil).Expect(t, 200, "")
		if r.Body["displayname"] != "Alice Liddell" {
			t.Fatalf("a refused change changed the profile: %s", r.Raw)
		}

		// The shared-secret endpoint's displayname is the first name.
		admin := &synapseadmin.Client{Client: s.Client()}
		resp, err := admin.SharedSecretRegister(ctx(), sharedSecret, synapseadmin.ReqSharedSecretRegister{
			Username: "carol", Password: testPassword, Displayname: "Carol Ann",
		})
		if err != nil {
			t.Fatal(err)
		}
		r = s.Do("GET", profilePath(resp.UserID, "displayname"), bob.AccessToken, nil).Expect(t, 200, "")
		if r.Body["displayname"] != "Carol Ann" {
			t.Fatalf("shared-secret displayname: %s", r.Raw)
		}

		// Unknown and remote users: 404 (remote profiles need federation).
		s.Do("GET", profilePath("@nobody:test.local"), bob.AccessToken, nil).Expect(t, 404, "M_NOT_FOUND")
		s.Do("GET", profilePath("@alice:other.example"), bob.AccessToken, nil).Expect(t, 404, "M_NOT_FOUND")

		r = s.Do("GET", "/_matrix/client/v3/capabilities", bob.AccessToken, nil).Expect(t, 200, "")
		caps := r.Body["capabilities"].(map[string]any)
		for _, c := range []string{"m.profile_fields", "m.set_displayname", "m.set_avatar_url"} {
			if caps[c].(map[string]any)["enabled"] != true {
				t.Errorf("capability %s: %v", c, caps[c])
			}
		}
	})
}

// memberContent returns user's member event content in room, as c reads it.
func memberContent(t testing.TB, s *Server, c *mautrix.Client, room id.RoomID, user id.UserID) map[string]any {
	t.Helper()
	return stateContent(t, s, c, room, "m.room.member", user.String())
}

func TestProfileChangeReachesEveryRoom(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob := s.Register("alice"), s.Register("bob")
		var rooms []id.RoomID
		for i := 0; i < 4; i++ {
			rooms = append(rooms, createRoom(t, s, alice, map[string]any{"preset": "public_chat", "name": fmt.Sprint("room ", i)}))
		}
		// Joins carry the profile, the creator's included.
		if _, err := bob.JoinRoomByID(ctx(), rooms[0]); err != nil {
			t.Fatal(err)
		}
		if c := memberContent(t, s, bob, rooms[0], alice.UserID); c["displayname"] != "alice" {
			t.Fatalf("creator's join: %v", c)
		}
		if c := memberContent(t, s, alice, rooms[0], bob.UserID); c["displayname"] != "bob" {
			t.Fatalf("bob's join: %v", c)
		}
		// Alice leaves the last room: it must keep her old name.
		if _, err := alice.LeaveRoom(ctx(), rooms[3]); err != nil {
			t.Fatal(err)
		}

		setDisplayName(t, s, alice, "Alice Liddell")
		s.Do("PUT", profilePath(alice.UserID, "avatar_url"), alice.AccessToken, map[string]any{"avatar_url": "mxc://test.local/alice"}).Expect(t, 200, "")
		for _, room := range rooms[:3] {
			waitUntil(t, "member event of "+room.String(), func() bool {
				c := memberContent(t, s, alice, room, alice.UserID)
				return c["displayname"] == "Alice Liddell" && c["avatar_url"] == "mxc://test.local/alice" && c["membership"] == "join"
			})
		}
		c := stateContent(t, s, alice, rooms[3], "m.room.member", alice.UserID.String())
		if c["membership"] != "leave" || c["displayname"] == "Alice Liddell" {
			t.Fatalf("the room alice left got her new name: %v", c)
		}
		// Bob sees the change in /members of the room they share.
		waitUntil(t, "bob sees the name", func() bool {
			r := s.Do("GET", roomPath(rooms[0], "joined_members"), bob.AccessToken, nil).Expect(t, 200, "")
			m, _ := r.Body["joined"].(map[string]any)[alice.UserID.String()].(map[string]any)
			return m["display_name"] == "Alice Liddell"
		})
		// Removing the avatar removes it from the member events.
		s.Do("DELETE", profilePath(alice.UserID, "avatar_url"), alice.AccessToken, nil).Expect(t, 200, "")
		waitUntil(t, "avatar removed", func() bool {
			_, has := memberContent(t, s, alice, rooms[1], alice.UserID)["avatar_url"]
			return !has
		})
	})
}
