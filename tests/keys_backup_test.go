package tests

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/backup"
	"maunium.net/go/mautrix/crypto/goolm/session"
	"maunium.net/go/mautrix/id"
)

// TestKeyBackup: versions (create, read, update, delete), keys at the
// three levels, the better-session rule, etag and count, and
// M_WRONG_ROOM_KEYS_VERSION.
func TestKeyBackup(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		tok := alice.AccessToken
		const v = "/_matrix/client/v3/room_keys/version"
		const k = "/_matrix/client/v3/room_keys/keys"
		const alg = "m.megolm_backup.v1.curve25519-aes-sha2"
		authData := map[string]any{"public_key": "abcdef"}

		s.Do("GET", v, tok, nil).Expect(t, 404, "M_NOT_FOUND")
		s.Do("POST", v, tok, map[string]any{"algorithm": alg}).Expect(t, 400, "M_MISSING_PARAM")
		r := s.Do("POST", v, tok, map[string]any{"algorithm": alg, "auth_data": authData}).Expect(t, 200, "")
		if r.Body["version"] != "1" {
			t.Fatalf("create: %s", r.Raw)
		}
		cur := s.Do("GET", v, tok, nil).Expect(t, 200, "")
		if cur.Body["version"] != "1" || cur.Body["count"] != 0.0 || cur.Body["etag"] == nil || cur.Body["algorithm"] != alg {
			t.Fatalf("current version: %s", cur.Raw)
		}
		etag0 := cur.Body["etag"]

		session := func(index, forwarded int, verified bool, data string) map[string]any {
			return map[string]any{"first_message_index": index, "forwarded_count": forwarded, "is_verified": verified,
				"session_data": map[string]any{"ciphertext": data}}
		}
		// Keys at the three levels.
		s.Do("PUT", k+"?version=1", tok, map[string]any{"rooms": map[string]any{
			"!r1:x": map[string]any{"sessions": map[string]any{"s1": session(5, 0, false, "a")}},
		}}).Expect(t, 200, "")
		s.Do("PUT", k+"/!r1:x?version=1", tok, map[string]any{"sessions": map[string]any{"s2": session(0, 0, false, "b")}}).Expect(t, 200, "")
		r = s.Do("PUT", k+"/!r2:x/s3?version=1", tok, session(0, 0, true, "c")).Expect(t, 200, "")
		if r.Body["count"] != 3.0 || r.Body["etag"] == etag0 {
			t.Fatalf("after three puts: %s", r.Raw)
		}
		etag1 := r.Body["etag"]

		// A worse copy of s1 changes nothing (etag included); a better one
		// replaces it.
		r = s.Do("PUT", k+"/!r1:x/s1?version=1", tok, session(9, 0, false, "worse")).Expect(t, 200, "")
		if r.Body["etag"] != etag1 {
			t.Fatalf("a worse session moved the etag: %s", r.Raw)
		}
		if got := s.Do("GET", k+"/!r1:x/s1?version=1", tok, nil).Expect(t, 200, ""); got.Body["session_data"].(map[string]any)["ciphertext"] != "a" {
			t.Fatalf("a worse session replaced the stored one: %s", got.Raw)
		}
		r = s.Do("PUT", k+"/!r1:x/s1?version=1", tok, session(5, 0, true, "verified")).Expect(t, 200, "")
		if r.Body["etag"] == etag1 {
			t.Fatalf("a better session did not move the etag: %s", r.Raw)
		}
		if got := s.Do("GET", k+"/!r1:x/s1?version=1", tok, nil).Expect(t, 200, ""); got.Body["session_data"].(map[string]any)["ciphertext"] != "verified" {
			t.Fatalf("a better session was not kept: %s", got.Raw)
		}

		// Reads at the three levels.
		all := s.Do("GET", k+"?version=1", tok, nil).Expect(t, 200, "")
		if rooms := all.Body["rooms"].(map[string]any); len(rooms) != 2 || len(rooms["!r1:x"].(map[string]any)["sessions"].(map[string]any)) != 2 {
			t.Fatalf("all keys: %s", all.Raw)
		}
		empty := s.Do("GET", k+"/!none:x?version=1", tok, nil).Expect(t, 200, "")
		if sessions := empty.Body["sessions"].(map[string]any); len(sessions) != 0 {
			t.Fatalf("room without keys: %s", empty.Raw)
		}
		s.Do("GET", k+"/!r1:x/nosuch?version=1", tok, nil).Expect(t, 404, "M_NOT_FOUND")
		s.Do("GET", k, tok, nil).Expect(t, 400, "M_MISSING_PARAM")
		s.Do("GET", k+"?version=7", tok, nil).Expect(t, 404, "M_NOT_FOUND")

		// A new version: uploads to the old one are refused with the
		// current version, reads of the old one still work.
		s.Do("POST", v, tok, map[string]any{"algorithm": alg, "auth_data": authData}).Expect(t, 200, "")
		r = s.Do("PUT", k+"/!r1:x/s9?version=1", tok, session(0, 0, false, "x")).Expect(t, 403, "M_WRONG_ROOM_KEYS_VERSION")
		if r.Body["current_version"] != "2" {
			t.Fatalf("wrong version answer: %s", r.Raw)
		}
		s.Do("PUT", k+"/!r1:x/s9?version=9", tok, session(0, 0, false, "x")).Expect(t, 404, "M_NOT_FOUND")
		s.Do("GET", k+"/!r1:x/s1?version=1", tok, nil).Expect(t, 200, "")
		s.Do("PUT", k+"/!r1:x/s9?version=2", tok, map[string]any{"first_message_index": 0}).Expect(t, 400, "M_MISSING_PARAM")

		// Updating a version: same algorithm only, matching version.
		s.Do("PUT", v+"/2", tok, map[string]any{"algorithm": alg, "auth_data": map[string]any{"public_key": "new"}, "version": "2"}).Expect(t, 200, "")
		s.Do("PUT", v+"/2", tok, map[string]any{"algorithm": "other", "auth_data": authData}).Expect(t, 400, "M_INVALID_PARAM")
		s.Do("PUT", v+"/2", tok, map[string]any{"algorithm": alg, "auth_data": authData, "version": "1"}).Expect(t, 400, "M_INVALID_PARAM")
		if got := s.Do("GET", v+"/2", tok, nil).Expect(t, 200, ""); got.Body["auth_data"].(map[string]any)["public_key"] != "new" {
			t.Fatalf("update: %s", got.Raw)
		}

		// Deleting keys and versions.
		r = s.Do("DELETE", k+"/!r1:x?version=1", tok, nil).Expect(t, 200, "")
		if r.Body["count"] != 1.0 {
			t.Fatalf("delete a room's keys: %s", r.Raw)
		}
		s.Do("DELETE", v+"/2", tok, nil).Expect(t, 200, "")
		s.Do("DELETE", v+"/2", tok, nil).Expect(t, 404, "M_NOT_FOUND")
		s.Do("GET", v+"/2", tok, nil).Expect(t, 404, "M_NOT_FOUND")
		if cur := s.Do("GET", v, tok, nil).Expect(t, 200, ""); cur.Body["version"] != "1" {
			t.Fatalf("current after deleting 2: %s", cur.Raw)
		}
		if r := s.Do("POST", v, tok, map[string]any{"algorithm": alg, "auth_data": authData}).Expect(t, 200, ""); r.Body["version"] != "3" {
			t.Fatalf("a version number was reused: %s", r.Raw)
		}
		// Another user sees none of it.
		bob := s.Register("bob")
		s.Do("GET", v, bob.AccessToken, nil).Expect(t, 404, "M_NOT_FOUND")
		s.Do("GET", k+"?version=1", bob.AccessToken, nil).Expect(t, 404, "M_NOT_FOUND")
	})
}

