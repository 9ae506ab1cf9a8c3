package tests

import (
	"encoding/json"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/signatures"
	"maunium.net/go/mautrix/id"
)

// crossSigning is a user's three cross-signing keys.
type crossSigning struct {
	master, self, user ed25519Key
}

func newCrossSigning(t *testing.T) crossSigning {
	return crossSigning{master: newEd25519Key(t), self: newEd25519Key(t), user: newEd25519Key(t)}
}

// body is the /keys/device_signing/upload body for userID, the sub-keys
// signed by the master key.
func (cs crossSigning) body(t *testing.T, userID string) map[string]any {
	return map[string]any{
		"master_key":       cs.master.crossSigningKey(userID, "master"),
		"self_signing_key": cs.master.signAs(t, userID, cs.self.crossSigningKey(userID, "self_signing")),
		"user_signing_key": cs.master.signAs(t, userID, cs.user.crossSigningKey(userID, "user_signing")),
	}
}

const signingUploadPath = "/_matrix/client/v3/keys/device_signing/upload"

// TestCrossSigningUpload: the first upload needs no UIA, a repeat neither,
// a replacement does; sub-keys must be signed by the master key.
func TestCrossSigningUpload(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		uid := alice.UserID.String()
		cs := newCrossSigning(t)

		// A self-signing key not signed by the master key.
		bad := cs.body(t, uid)
		bad["self_signing_key"] = newEd25519Key(t).signAs(t, uid, cs.self.crossSigningKey(uid, "self_signing"))
		s.Do("POST", signingUploadPath, alice.AccessToken, bad).Expect(t, 400, "M_INVALID_SIGNATURE")
		// Keys of another user, or for the wrong usage.
		other := cs.body(t, "@bob:"+serverName)
		s.Do("POST", signingUploadPath, alice.AccessToken, other).Expect(t, 400, "M_INVALID_PARAM")
		wrongUsage := cs.body(t, uid)
		wrongUsage["master_key"] = cs.master.crossSigningKey(uid, "self_signing")
		s.Do("POST", signingUploadPath, alice.AccessToken, wrongUsage).Expect(t, 400, "M_INVALID_PARAM")
		// A sub-key alone, with no master key anywhere.
		s.Do("POST", signingUploadPath, alice.AccessToken, map[string]any{"self_signing_key": cs.body(t, uid)["self_signing_key"]}).
			Expect(t, 400, "M_INVALID_SIGNATURE")

		// First upload: no UIA.
		s.Do("POST", signingUploadPath, alice.AccessToken, cs.body(t, uid)).Expect(t, 200, "")
		// The same keys again (a client retrying): no UIA either.
		s.Do("POST", signingUploadPath, alice.AccessToken, cs.body(t, uid)).Expect(t, 200, "")
		// Without the master key the exception does not apply.
		s.Do("POST", signingUploadPath, alice.AccessToken, map[string]any{"self_signing_key": cs.body(t, uid)["self_signing_key"]}).
			Expect(t, 401, "")

		// New keys replace the old ones only after UIA.
		cs2 := newCrossSigning(t)
		r := s.Do("POST", signingUploadPath, alice.AccessToken, cs2.body(t, uid)).Expect(t, 401, "")
		ch := parseUIA(t, string(r.Raw))
		if len(ch.Flows) == 0 || ch.Session == "" {
			t.Fatalf("UIA challenge: %s", r.Raw)
		}
		withAuth := cs2.body(t, uid)
		withAuth["auth"] = map[string]any{"type": "m.login.password", "session": ch.Session,
			"identifier": map[string]any{"type": "m.id.user", "user": uid}, "password": "wrong password"}
		s.Do("POST", signingUploadPath, alice.AccessToken, withAuth).Expect(t, 401, "M_FORBIDDEN")
		withAuth["auth"].(map[string]any)["password"] = testPassword
		s.Do("POST", signingUploadPath, alice.AccessToken, withAuth).Expect(t, 200, "")

		q := s.Do("POST", "/_matrix/client/v3/keys/query", alice.AccessToken, map[string]any{"device_keys": map[string]any{uid: []string{}}}).
			Expect(t, 200, "")
		master := q.Body["master_keys"].(map[string]any)[uid].(map[string]any)
		if master["keys"].(map[string]any)[cs2.master.keyID()] != cs2.master.pub {
			t.Fatalf("master key after replacement: %v", master)
		}
		if _, ok := q.Body["user_signing_keys"].(map[string]any)[uid]; !ok {
			t.Fatal("the owner does not see its user-signing key")
		}
	})
}

