package tests

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/signatures"
	"maunium.net/go/mautrix/id"
)

// TestKeysUploadQueryClaim: real Olm device keys and one-time keys go up,
// another user queries and claims them, checks their signatures, opens an
// Olm session on the claimed key and sends an encrypted to-device message
// that the first device decrypts.
func TestKeysUploadQueryClaim(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := newOlmDevice(t, s.Register("alice"))
		bob := newOlmDevice(t, s.Register("bob"))

		// Counts always name signed_curve25519, 0 when none.
		resp := s.Do("POST", "/_matrix/client/v3/keys/upload", alice.token(), map[string]any{}).Expect(t, 200, "")
		if c := resp.Body["one_time_key_counts"].(map[string]any); c["signed_curve25519"] != 0.0 {
			t.Fatalf("counts without keys: %v", c)
		}
		if n := alice.upload(s, 5); n != 5 {
			t.Fatalf("count after upload: %v", n)
		}
		// Through mautrix's own client types, as its crypto machine does.
		if _, err := bob.c.UploadKeys(ctx(), &mautrix.ReqUploadKeys{DeviceKeys: mustDeviceKeys(t, bob.deviceKeys())}); err != nil {
			t.Fatalf("mautrix upload: %v", err)
		}

		q, err := bob.c.QueryKeys(ctx(), &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{alice.c.UserID: {}}})
		if err != nil {
			t.Fatal(err)
		}
		dk, ok := q.DeviceKeys[alice.c.UserID][alice.c.DeviceID]
		if !ok || dk.Keys.GetEd25519(alice.c.DeviceID) != alice.ed || dk.Keys.GetCurve25519(alice.c.DeviceID) != alice.curve {
			t.Fatalf("query: %+v", q.DeviceKeys)
		}
		if ok, err := signatures.VerifySignatureJSON(dk, alice.c.UserID, alice.c.DeviceID.String(), alice.ed); !ok {
			t.Fatalf("served device keys do not verify: %v", err)
		}

		claim, err := bob.c.ClaimKeys(ctx(), &mautrix.ReqClaimKeys{OneTimeKeys: mautrix.OneTimeKeysRequest{
			alice.c.UserID: {alice.c.DeviceID: id.KeyAlgorithmSignedCurve25519}}})
		if err != nil {
			t.Fatal(err)
		}
		var otk mautrix.OneTimeKey
		var otkID id.KeyID
		for kid, k := range claim.OneTimeKeys[alice.c.UserID][alice.c.DeviceID] {
			otk, otkID = k, kid
		}
		if !strings.HasPrefix(string(otkID), "signed_curve25519:") {
			t.Fatalf("claim: %+v", claim.OneTimeKeys)
		}
		if ok, err := signatures.VerifySignatureJSON(otk.RawData, alice.c.UserID, alice.c.DeviceID.String(), alice.ed); !ok {
			t.Fatalf("claimed key does not verify: %v", err)
		}
		resp = s.Do("POST", "/_matrix/client/v3/keys/upload", alice.token(), map[string]any{}).Expect(t, 200, "")
		if c := resp.Body["one_time_key_counts"].(map[string]any); c["signed_curve25519"] != 4.0 {
			t.Fatalf("count after a claim: %v", c)
		}

		// Bob opens an Olm session on the claimed key and sends Alice an
		// encrypted to-device message.
		sess, err := bob.acc.NewOutboundSession(alice.curve, otk.Key)
		if err != nil {
			t.Fatal(err)
		}
		const secret = "the secret room key"
		msgType, ciphertext, err := sess.Encrypt([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		content := map[string]any{
			"algorithm":  "m.olm.v1.curve25519-aes-sha2",
			"sender_key": string(bob.curve),
			"ciphertext": map[string]any{string(alice.curve): map[string]any{"type": int(msgType), "body": string(ciphertext)}},
		}
		s.Do("PUT", "/_matrix/client/v3/sendToDevice/m.room.encrypted/txn1", bob.token(), map[string]any{
			"messages": map[string]any{alice.c.UserID.String(): map[string]any{alice.c.DeviceID.String(): content}},
		}).Expect(t, 200, "")
		inbox, err := storeOf(t, s).Inbox(ctx(), alice.c.UserID.String(), alice.c.DeviceID.String(), 0, 10)
		if err != nil || len(inbox) != 1 {
			t.Fatalf("alice's inbox: %v %v", inbox, err)
		}
		var ev struct {
			Sender  string `json:"sender"`
			Type    string `json:"type"`
			Content struct {
				Ciphertext map[string]struct {
					Type int    `json:"type"`
					Body string `json:"body"`
				} `json:"ciphertext"`
			} `json:"content"`
		}
		if err := json.Unmarshal([]byte(inbox[0].JSON), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Sender != bob.c.UserID.String() || ev.Type != "m.room.encrypted" {
			t.Fatalf("to-device event: %s", inbox[0].JSON)
		}
		if strings.Contains(inbox[0].JSON, secret) {
			t.Fatal("the plaintext reached the server")
		}
		ct := ev.Content.Ciphertext[string(alice.curve)]
		in, err := alice.acc.NewInboundSession(ct.Body)
		if err != nil {
			t.Fatalf("inbound session: %v", err)
		}
		plain, err := in.Decrypt(ct.Body, id.OlmMsgType(ct.Type))
		if err != nil || string(plain) != secret {
			t.Fatalf("decrypt: %q %v", plain, err)
		}
	})
}

