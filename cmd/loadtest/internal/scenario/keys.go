package scenario

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/id"
)

// Algorithms a device advertises, as Element does.
var deviceAlgorithms = []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"}

// b64 is the unpadded standard base64 of the specification.
var b64 = base64.RawStdEncoding

// deviceKeys is a simulated device's key material: a real ed25519
// signing key, since servers check the self-signature of device keys,
// and a curve25519 identity key that is only 32 random bytes, since no
// server can check it and nothing here decrypts.
type deviceKeys struct {
	userID   id.UserID
	deviceID id.DeviceID
	signing  ed25519.PrivateKey
	ed25519  string // base64 public signing key
	curve    string // base64 fake identity key
}

// newDeviceKeys makes fresh key material for a device.
func newDeviceKeys(userID id.UserID, deviceID id.DeviceID) (*deviceKeys, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate a signing key: %w", err)
	}
	return &deviceKeys{userID: userID, deviceID: deviceID, signing: priv, ed25519: b64.EncodeToString(pub), curve: randomKey()}, nil
}

// randomKey returns 32 random bytes in base64: a well-formed curve25519
// public key, for all a server can tell.
func randomKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return b64.EncodeToString(b)
}

// keyID returns "algorithm:deviceID".
func (k *deviceKeys) keyID(algorithm string) string { return algorithm + ":" + string(k.deviceID) }

// sign adds the device's signature to obj, as clients do: ed25519 over
// the canonical JSON of obj without its "signatures" and "unsigned".
func (k *deviceKeys) sign(obj map[string]any) error {
	unsigned, had := obj["unsigned"]
	delete(obj, "unsigned")
	delete(obj, "signatures")
	canonical, err := canonicaljson.Marshal(obj)
	if err != nil {
		return fmt.Errorf("canonical JSON: %w", err)
	}
	obj["signatures"] = map[string]any{string(k.userID): map[string]any{
		k.keyID("ed25519"): b64.EncodeToString(ed25519.Sign(k.signing, canonical)),
	}}
	if had {
		obj["unsigned"] = unsigned
	}
	return nil
}

// deviceKeysObject returns the device's signed device_keys object.
func (k *deviceKeys) deviceKeysObject() (map[string]any, error) {
	obj := map[string]any{
		"user_id":    k.userID,
		"device_id":  k.deviceID,
		"algorithms": deviceAlgorithms,
		"keys": map[string]any{
			k.keyID("curve25519"): k.curve,
			k.keyID("ed25519"):    k.ed25519,
		},
	}
	return obj, k.sign(obj)
}

// oneTimeKeys returns n signed one-time keys, "signed_curve25519:<id>",
// their ids numbered from first.
func (k *deviceKeys) oneTimeKeys(first, n int) (map[string]any, error) {
	out := make(map[string]any, n)
	for i := first; i < first+n; i++ {
		obj := map[string]any{"key": randomKey()}
		if err := k.sign(obj); err != nil {
			return nil, err
		}
		out[fmt.Sprintf("signed_curve25519:AAAA%04X", i)] = obj
	}
	return out, nil
}

// verifySigned checks obj's signature by userID's key keyID, base64
// publicKey: the check a receiving client makes.
func verifySigned(obj map[string]any, userID id.UserID, keyID, publicKey string) error {
	sigs, _ := obj["signatures"].(map[string]any)
	mine, _ := sigs[string(userID)].(map[string]any)
	sig, _ := mine[keyID].(string)
	if sig == "" {
		return errors.New("no signature")
	}
	rawSig, err := b64.DecodeString(sig)
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	pub, err := b64.DecodeString(publicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return errors.New("malformed public key")
	}
	bare := make(map[string]any, len(obj))
	for k, v := range obj {
		if k != "signatures" && k != "unsigned" {
			bare[k] = v
		}
	}
	raw, err := json.Marshal(bare)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	if !ed25519.Verify(pub, canonicaljson.CanonicalJSONAssumeValid(raw), rawSig) {
		return errors.New("bad signature")
	}
	return nil
}