// TestCrossSigningSignatures: a device signed by the self-signing key,
// another user's master key signed by the user-signing key, with the
// spec's visibility, and forged signatures refused per key.
func TestCrossSigningSignatures(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := newOlmDevice(t, s.Register("alice"))
		bob := newOlmDevice(t, s.Register("bob"))
		alice.upload(s, 1)
		bob.upload(s, 1)
		aid, bid := alice.c.UserID.String(), bob.c.UserID.String()
		acs, bcs := newCrossSigning(t), newCrossSigning(t)
		s.Do("POST", signingUploadPath, alice.token(), acs.body(t, aid)).Expect(t, 200, "")
		s.Do("POST", signingUploadPath, bob.token(), bcs.body(t, bid)).Expect(t, 200, "")
		st := storeOf(t, s)
		before, _ := st.DeviceListPos(ctx())

		// Alice signs her device with her self-signing key, and her master
		// key with her device; a forged signature on the same request
		// fails alone.
		dev := acs.self.signAs(t, aid, alice.deviceKeys())
		masterByDevice := alice.sign(acs.master.crossSigningKey(aid, "master"))
		forged := newEd25519Key(t).signAs(t, aid, bob.deviceKeys())
		r := s.Do("POST", "/_matrix/client/v3/keys/signatures/upload", alice.token(), map[string]any{
			aid: map[string]any{alice.c.DeviceID.String(): dev, acs.master.pub: masterByDevice, "NOSUCHDEVICE": dev},
			bid: map[string]any{bob.c.DeviceID.String(): forged},
		}).Expect(t, 200, "")
		failures := r.Body["failures"].(map[string]any)
		if f := failures[aid].(map[string]any); len(f) != 1 || f["NOSUCHDEVICE"].(map[string]any)["errcode"] != "M_NOT_FOUND" {
			t.Fatalf("failures for alice: %s", r.Raw)
		}
		if _, ok := failures[bid].(map[string]any)[bob.c.DeviceID.String()]; !ok {
			t.Fatalf("signing another user's device did not fail: %s", r.Raw)
		}

		// Bob signs Alice's master key with his user-signing key; a
		// signature by another key fails with M_INVALID_SIGNATURE.
		aliceMaster := acs.master.crossSigningKey(aid, "master")
		r = s.Do("POST", "/_matrix/client/v3/keys/signatures/upload", bob.token(), map[string]any{
			aid: map[string]any{acs.master.pub: bcs.user.signAs(t, bid, aliceMaster)},
		}).Expect(t, 200, "")
		if f := r.Body["failures"].(map[string]any); len(f) != 0 {
			t.Fatalf("bob's signature failed: %s", r.Raw)
		}
		r = s.Do("POST", "/_matrix/client/v3/keys/signatures/upload", bob.token(), map[string]any{
			aid: map[string]any{acs.master.pub: bcs.self.signAs(t, bid, acs.master.crossSigningKey(aid, "master"))},
		}).Expect(t, 200, "")
		if f := r.Body["failures"].(map[string]any)[aid].(map[string]any)[acs.master.pub].(map[string]any); f["errcode"] != "M_INVALID_SIGNATURE" {
			t.Fatalf("signature by the wrong key: %s", r.Raw)
		}

		// What Bob sees: Alice's device signed by her self-signing key,
		// her master key with his own signature, no user-signing key of
		// hers.
		q, err := bob.c.QueryKeys(ctx(), queryReq(alice.c.UserID))
		if err != nil {
			t.Fatal(err)
		}
		dk := q.DeviceKeys[alice.c.UserID][alice.c.DeviceID]
		if ok, err := signatures.VerifySignatureJSON(dk, alice.c.UserID, acs.self.pub, id.Ed25519(acs.self.pub)); !ok {
			t.Fatalf("device not cross-signed in the query: %v", err)
		}
		if ok, _ := signatures.VerifySignatureJSON(dk, alice.c.UserID, alice.c.DeviceID.String(), alice.ed); !ok {
			t.Fatal("the device's own signature was lost")
		}
		mk := q.MasterKeys[alice.c.UserID]
		if ok, err := signatures.VerifySignatureJSON(mk, bob.c.UserID, bcs.user.pub, id.Ed25519(bcs.user.pub)); !ok {
			t.Fatalf("bob does not see his signature on alice's master key: %v", err)
		}
		if _, ok := mk.Signatures[alice.c.UserID][id.NewKeyID(id.KeyAlgorithmEd25519, alice.c.DeviceID.String())]; ok {
			t.Fatal("bob sees alice's device's signature on her master key")
		}
		if _, ok := q.UserSigningKeys[alice.c.UserID]; ok {
			t.Fatal("bob sees alice's user-signing key")
		}
		if _, ok := q.SelfSigningKeys[alice.c.UserID]; !ok {
			t.Fatal("bob does not see alice's self-signing key")
		}
		// What Alice sees of her master key: her device's signature, not
		// Bob's.
		qa, err := alice.c.QueryKeys(ctx(), queryReq(alice.c.UserID))
		if err != nil {
			t.Fatal(err)
		}
		amk := qa.MasterKeys[alice.c.UserID]
		if ok, err := signatures.VerifySignatureJSON(amk, alice.c.UserID, alice.c.DeviceID.String(), alice.ed); !ok {
			t.Fatalf("alice does not see her device's signature on her master key: %v", err)
		}
		if _, ok := amk.Signatures[bob.c.UserID]; ok {
			t.Fatal("alice sees bob's user-signing signature")
		}
		if _, ok := qa.UserSigningKeys[alice.c.UserID]; !ok {
			t.Fatal("alice does not see her own user-signing key")
		}
		// The signatures are device-list changes (for the signers).
		after, _ := st.DeviceListPos(ctx())
		users, _ := st.ChangedUsers(ctx(), before, after)
		if raw, _ := json.Marshal(users); string(raw) != `["`+aid+`","`+bid+`"]` {
			t.Fatalf("device-list changes after signatures: %s", raw)
		}
	})
}

