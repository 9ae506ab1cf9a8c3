package tests

import (
	"net/url"
	"testing"
)

func TestRoomSummary(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob := s.Register("alice"), s.Register("bob")
		public := createRoom(t, s, alice, map[string]any{"preset": "public_chat", "name": "Lobby", "topic": "Say hello", "room_alias_name": "lobby"})
		private := createRoom(t, s, alice, map[string]any{"preset": "private_chat", "name": "Secret"})
		summary := func(token, idOrAlias string) Response {
			return s.Do("GET", "/_matrix/client/v1/room_summary/"+url.PathEscape(idOrAlias), token, nil)
		}
		for _, which := range []string{public.String(), "#lobby:" + serverName} {
			r := summary(bob.AccessToken, which).Expect(t, 200, "")
			if r.Body["room_id"] != public.String() || r.Body["name"] != "Lobby" || r.Body["topic"] != "Say hello" ||
				r.Body["join_rule"] != "public" || r.Body["num_joined_members"] != float64(1) || r.Body["room_version"] != "12" ||
				r.Body["canonical_alias"] != "#lobby:"+serverName {
				t.Fatalf("summary of %s: %s", which, r.Raw)
			}
			if _, has := r.Body["membership"]; has {
				t.Fatalf("bob has no membership: %s", r.Raw)
			}
		}
		// A private room: not for outsiders; its members see its encryption.
		summary(bob.AccessToken, private.String()).Expect(t, 404, "M_NOT_FOUND")
		r := summary(alice.AccessToken, private.String()).Expect(t, 200, "")
		if r.Body["membership"] != "join" || r.Body["encryption"] != "m.megolm.v1.aes-sha2" || r.Body["join_rule"] != "invite" {
			t.Fatalf("member's summary: %s", r.Raw)
		}
		summary(bob.AccessToken, "!nowhere:"+serverName).Expect(t, 404, "M_NOT_FOUND")
		summary(bob.AccessToken, "#nothing:"+serverName).Expect(t, 404, "M_NOT_FOUND")
		summary(bob.AccessToken, "lobby").Expect(t, 400, "M_INVALID_PARAM")
	})
}
