package tests

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/matrix-org/gomatrixserverlib"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/goolm/account"
	"maunium.net/go/mautrix/id"

	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

// olmDevice is a logged-in device with a real Olm account (goolm, the
// pure-Go implementation mautrix's crypto uses).
type olmDevice struct {
	t     testing.TB
	c     *mautrix.Client
	acc   *account.Account
	ed    id.Ed25519
	curve id.Curve25519
}

func newOlmDevice(t testing.TB, c *mautrix.Client) *olmDevice {
	t.Helper()
	acc, err := account.NewAccount()
	if err != nil {
		t.Fatal(err)
	}
	ed, curve, err := acc.IdentityKeys()
	if err != nil {
		t.Fatal(err)
	}
	return &olmDevice{t: t, c: c, acc: acc, ed: ed, curve: curve}
}

// token is the device's access token.
func (d *olmDevice) token() string { return d.c.AccessToken }

// canonicalForSigning is the spec's signed form of obj: signatures and
// unsigned removed, canonical JSON.
func canonicalForSigning(t testing.TB, obj map[string]any) []byte {
	t.Helper()
	c := make(map[string]any, len(obj))
	for k, v := range obj {
		if k != "signatures" && k != "unsigned" {
			c[k] = v
		}
	}
	raw, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	canonical, err := gomatrixserverlib.CanonicalJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	return canonical
}

// addSignature adds signer's signature sig under keyID to obj.
func addSignature(obj map[string]any, signer, keyID, sig string) {
	sigs, _ := obj["signatures"].(map[string]any)
	if sigs == nil {
		sigs = map[string]any{}
		obj["signatures"] = sigs
	}
	mine, _ := sigs[signer].(map[string]any)
	if mine == nil {
		mine = map[string]any{}
		sigs[signer] = mine
	}
	mine[keyID] = sig
}

// sign signs obj with the device's Olm ed25519 key.
func (d *olmDevice) sign(obj map[string]any) map[string]any {
	d.t.Helper()
	sig, err := d.acc.Sign(canonicalForSigning(d.t, obj))
	if err != nil {
		d.t.Fatal(err)
	}
	addSignature(obj, d.c.UserID.String(), "ed25519:"+d.c.DeviceID.String(), string(sig))
	return obj
}

// deviceKeys is the device's signed device keys object.
func (d *olmDevice) deviceKeys() map[string]any {
	dev := d.c.DeviceID.String()
	return d.sign(map[string]any{
		"user_id":    d.c.UserID.String(),
		"device_id":  dev,
		"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
		"keys":       map[string]any{"ed25519:" + dev: string(d.ed), "curve25519:" + dev: string(d.curve)},
	})
}

// oneTimeKeys generates n one-time keys and returns them signed, as
// /keys/upload takes them.
func (d *olmDevice) oneTimeKeys(n uint) map[string]any {
	d.t.Helper()
	if err := d.acc.GenOneTimeKeys(n); err != nil {
		d.t.Fatal(err)
	}
	keys, err := d.acc.OneTimeKeys()
	if err != nil {
		d.t.Fatal(err)
	}
	d.acc.MarkKeysAsPublished()
	out := map[string]any{}
	for kid, k := range keys {
		out["signed_curve25519:"+kid] = d.sign(map[string]any{"key": string(k)})
	}
	return out
}

// upload uploads the device keys and n one-time keys and returns the
// signed_curve25519 count the server answers.
func (d *olmDevice) upload(s *Server, n uint) float64 {
	d.t.Helper()
	resp := s.Do("POST", "/_matrix/client/v3/keys/upload", d.token(), map[string]any{
		"device_keys": d.deviceKeys(), "one_time_keys": d.oneTimeKeys(n),
	}).Expect(d.t, 200, "")
	counts, _ := resp.Body["one_time_key_counts"].(map[string]any)
	return counts["signed_curve25519"].(float64)
}

// ed25519Key is a cross-signing key pair.
type ed25519Key struct {
	pub  string
	priv ed25519.PrivateKey
}

func newEd25519Key(t testing.TB) ed25519Key {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return ed25519Key{pub: base64.RawStdEncoding.EncodeToString(pub), priv: priv}
}

func (k ed25519Key) keyID() string { return "ed25519:" + k.pub }

// signAs adds signer's signature by k to obj.
func (k ed25519Key) signAs(t testing.TB, signer string, obj map[string]any) map[string]any {
	t.Helper()
	sig := ed25519.Sign(k.priv, canonicalForSigning(t, obj))
	addSignature(obj, signer, k.keyID(), base64.RawStdEncoding.EncodeToString(sig))
	return obj
}

// crossSigningKey is the public key object of k for usage.
func (k ed25519Key) crossSigningKey(userID, usage string) map[string]any {
	return map[string]any{"user_id": userID, "usage": []string{usage}, "keys": map[string]any{k.keyID(): k.pub}}
}

// storeOf opens the server's database beside it, for reading what the
// relay wrote (to-device inboxes, which /sync will deliver).
func storeOf(t testing.TB, s *Server) *storage.Store {
	t.Helper()
	return storage.New(storagetest.Open(t, s.Cfg.Database.URL))
}

// jsonObject re-decodes v (a response field) as a JSON object.
func jsonObject(t testing.TB, v any) map[string]any {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// queryReq is a /keys/query of all devices of users.
func queryReq(users ...id.UserID) *mautrix.ReqQueryKeys {
	req := &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{}}
	for _, u := range users {
		req.DeviceKeys[u] = mautrix.DeviceIDList{}
	}
	return req
}