func mustDeviceKeys(t *testing.T, obj map[string]any) *mautrix.DeviceKeys {
	t.Helper()
	raw, _ := json.Marshal(obj)
	var dk mautrix.DeviceKeys
	if err := json.Unmarshal(raw, &dk); err != nil {
		t.Fatal(err)
	}
	return &dk
}

// TestKeysUploadRefused: device keys that are not the caller's device's
// own, or not signed by its own key, are refused and change nothing.
func TestKeysUploadRefused(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := newOlmDevice(t, s.Register("alice"))
		other := newOlmDevice(t, s.Register("mallory"))
		upload := func(dk map[string]any) Response {
			return s.Do("POST", "/_matrix/client/v3/keys/upload", alice.token(), map[string]any{"device_keys": dk})
		}
		// Signed by another Olm account than the one the keys name.
		forged := alice.deviceKeys()
		sig, _ := other.acc.Sign(canonicalForSigning(t, forged))
		addSignature(forged, alice.c.UserID.String(), "ed25519:"+alice.c.DeviceID.String(), string(sig))
		upload(forged).Expect(t, 400, "M_INVALID_SIGNATURE")

		// A signature made before a key was changed.
		tampered := alice.deviceKeys()
		tampered["keys"].(map[string]any)["curve25519:"+alice.c.DeviceID.String()] = string(other.curve)
		upload(tampered).Expect(t, 400, "M_INVALID_SIGNATURE")

		unsigned := alice.deviceKeys()
		delete(unsigned, "signatures")
		upload(unsigned).Expect(t, 400, "M_INVALID_SIGNATURE")

		// Keys for another user or another device, validly self-signed.
		wrongUser := alice.deviceKeys()
		wrongUser["user_id"] = other.c.UserID.String()
		delete(wrongUser, "signatures")
		upload(alice.sign(wrongUser)).Expect(t, 400, "M_INVALID_PARAM")
		wrongDevice := alice.deviceKeys()
		wrongDevice["device_id"] = "NOTMINE"
		upload(wrongDevice).Expect(t, 400, "M_INVALID_PARAM")

		// Bad one-time key ids and shapes.
		s.Do("POST", "/_matrix/client/v3/keys/upload", alice.token(), map[string]any{"one_time_keys": map[string]any{"nocolon": "x"}}).
			Expect(t, 400, "M_INVALID_PARAM")
		s.Do("POST", "/_matrix/client/v3/keys/upload", alice.token(), map[string]any{"one_time_keys": map[string]any{"signed_curve25519:A": 5}}).
			Expect(t, 400, "M_BAD_JSON")
		// A one-time key id reused for another key.
		s.Do("POST", "/_matrix/client/v3/keys/upload", alice.token(), map[string]any{"one_time_keys": map[string]any{"signed_curve25519:A": map[string]any{"key": "a"}}}).
			Expect(t, 200, "")
		s.Do("POST", "/_matrix/client/v3/keys/upload", alice.token(), map[string]any{"one_time_keys": map[string]any{"signed_curve25519:A": map[string]any{"key": "b"}}}).
			Expect(t, 400, "M_INVALID_PARAM")

		// Nothing of the refused uploads was stored.
		q := s.Do("POST", "/_matrix/client/v3/keys/query", alice.token(), map[string]any{"device_keys": map[string]any{alice.c.UserID.String(): []string{}}}).
			Expect(t, 200, "")
		if devs := q.Body["device_keys"].(map[string]any)[alice.c.UserID.String()].(map[string]any); len(devs) != 0 {
			t.Fatalf("refused keys were stored: %v", devs)
		}
		// The genuine keys are accepted.
		upload(alice.deviceKeys()).Expect(t, 200, "")
		// Then the device's identity is fixed: another Olm account's keys,
		// validly self-signed for this device, are refused.
		usurper := newOlmDevice(t, alice.c)
		upload(usurper.deviceKeys()).Expect(t, 400, "M_INVALID_PARAM")
		upload(alice.deviceKeys()).Expect(t, 200, "")
	})
}

