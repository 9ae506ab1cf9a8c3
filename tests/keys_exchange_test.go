package tests

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"maunium.net/go/mautrix/crypto/goolm/session"
	"maunium.net/go/mautrix/id"

	dbstorage "github.com/matrix-gouv/homeserver/internal/storage"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

// TestE2EEExchangeLeavesNoPlaintext: Alice shares a Megolm session with
// both of Bob's devices over Olm (keys claimed through the server, the
// room key sent with sendToDevice), sends a Megolm-encrypted message in an
// encrypted room and backs the session up; both of Bob's devices decrypt
// the message. Then every table of the database is read: neither the
// message nor the session key appears anywhere.
func TestE2EEExchangeLeavesNoPlaintext(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := newOlmDevice(t, s.Register("alice"))
		bob1 := newOlmDevice(t, s.Register("bob"))
		bob2 := newOlmDevice(t, s.Login(bob1.c.UserID))
		for _, d := range []*olmDevice{alice, bob1, bob2} {
			d.upload(s, 3)
		}
		room := createRoom(t, s, alice.c, map[string]any{
			"preset": "private_chat", "invite": []string{bob1.c.UserID.String()},
			"initial_state": []map[string]any{{"type": "m.room.encryption", "state_key": "", "content": map[string]any{"algorithm": "m.megolm.v1.aes-sha2"}}},
		})
		s.Do("POST", roomPath(room, "join"), bob1.token(), map[string]any{}).Expect(t, 200, "")

		// Alice's outbound Megolm session and its room key.
		const secret = "Le rendez-vous est à 15 h au ministère"
		megolm, err := session.NewMegolmOutboundSession()
		if err != nil {
			t.Fatal(err)
		}
		sessionKey := megolm.Key()
		roomKey := map[string]any{"algorithm": "m.megolm.v1.aes-sha2", "room_id": room.String(),
			"session_id": megolm.ID().String(), "session_key": sessionKey}

		// Alice finds Bob's devices, claims a key for each and sends each
		// the room key over Olm.
		q := s.Do("POST", "/_matrix/client/v3/keys/query", alice.token(), map[string]any{"device_keys": map[string]any{bob1.c.UserID.String(): []string{}}}).
			Expect(t, 200, "")
		bobDevices := q.Body["device_keys"].(map[string]any)[bob1.c.UserID.String()].(map[string]any)
		if len(bobDevices) != 2 {
			t.Fatalf("bob's devices: %s", q.Raw)
		}
		claims := map[string]any{}
		for dev := range bobDevices {
			claims[dev] = "signed_curve25519"
		}
		cl := s.Do("POST", "/_matrix/client/v3/keys/claim", alice.token(), map[string]any{"one_time_keys": map[string]any{bob1.c.UserID.String(): claims}}).
			Expect(t, 200, "")
		claimed := cl.Body["one_time_keys"].(map[string]any)[bob1.c.UserID.String()].(map[string]any)
		messages := map[string]any{}
		for dev, keys := range claimed {
			curve := bobDevices[dev].(map[string]any)["keys"].(map[string]any)["curve25519:"+dev].(string)
			var otk string
			for _, k := range keys.(map[string]any) {
				otk = k.(map[string]any)["key"].(string)
			}
			olm, err := alice.acc.NewOutboundSession(id.Curve25519(curve), id.Curve25519(otk))
			if err != nil {
				t.Fatal(err)
			}
			payload, _ := json.Marshal(map[string]any{"type": "m.room_key", "content": roomKey, "sender": alice.c.UserID,
				"recipient": bob1.c.UserID, "recipient_keys": map[string]any{"ed25519": bobDevices[dev].(map[string]any)["keys"].(map[string]any)["ed25519:"+dev]},
				"keys": map[string]any{"ed25519": alice.ed}})
			msgType, body, err := olm.Encrypt(payload)
			if err != nil {
				t.Fatal(err)
			}
			messages[dev] = map[string]any{"algorithm": "m.olm.v1.curve25519-aes-sha2", "sender_key": alice.curve,
				"ciphertext": map[string]any{curve: map[string]any{"type": int(msgType), "body": string(body)}}}
		}
		s.Do("PUT", "/_matrix/client/v3/sendToDevice/m.room.encrypted/share1", alice.token(), map[string]any{
			"messages": map[string]any{bob1.c.UserID.String(): messages}}).Expect(t, 200, "")

		// The encrypted message in the room.
		plain, _ := json.Marshal(map[string]any{"type": "m.room.message", "room_id": room, "content": map[string]any{"msgtype": "m.text", "body": secret}})
		ciphertext, err := megolm.Encrypt(plain)
		if err != nil {
			t.Fatal(err)
		}
		sent := s.Do("PUT", roomPath(room, "send", "m.room.encrypted", "m1"), alice.token(), map[string]any{
			"algorithm": "m.megolm.v1.aes-sha2", "sender_key": alice.curve, "device_id": alice.c.DeviceID,
			"session_id": megolm.ID(), "ciphertext": string(ciphertext)}).Expect(t, 200, "")
		eventID := sent.Body["event_id"].(string)

		// A backup of the session (session_data is what the client
		// encrypted; here opaque bytes standing for it).
		s.Do("POST", "/_matrix/client/v3/room_keys/version", alice.token(), map[string]any{
			"algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": map[string]any{"public_key": "pk"}}).Expect(t, 200, "")
		s.Do("PUT", fmt.Sprintf("/_matrix/client/v3/room_keys/keys/%s/%s?version=1", url.PathEscape(room.String()), url.PathEscape(megolm.ID().String())), alice.token(), map[string]any{
			"first_message_index": 0, "forwarded_count": 0, "is_verified": true,
			"session_data": map[string]any{"ephemeral": "e", "ciphertext": string(ciphertext[:20]), "mac": "m"}}).Expect(t, 200, "")

		// Each of Bob's devices decrypts the room key, then the message.
		st := storeOf(t, s)
		ev := s.Do("GET", roomPath(room, "event", eventID), bob1.token(), nil).Expect(t, 200, "")
		for _, bob := range []*olmDevice{bob1, bob2} {
			inbox, err := st.Inbox(ctx(), bob.c.UserID.String(), bob.c.DeviceID.String(), 0, 10)
			if err != nil || len(inbox) != 1 {
				t.Fatalf("%s inbox: %v %v", bob.c.DeviceID, inbox, err)
			}
			var msg struct {
				Content struct {
					Ciphertext map[string]struct {
						Type int    `json:"type"`
						Body string `json:"body"`
					} `json:"ciphertext"`
				} `json:"content"`
			}
			_ = json.Unmarshal([]byte(inbox[0].JSON), &msg)
			ct := msg.Content.Ciphertext[string(bob.curve)]
			in, err := bob.acc.NewInboundSession(ct.Body)
			if err != nil {
				t.Fatalf("%s: inbound Olm session: %v", bob.c.DeviceID, err)
			}
			raw, err := in.Decrypt(ct.Body, id.OlmMsgType(ct.Type))
			if err != nil {
				t.Fatalf("%s: Olm decrypt: %v", bob.c.DeviceID, err)
			}
			var got struct {
				Content struct {
					SessionKey string `json:"session_key"`
				} `json:"content"`
			}
			_ = json.Unmarshal(raw, &got)
			inbound, err := session.NewMegolmInboundSession([]byte(got.Content.SessionKey))
			if err != nil {
				t.Fatalf("%s: inbound Megolm session: %v", bob.c.DeviceID, err)
			}
			text, _, err := inbound.Decrypt([]byte(ev.Body["content"].(map[string]any)["ciphertext"].(string)))
			if err != nil || !strings.Contains(string(text), secret) {
				t.Fatalf("%s: Megolm decrypt: %q %v", bob.c.DeviceID, text, err)
			}
		}

		// No plaintext anywhere in the database.
		db := storagetest.Open(t, s.Cfg.Database.URL)
		for _, needle := range []string{secret, "rendez-vous", sessionKey} {
			if where := findInDatabase(t, db, needle); where != "" {
				t.Errorf("%.20q… found in table %s", needle, where)
			}
		}
		// The scan itself works: something that is stored is found.
		if where := findInDatabase(t, db, megolm.ID().String()); where == "" {
			t.Fatal("the database scan finds nothing, not even the session id")
		}
	})
}

// findInDatabase returns the first table with a cell containing needle,
// "" when none has one. Every table of the schema is read whole.
func findInDatabase(t *testing.T, db *dbstorage.DB, needle string) string {
	t.Helper()
	q := `SELECT name FROM sqlite_master WHERE type = 'table'`
	if db.Dialect == dbstorage.Postgres {
		q = `SELECT tablename FROM pg_tables WHERE schemaname = current_schema()`
	}
	rows, err := db.Read().QueryContext(ctx(), q)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	if len(tables) < 10 {
		t.Fatalf("only %d tables listed: %v", len(tables), tables)
	}
	for _, table := range tables {
		if found := tableContains(t, db, table, needle); found {
			return table
		}
	}
	return ""
}

func tableContains(t *testing.T, db *dbstorage.DB, table, needle string) bool {
	t.Helper()
	rows, err := db.Read().QueryContext(ctx(), `SELECT * FROM `+table)
	if err != nil {
		t.Fatalf("read %s: %v", table, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	for rows.Next() {
		cells := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range cells {
			ptrs[i] = &cells[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatalf("scan %s: %v", table, err)
		}
		for _, c := range cells {
			if strings.Contains(string(c), needle) {
				return true
			}
		}
	}
	return false
}
