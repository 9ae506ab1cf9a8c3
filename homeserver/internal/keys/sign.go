package keys

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/matrix-org/gomatrixserverlib"
)

// Errors of signature checks.
var (
	// errNoSignature: the object carries no signature by the key.
	errNoSignature = errors.New("no signature by the key")
	// errBadSignature: the signature does not verify.
	errBadSignature = errors.New("signature does not verify")
)

// decodeKey decodes an unpadded (or padded) base64 ed25519 public key.
func decodeKey(s string) (ed25519.PublicKey, error) {
	b, err := decodeBase64(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("not an ed25519 public key")
	}
	return ed25519.PublicKey(b), nil
}

func decodeBase64(s string) ([]byte, error) {
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}

// signatureOf returns the signature of obj by signer's keyID, "" when none.
func signatureOf(obj json.RawMessage, signer, keyID string) string {
	var o struct {
		Signatures map[string]map[string]string `json:"signatures"`
	}
	if json.Unmarshal(obj, &o) != nil {
		return ""
	}
	return o.Signatures[signer][keyID]
}

// verifySigned checks that obj (a JSON object) carries a valid signature
// by signer's key keyID ("ed25519:<id>"), whose public key is pub: the
// spec's "Signing JSON" (signatures and unsigned removed, canonical JSON).
// It returns the signature.
func verifySigned(obj json.RawMessage, signer, keyID string, pub ed25519.PublicKey) (string, error) {
	sig := signatureOf(obj, signer, keyID)
	if sig == "" {
		return "", errNoSignature
	}
	raw, err := decodeBase64(sig)
	if err != nil {
		return "", errBadSignature
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(obj, &fields); err != nil {
		return "", fmt.Errorf("signed object: %w", err)
	}
	delete(fields, "signatures")
	delete(fields, "unsigned")
	stripped, err := json.Marshal(fields)
	if err != nil {
		return "", fmt.Errorf("signed object: %w", err)
	}
	canonical, err := gomatrixserverlib.CanonicalJSON(stripped)
	if err != nil {
		return "", fmt.Errorf("signed object: %w", err)
	}
	if !ed25519.Verify(pub, canonical, raw) {
		return "", errBadSignature
	}
	return sig, nil
}

// withoutSignatures returns obj's canonical JSON without signatures and
// unsigned, for comparing two copies of a key.
func withoutSignatures(obj json.RawMessage) (string, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(obj, &fields); err != nil {
		return "", err
	}
	delete(fields, "signatures")
	delete(fields, "unsigned")
	stripped, err := json.Marshal(fields)
	if err != nil {
		return "", err
	}
	c, err := gomatrixserverlib.CanonicalJSON(stripped)
	return string(c), err
}

// mergeSignatures returns obj with extra signatures (signer → key id →
// signature) added to its own.
func mergeSignatures(obj json.RawMessage, extra map[string]map[string]string) (json.RawMessage, error) {
	if len(extra) == 0 {
		return obj, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(obj, &fields); err != nil {
		return nil, fmt.Errorf("merge signatures: %w", err)
	}
	sigs := map[string]map[string]string{}
	if raw, ok := fields["signatures"]; ok {
		_ = json.Unmarshal(raw, &sigs)
	}
	for signer, keys := range extra {
		if sigs[signer] == nil {
			sigs[signer] = map[string]string{}
		}
		for k, v := range keys {
			sigs[signer][k] = v
		}
	}
	raw, err := json.Marshal(sigs)
	if err != nil {
		return nil, fmt.Errorf("merge signatures: %w", err)
	}
	fields["signatures"] = raw
	out, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("merge signatures: %w", err)
	}
	return out, nil
}

// canonicalJSON returns raw as canonical JSON, the form keys are stored
// in so that a repeated upload compares equal.
func canonicalJSON(raw json.RawMessage) (string, error) {
	c, err := gomatrixserverlib.CanonicalJSON(raw)
	if err != nil {
		return "", err
	}
	return string(c), nil
}