// TestKeysQueryRemoteAndUnknown: remote users appear in failures while
// there is no federation; unknown local users answer no devices.
func TestKeysQueryRemoteAndUnknown(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		q := s.Do("POST", "/_matrix/client/v3/keys/query", alice.AccessToken, map[string]any{"device_keys": map[string]any{
			"@bob:elsewhere.example": []string{}, "@nobody:" + serverName: []string{},
		}}).Expect(t, 200, "")
		if _, ok := q.Body["failures"].(map[string]any)["elsewhere.example"]; !ok {
			t.Fatalf("remote server not in failures: %s", q.Raw)
		}
		if devs, ok := q.Body["device_keys"].(map[string]any)["@nobody:"+serverName].(map[string]any); !ok || len(devs) != 0 {
			t.Fatalf("unknown user: %s", q.Raw)
		}
		s.Do("POST", "/_matrix/client/v3/keys/query", alice.AccessToken, map[string]any{}).Expect(t, 400, "M_MISSING_PARAM")
		s.Do("POST", "/_matrix/client/v3/keys/claim", alice.AccessToken, map[string]any{}).Expect(t, 400, "M_MISSING_PARAM")
		c := s.Do("POST", "/_matrix/client/v3/keys/claim", alice.AccessToken, map[string]any{"one_time_keys": map[string]any{
			"@bob:elsewhere.example": map[string]any{"D": "signed_curve25519"}}}).Expect(t, 200, "")
		if _, ok := c.Body["failures"].(map[string]any)["elsewhere.example"]; !ok {
			t.Fatalf("remote server not in claim failures: %s", c.Raw)
		}
	})
}

// TestKeysClaimConcurrent: 50 parallel claims of one user's keys never
// hand out the same one-time key twice; once they run out, the fallback
// key is handed out (and stays).
func TestKeysClaimConcurrent(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := newOlmDevice(t, s.Register("alice"))
		bob := s.Register("bob")
		const keys, claims = 30, 50
		fb := map[string]any{"signed_curve25519:FB": alice.sign(map[string]any{"key": "fallbackkey", "fallback": true})}
		s.Do("POST", "/_matrix/client/v3/keys/upload", alice.token(), map[string]any{
			"device_keys": alice.deviceKeys(), "one_time_keys": alice.oneTimeKeys(keys), "fallback_keys": fb,
		}).Expect(t, 200, "")
		var mu sync.Mutex
		seen := map[string]int{}
		var wg sync.WaitGroup
		for i := range claims {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := s.tryDo("POST", "/_matrix/client/v3/keys/claim", bob.AccessToken, map[string]any{"one_time_keys": map[string]any{
					alice.c.UserID.String(): map[string]any{alice.c.DeviceID.String(): "signed_curve25519"}}})
				if err != nil || r.Status != 200 {
					t.Errorf("claim %d: %v %d %s", i, err, r.Status, r.Raw)
					return
				}
				got := r.Body["one_time_keys"].(map[string]any)[alice.c.UserID.String()].(map[string]any)[alice.c.DeviceID.String()].(map[string]any)
				mu.Lock()
				defer mu.Unlock()
				for kid := range got {
					seen[kid]++
				}
			}()
		}
		wg.Wait()
		if seen["signed_curve25519:FB"] != claims-keys {
			t.Errorf("fallback key handed out %d times, want %d", seen["signed_curve25519:FB"], claims-keys)
		}
		delete(seen, "signed_curve25519:FB")
		if len(seen) != keys {
			t.Errorf("%d distinct one-time keys handed out, want %d", len(seen), keys)
		}
		for kid, n := range seen {
			if n != 1 {
				t.Errorf("one-time key %s handed out %d times", kid, n)
			}
		}
		types, err := storeOf(t, s).UnusedFallbackKeyTypes(ctx(), alice.c.UserID.String(), alice.c.DeviceID.String())
		if err != nil || len(types) != 0 {
			t.Fatalf("unused fallback key types after use: %v %v", types, err)
		}
	})
}

