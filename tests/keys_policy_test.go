package tests

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/matrix-gouv/homeserver/config"
)

// TestEncryptionPolicyDefault: new private rooms are encrypted, public
// ones are not, and encryption once on cannot be changed, dropped or
// redacted.
func TestEncryptionPolicyDefault(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		encryption := func(room string) Response {
			return s.Do("GET", "/_matrix/client/v3/rooms/"+room+"/state/m.room.encryption/", alice.AccessToken, nil)
		}
		for _, tc := range []struct {
			name      string
			body      map[string]any
			encrypted bool
		}{
			{"private_chat", map[string]any{"preset": "private_chat"}, true},
			{"trusted_private_chat", map[string]any{"preset": "trusted_private_chat"}, true},
			{"no preset, private", map[string]any{}, true},
			{"public_chat", map[string]any{"preset": "public_chat"}, false},
			{"private preset made public", map[string]any{"preset": "private_chat", "initial_state": []map[string]any{
				{"type": "m.room.join_rules", "state_key": "", "content": map[string]any{"join_rule": "public"}}}}, false},
		} {
			room := createRoom(t, s, alice, tc.body).String()
			r := encryption(room)
			if tc.encrypted && (r.Status != 200 || r.Body["algorithm"] != "m.megolm.v1.aes-sha2") {
				t.Errorf("%s: not encrypted: %d %s", tc.name, r.Status, r.Raw)
			}
			if !tc.encrypted && r.Status != http.StatusNotFound {
				t.Errorf("%s: encrypted: %d %s", tc.name, r.Status, r.Raw)
			}
		}
		v := s.Do("GET", "/_matrix/client/versions", "", nil).Expect(t, 200, "")
		if _, forced := v.Body["unstable_features"].(map[string]any)["io.element.e2ee_forced.private"]; forced {
			t.Errorf("e2ee_forced advertised without the forced policy: %s", v.Raw)
		}

		room := createRoom(t, s, alice, map[string]any{"preset": "private_chat"})
		cur := encryption(room.String())
		statePath := roomPath(room, "state", "m.room.encryption", "")
		s.Do("PUT", statePath, alice.AccessToken, map[string]any{"algorithm": "m.megolm.v1.aes-sha2", "rotation_period_ms": 604800000}).
			Expect(t, 200, "")
		s.Do("PUT", statePath, alice.AccessToken, map[string]any{"algorithm": "none"}).Expect(t, 403, "M_FORBIDDEN")
		s.Do("PUT", statePath, alice.AccessToken, map[string]any{}).Expect(t, 403, "M_FORBIDDEN")
		if cur.Status != 200 {
			t.Fatalf("encryption state: %s", cur.Raw)
		}
		stateEvent := s.Do("GET", roomPath(room, "state"), alice.AccessToken, nil).Expect(t, 200, "")
		var state []map[string]any
		if err := json.Unmarshal(stateEvent.Raw, &state); err != nil {
			t.Fatal(err)
		}
		var encID string
		for _, ev := range state {
			if ev["type"] == "m.room.encryption" {
				encID, _ = ev["event_id"].(string)
			}
		}
		if encID == "" {
			t.Fatalf("no m.room.encryption in state: %s", stateEvent.Raw)
		}
		s.Do("PUT", roomPath(room, "redact", encID, "r1"), alice.AccessToken, map[string]any{}).Expect(t, 403, "M_FORBIDDEN")
		s.Do("PUT", roomPath(room, "send", "m.room.redaction", "r2"), alice.AccessToken, map[string]any{"redacts": encID}).
			Expect(t, 403, "M_FORBIDDEN")
		if r := encryption(room.String()); r.Status != 200 || r.Body["algorithm"] != "m.megolm.v1.aes-sha2" {
			t.Fatalf("encryption after refused changes: %s", r.Raw)
		}
		// An unencrypted room may still be encrypted later.
		pub := createRoom(t, s, alice, map[string]any{"preset": "public_chat"})
		s.Do("PUT", roomPath(pub, "state", "m.room.encryption", ""), alice.AccessToken, map[string]any{"algorithm": "m.megolm.v1.aes-sha2"}).
			Expect(t, 200, "")
	})
}

// TestEncryptionPolicyForcedAndOptional: "forced" is advertised to
// Element and refuses another algorithm at creation; "optional" adds
// nothing.
func TestEncryptionPolicyForcedAndOptional(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		v := s.Do("GET", "/_matrix/client/versions", "", nil).Expect(t, 200, "")
		u := v.Body["unstable_features"].(map[string]any)
		if u["io.element.e2ee_forced.private"] != true || u["io.element.e2ee_forced.trusted_private"] != true || u["io.element.e2ee_forced.public"] != false {
			t.Fatalf("unstable features: %s", v.Raw)
		}
		s.Do("POST", "/_matrix/client/v3/createRoom", alice.AccessToken, map[string]any{"preset": "private_chat", "initial_state": []map[string]any{
			{"type": "m.room.encryption", "state_key": "", "content": map[string]any{"algorithm": "none"}}}}).Expect(t, 403, "M_FORBIDDEN")
		room := createRoom(t, s, alice, map[string]any{"preset": "private_chat"})
		s.Do("GET", roomPath(room, "state", "m.room.encryption", ""), alice.AccessToken, nil).Expect(t, 200, "")
	}, func(c *config.Config) { c.Client.Encryption.PrivateRooms = config.PrivateRoomsForced })

	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		room := createRoom(t, s, alice, map[string]any{"preset": "private_chat"})
		s.Do("GET", roomPath(room, "state", "m.room.encryption", ""), alice.AccessToken, nil).Expect(t, 404, "M_NOT_FOUND")
	}, func(c *config.Config) { c.Client.Encryption.PrivateRooms = config.PrivateRoomsOptional })
}
