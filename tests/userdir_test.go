package tests

import (
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

// searchUsers returns the user ids c finds for term, and limited.
func searchUsers(t testing.TB, s *Server, c *mautrix.Client, term string, limit int) ([]string, bool) {
	t.Helper()
	r := s.Do("POST", "/_matrix/client/v3/user_directory/search", c.AccessToken, map[string]any{"search_term": term, "limit": limit}).Expect(t, 200, "")
	var ids []string
	for _, res := range r.Body["results"].([]any) {
		ids = append(ids, res.(map[string]any)["user_id"].(string))
	}
	limited, _ := r.Body["limited"].(bool)
	return ids, limited
}

// finds reports whether c's search for term finds user.
func finds(t testing.TB, s *Server, c *mautrix.Client, term string, user id.UserID) bool {
	t.Helper()
	ids, _ := searchUsers(t, s, c, term, 50)
	for _, u := range ids {
		if u == user.String() {
			return true
		}
	}
	return false
}

func TestUserDirectory(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob, carol, dave, erin := s.Register("alice"), s.Register("bob"), s.Register("carol"), s.Register("dave"), s.Register("erin")
		shared := createRoom(t, s, alice, map[string]any{"preset": "private_chat", "invite": []string{bob.UserID.String(), dave.UserID.String()}})
		for _, c := range []*mautrix.Client{bob, dave} {
			if _, err := c.JoinRoomByID(ctx(), shared); err != nil {
				t.Fatal(err)
			}
		}
		// Erin is alone in a public room: found by everyone.
		createRoom(t, s, erin, map[string]any{"preset": "public_chat"})

		// Found by a display name prefix after a profile change.
		setDisplayName(t, s, bob, "Robert Durand")
		waitUntil(t, "bob found by name", func() bool { return finds(t, s, alice, "rob", bob.UserID) })
		for _, term := range []string{"Robert", "dur", "robert dur", "ROBERT DURAND", "bob"} {
			if !finds(t, s, alice, term, bob.UserID) {
				t.Errorf("%q does not find bob", term)
			}
		}
		for _, term := range []string{"bert", "durand zed", "alfred"} {
			if finds(t, s, alice, term, bob.UserID) {
				t.Errorf("%q finds bob", term)
			}
		}
		// Accents and case do not matter.
		setDisplayName(t, s, dave, "Élodie Dupré")
		waitUntil(t, "dave found without accents", func() bool { return finds(t, s, alice, "elodie dupre", dave.UserID) })
		waitUntil(t, "erin found through her public room", func() bool { return finds(t, s, alice, "erin", erin.UserID) })

		// Carol shares no room: not found.
		if finds(t, s, alice, "carol", carol.UserID) {
			t.Fatal("carol found though she shares no room with alice")
		}

		// A hidden user is not found; shown again once they say so.
		if err := dave.SetAccountData(ctx(), "im.vector.hide_profile", map[string]any{"hide_profile": true}); err != nil {
			t.Fatal(err)
		}
		if finds(t, s, alice, "elodie", dave.UserID) {
			t.Fatal("hidden user found")
		}
		if err := dave.SetAccountData(ctx(), "im.vector.hide_profile", map[string]any{"hide_profile": false}); err != nil {
			t.Fatal(err)
		}
		if !finds(t, s, alice, "elodie", dave.UserID) {
			t.Fatal("user found again after showing")
		}

		// Bob leaves: alice no longer shares a room with him.
		if _, err := bob.LeaveRoom(ctx(), shared); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "bob gone after leaving", func() bool { return !finds(t, s, alice, "robert", bob.UserID) })

		// A deactivated user is gone.
		s.Do("POST", "/_matrix/client/v3/account/deactivate", erin.AccessToken, map[string]any{
			"auth": map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "erin"}, "password": testPassword},
		}).Expect(t, 200, "")
		if finds(t, s, alice, "erin", erin.UserID) {
			t.Fatal("deactivated user found")
		}

		s.Do("POST", "/_matrix/client/v3/user_directory/search", alice.AccessToken, map[string]any{"limit": 3}).Expect(t, 400, "M_MISSING_PARAM")
		s.Do("POST", "/_matrix/client/v3/user_directory/search", alice.AccessToken, map[string]any{"search_term": "a", "limit": -1}).Expect(t, 400, "M_INVALID_PARAM")
	})
}

func TestUserDirectorySearchAllAndRanking(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		searcher := s.Register("searcher")
		names := map[string]string{"ann": "Ann", "anna": "Anna", "annabel": "Annabel Lee", "joe": "Joe Ann"}
		users := map[string]*mautrix.Client{}
		for lp, name := range names {
			users[lp] = s.Register(lp)
			setDisplayName(t, s, users[lp], name)
		}
		hidden := s.Register("annie")
		if err := hidden.SetAccountData(ctx(), "im.vector.hide_profile", map[string]any{"hide_profile": true}); err != nil {
			t.Fatal(err)
		}
		// Nobody shares a room with searcher, yet everyone local is found
		// (but the hidden one): exact name first, then exact words, then
		// prefixes, each by name.
		ids, limited := searchUsers(t, s, searcher, "ann", 10)
		want := []string{"@ann:test.local", "@joe:test.local", "@anna:test.local", "@annabel:test.local"}
		if !sameList(ids, want) || limited {
			t.Fatalf("got %v (limited %v), want %v", ids, limited, want)
		}
		ids, limited = searchUsers(t, s, searcher, "ann", 2)
		if !sameList(ids, want[:2]) || !limited {
			t.Fatalf("limit 2: got %v (limited %v)", ids, limited)
		}
	}, func(c *config.Config) { c.Client.UserDirectory.SearchAllUsers = true })
}

// TestUserDirectoryBackfill: a directory that knows no room (a server
// older than it) is filled from the roomserver at start.
func TestUserDirectoryBackfill(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob := s.Register("alice"), s.Register("bob")
		room := createRoom(t, s, alice, map[string]any{"preset": "private_chat", "invite": []string{bob.UserID.String()}})
		if _, err := bob.JoinRoomByID(ctx(), room); err != nil {
			t.Fatal(err)
		}
		setDisplayName(t, s, bob, "Zed")
		waitUntil(t, "bob found", func() bool { return finds(t, s, alice, "zed", bob.UserID) })
		s.Stop()
		db := storagetest.Open(t, s.Cfg.Database.URL)
		if _, err := db.Read().ExecContext(ctx(), `DELETE FROM user_directory_rooms`); err != nil {
			t.Fatal(err)
		}
		db.Close()
		s.Restart()
		if !finds(t, s, alice, "zed", bob.UserID) {
			t.Fatal("bob not found after the backfill")
		}
	})
}
