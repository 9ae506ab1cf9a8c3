package keys

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// signed returns obj signed by priv as signer's keyID, as JSON.
func signed(t *testing.T, obj map[string]any, priv ed25519.PrivateKey, signer, keyID string) json.RawMessage {
	t.Helper()
	toSign := map[string]any{}
	for k, v := range obj {
		if k != "unsigned" && k != "signatures" {
			toSign[k] = v
		}
	}
	raw, _ := json.Marshal(toSign)
	c, err := canonicalJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	sig := base64.RawStdEncoding.EncodeToString(ed25519.Sign(priv, []byte(c)))
	obj["signatures"] = map[string]any{signer: map[string]any{keyID: sig}}
	out, _ := json.Marshal(obj)
	return out
}

func newKey(t *testing.T) (string, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawStdEncoding.EncodeToString(pub), priv
}

func TestVerifySigned(t *testing.T) {
	pub, priv := newKey(t)
	_, otherPriv := newKey(t)
	pk, _ := decodeKey(pub)
	good := signed(t, map[string]any{"a": 1, "unsigned": map[string]any{"x": 1}}, priv, "@u:x", "ed25519:K")
	var withUnsigned map[string]any
	_ = json.Unmarshal(good, &withUnsigned)
	withUnsigned["unsigned"] = map[string]any{"changed": true}
	unsignedChanged, _ := json.Marshal(withUnsigned)
	withUnsigned["a"] = 2
	tampered, _ := json.Marshal(withUnsigned)
	for _, tc := range []struct {
		name string
		obj  json.RawMessage
		want error
	}{
		{"good", good, nil},
		{"unsigned is not signed", unsignedChanged, nil},
		{"tampered", tampered, errBadSignature},
		{"other key", signed(t, map[string]any{"a": 1}, otherPriv, "@u:x", "ed25519:K"), errBadSignature},
		{"other signer name", signed(t, map[string]any{"a": 1}, priv, "@v:x", "ed25519:K"), errNoSignature},
		{"no signature", json.RawMessage(`{"a":1}`), errNoSignature},
	} {
		_, err := verifySigned(tc.obj, "@u:x", "ed25519:K", pk)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestCheckDeviceKeys(t *testing.T) {
	pub, priv := newKey(t)
	dk := func(user, device, keyDevice string) map[string]any {
		return map[string]any{"user_id": user, "device_id": device, "algorithms": []string{"m.olm.v1.curve25519-aes-sha2"},
			"keys": map[string]any{"ed25519:" + keyDevice: pub, "curve25519:" + keyDevice: "c"}}
	}
	for _, tc := range []struct {
		name string
		obj  json.RawMessage
		code httputil.Code
	}{
		{"good", signed(t, dk("@u:x", "D", "D"), priv, "@u:x", "ed25519:D"), ""},
		{"other user", signed(t, dk("@v:x", "D", "D"), priv, "@v:x", "ed25519:D"), httputil.CodeInvalidParam},
		{"other device", signed(t, dk("@u:x", "E", "E"), priv, "@u:x", "ed25519:E"), httputil.CodeInvalidParam},
		{"no key of the device", signed(t, dk("@u:x", "D", "E"), priv, "@u:x", "ed25519:E"), httputil.CodeMissingParam},
		{"unsigned", func() json.RawMessage { b, _ := json.Marshal(dk("@u:x", "D", "D")); return b }(), httputil.CodeInvalidSignature},
		{"not an object", json.RawMessage(`[1]`), httputil.CodeBadJSON},
	} {
		_, err := checkDeviceKeys(tc.obj, "@u:x", "D")
		var got httputil.Code
		var merr *httputil.Error
		if errors.As(err, &merr) {
			got = merr.Code
			if merr.Status != http.StatusBadRequest {
				t.Errorf("%s: status %d", tc.name, merr.Status)
			}
		} else if err != nil {
			t.Errorf("%s: not a Matrix error: %v", tc.name, err)
		}
		if got != tc.code {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.code)
		}
	}
}

func TestCrossSigningPublicKey(t *testing.T) {
	pub, _ := newKey(t)
	for _, tc := range []struct {
		name string
		keys map[string]any
		ok   bool
	}{
		{"good", map[string]any{"ed25519:" + pub: pub}, true},
		{"id does not name the key", map[string]any{"ed25519:other": pub}, false},
		{"two keys", map[string]any{"ed25519:" + pub: pub, "ed25519:x": "x"}, false},
		{"not ed25519", map[string]any{"curve25519:" + pub: pub}, false},
		{"not a key", map[string]any{"ed25519:abc": "abc"}, false},
		{"none", map[string]any{}, false},
	} {
		raw, _ := json.Marshal(map[string]any{"user_id": "@u:x", "usage": []string{"master"}, "keys": tc.keys})
		got, err := crossSigningPublicKey(raw)
		if (err == nil) != tc.ok || (tc.ok && got != pub) {
			t.Errorf("%s: %q %v", tc.name, got, err)
		}
	}
}

func TestParseKeyMap(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		code httputil.Code
	}{
		{"object and string keys", `{"signed_curve25519:A":{"key":"k"},"curve25519:B":"k"}`, ""},
		{"no colon", `{"signed_curve25519":{"key":"k"}}`, httputil.CodeInvalidParam},
		{"empty id", `{"signed_curve25519:":{"key":"k"}}`, httputil.CodeInvalidParam},
		{"number", `{"signed_curve25519:A":5}`, httputil.CodeBadJSON},
	} {
		var m map[string]json.RawMessage
		_ = json.Unmarshal([]byte(tc.in), &m)
		_, err := parseKeyMap(m, "one_time_keys")
		var got httputil.Code
		var merr *httputil.Error
		if errors.As(err, &merr) {
			got = merr.Code
		}
		if got != tc.code {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.code)
		}
	}
}