// TestCrossSigningUploadMautrix: mautrix's own client call (with its UIA
// callback) bootstraps cross-signing without UIA, then replaces the keys
// through m.login.password.
func TestCrossSigningUploadMautrix(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		uid := alice.UserID.String()
		toKeys := func(obj map[string]any) mautrix.CrossSigningKeys {
			raw, _ := json.Marshal(obj)
			var k mautrix.CrossSigningKeys
			if err := json.Unmarshal(raw, &k); err != nil {
				t.Fatal(err)
			}
			return k
		}
		req := func(cs crossSigning) *mautrix.UploadCrossSigningKeysReq[any] {
			b := cs.body(t, uid)
			return &mautrix.UploadCrossSigningKeysReq[any]{Master: toKeys(b["master_key"].(map[string]any)),
				SelfSigning: toKeys(b["self_signing_key"].(map[string]any)), UserSigning: toKeys(b["user_signing_key"].(map[string]any))}
		}
		asked := 0
		password := func(r *mautrix.RespUserInteractive) interface{} {
			asked++
			return &mautrix.ReqUIAuthLogin{BaseAuthData: mautrix.BaseAuthData{Type: mautrix.AuthTypePassword, Session: r.Session},
				User: uid, Password: testPassword}
		}
		first := newCrossSigning(t)
		if err := alice.UploadCrossSigningKeys(ctx(), req(first), password); err != nil || asked != 0 {
			t.Fatalf("bootstrap: %v (UIA asked %d times)", err, asked)
		}
		second := newCrossSigning(t)
		if err := alice.UploadCrossSigningKeys(ctx(), req(second), password); err != nil || asked != 1 {
			t.Fatalf("replacement: %v (UIA asked %d times)", err, asked)
		}
		q, err := alice.QueryKeys(ctx(), queryReq(alice.UserID))
		if err != nil {
			t.Fatal(err)
		}
		mk, uk := q.MasterKeys[alice.UserID], q.UserSigningKeys[alice.UserID]
		if got := mk.FirstKey(); string(got) != second.master.pub {
			t.Fatalf("master key %s, want %s", got, second.master.pub)
		}
		if got := uk.FirstKey(); string(got) != second.user.pub {
			t.Fatalf("user-signing key %s, want %s", got, second.user.pub)
		}
	})
}