// TestKeysDeviceDeletion: a deleted device's keys are no longer served,
// and its deletion is a device-list change.
func TestKeysDeviceDeletion(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := newOlmDevice(t, s.Register("alice"))
		second := newOlmDevice(t, s.Login(alice.c.UserID))
		alice.upload(s, 2)
		second.upload(s, 2)
		st := storeOf(t, s)
		before, _ := st.DeviceListPos(ctx())
		// /keys/changes takes sync tokens.
		syncToken := func() string {
			return s.Do("GET", "/_matrix/client/v3/sync?timeout=0", alice.token(), nil).Expect(t, 200, "").Body["next_batch"].(string)
		}
		fromToken := syncToken()
		query := func() map[string]any {
			q := s.Do("POST", "/_matrix/client/v3/keys/query", alice.token(), map[string]any{"device_keys": map[string]any{alice.c.UserID.String(): []string{}}}).
				Expect(t, 200, "")
			return q.Body["device_keys"].(map[string]any)[alice.c.UserID.String()].(map[string]any)
		}
		if n := len(query()); n != 2 {
			t.Fatalf("%d devices before deletion", n)
		}
		s.Do("POST", "/_matrix/client/v3/logout", second.token(), nil).Expect(t, 200, "")
		devs := query()
		if _, ok := devs[second.c.DeviceID.String()]; ok || len(devs) != 1 {
			t.Fatalf("deleted device still served: %v", devs)
		}
		after, _ := st.DeviceListPos(ctx())
		changes, err := st.DeviceListChanges(ctx(), before, 10)
		if err != nil || len(changes) != 1 || !changes[0].Deleted || after != before+1 {
			t.Fatalf("device-list changes: %+v %v", changes, err)
		}
		toToken := syncToken()
		changesPath := fmt.Sprintf("/_matrix/client/v3/keys/changes?from=%s&to=%s", fromToken, toToken)
		c := s.Do("GET", changesPath, alice.token(), nil).Expect(t, 200, "")
		if changed := c.Body["changed"].([]any); len(changed) != 1 || changed[0] != alice.c.UserID.String() {
			t.Fatalf("/keys/changes: %s", c.Raw)
		}
		// Another user hears of it only while sharing a room with Alice.
		bob := s.Register("bob")
		if c := s.Do("GET", changesPath, bob.AccessToken, nil).Expect(t, 200, ""); len(c.Body["changed"].([]any)) != 0 {
			t.Fatalf("/keys/changes for a stranger: %s", c.Raw)
		}
		room := createRoom(t, s, alice.c, map[string]any{"preset": "private_chat", "invite": []string{bob.UserID.String()}})
		s.Do("POST", roomPath(room, "join"), bob.AccessToken, map[string]any{}).Expect(t, 200, "")
		if c := s.Do("GET", changesPath, bob.AccessToken, nil).Expect(t, 200, ""); len(c.Body["changed"].([]any)) != 1 {
			t.Fatalf("/keys/changes for a room member: %s", c.Raw)
		}
		s.Do("GET", "/_matrix/client/v3/keys/changes?from=1", bob.AccessToken, nil).Expect(t, 400, "M_MISSING_PARAM")
		s.Do("GET", "/_matrix/client/v3/keys/changes?from=x&to=1", bob.AccessToken, nil).Expect(t, 400, "M_INVALID_PARAM")
	})
}