// TestKeyBackupRestore: a device backs up a Megolm session encrypted to a
// backup key (m.megolm_backup.v1.curve25519-aes-sha2, mautrix's own
// implementation and client calls); a new device of the same user, holding
// only the backup key, restores it and decrypts the old message.
func TestKeyBackupRestore(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		room := createRoom(t, s, alice, map[string]any{"preset": "private_chat"})
		out, err := session.NewMegolmOutboundSession()
		if err != nil {
			t.Fatal(err)
		}
		// The session key at index 0, taken before the first message
		// advances the ratchet.
		sessionKey := out.Key()
		const secret = "compte rendu du conseil restreint"
		plain, _ := json.Marshal(map[string]any{"type": "m.room.message", "room_id": room, "content": map[string]any{"msgtype": "m.text", "body": secret}})
		ciphertext, err := out.Encrypt(plain)
		if err != nil {
			t.Fatal(err)
		}
		sent := s.Do("PUT", roomPath(room, "send", "m.room.encrypted", "m1"), alice.AccessToken, map[string]any{
			"algorithm": "m.megolm.v1.aes-sha2", "sender_key": "sk", "device_id": alice.DeviceID, "session_id": out.ID(),
			"ciphertext": string(ciphertext)}).Expect(t, 200, "")

		// Back up the session.
		backupKey, err := backup.NewMegolmBackupKey()
		if err != nil {
			t.Fatal(err)
		}
		ver, err := alice.CreateKeyBackupVersion(ctx(), &mautrix.ReqRoomKeysVersionCreate[backup.MegolmAuthData]{
			Algorithm: id.KeyBackupAlgorithmMegolmBackupV1,
			AuthData:  backup.MegolmAuthData{PublicKey: id.Ed25519(base64.RawStdEncoding.EncodeToString(backupKey.PublicKey().Bytes()))},
		})
		if err != nil {
			t.Fatal(err)
		}
		in, err := session.NewMegolmInboundSession([]byte(sessionKey))
		if err != nil {
			t.Fatal(err)
		}
		exported, err := in.Export(0)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := backup.EncryptSessionData(backupKey, backup.MegolmSessionData{Algorithm: id.AlgorithmMegolmV1, SessionKey: string(exported)})
		if err != nil {
			t.Fatal(err)
		}
		encRaw, _ := json.Marshal(enc)
		put, err := alice.PutKeysInBackup(ctx(), ver.Version, &mautrix.ReqKeyBackup{Rooms: map[id.RoomID]mautrix.ReqRoomKeyBackup{
			room: {Sessions: map[id.SessionID]mautrix.ReqKeyBackupData{out.ID(): {FirstMessageIndex: 0, IsVerified: true, SessionData: encRaw}}},
		}})
		if err != nil || put.Count != 1 {
			t.Fatalf("backup: %+v %v", put, err)
		}

		// A new device restores it.
		alice2 := s.Login(alice.UserID)
		latest, err := alice2.GetKeyBackupLatestVersion(ctx())
		if err != nil || latest.Version != ver.Version || latest.Count != 1 {
			t.Fatalf("latest version: %+v %v", latest, err)
		}
		keys, err := alice2.GetKeyBackup(ctx(), latest.Version)
		if err != nil {
			t.Fatal(err)
		}
		data, ok := keys.Rooms[room].Sessions[out.ID()]
		if !ok {
			t.Fatalf("restored keys: %+v", keys)
		}
		sess, err := data.SessionData.Decrypt(backupKey)
		if err != nil {
			t.Fatalf("decrypt backup: %v", err)
		}
		restored, err := session.NewMegolmInboundSessionFromExport([]byte(sess.SessionKey))
		if err != nil {
			t.Fatal(err)
		}
		ev := s.Do("GET", roomPath(room, "event", sent.Body["event_id"].(string)), alice2.AccessToken, nil).Expect(t, 200, "")
		text, _, err := restored.Decrypt([]byte(ev.Body["content"].(map[string]any)["ciphertext"].(string)))
		if err != nil || !strings.Contains(string(text), secret) {
			t.Fatalf("decrypt the old message: %q %v", text, err)
		}
	})
}
