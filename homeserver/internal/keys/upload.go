package keys

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// algSignedCurve25519 is the one-time key algorithm Olm uses; the spec
// asks that its count always appear in one_time_key_counts.
const algSignedCurve25519 = "signed_curve25519"

// deviceKeysJSON is the part of a device keys object the server checks.
type deviceKeysJSON struct {
	UserID     string            `json:"user_id"`
	DeviceID   string            `json:"device_id"`
	Algorithms []string          `json:"algorithms"`
	Keys       map[string]string `json:"keys"`
}

// uploadRequest is the body of POST /keys/upload.
type uploadRequest struct {
	DeviceKeys   json.RawMessage            `json:"device_keys"`
	OneTimeKeys  map[string]json.RawMessage `json:"one_time_keys"`
	FallbackKeys map[string]json.RawMessage `json:"fallback_keys"`
	// The unstable name some clients still send (MSC2732).
	FallbackKeysUnstable map[string]json.RawMessage `json:"org.matrix.msc2732.fallback_keys"`
}

// Upload is POST /keys/upload: the device's identity keys (which must be
// the caller's device's own, signed by its own ed25519 key), one-time keys
// and fallback keys. It answers the one-time key counts.
func (h *Handlers) Upload(r *http.Request) (any, error) {
	dev := auth.DeviceFrom(r.Context())
	var req uploadRequest
	if err := h.decode(r, &req); err != nil {
		return nil, err
	}
	up := storage.KeyUpload{UserID: dev.UserID, DeviceID: dev.DeviceID}
	if len(req.DeviceKeys) > 0 && string(req.DeviceKeys) != "null" {
		canonical, err := checkDeviceKeys(req.DeviceKeys, dev.UserID, dev.DeviceID)
		if err != nil {
			return nil, err
		}
		up.DeviceKeys = canonical
	}
	var err error
	if up.OneTimeKeys, err = parseKeyMap(req.OneTimeKeys, "one_time_keys"); err != nil {
		return nil, err
	}
	fallback := req.FallbackKeys
	if fallback == nil {
		fallback = req.FallbackKeysUnstable
	}
	if up.FallbackKeys, err = parseKeyMap(fallback, "fallback_keys"); err != nil {
		return nil, err
	}
	if err := oneKeyPerAlgorithm(up.FallbackKeys); err != nil {
		return nil, err
	}
	changed, err := h.store.UploadKeys(r.Context(), up)
	if errors.Is(err, storage.ErrKeyConflict) || errors.Is(err, storage.ErrIdentityKeysChanged) {
		return nil, httputil.InvalidParam("%v", err)
	}
	if err != nil {
		return nil, err
	}
	if changed {
		h.notify.NotifyDeviceListChange(dev.UserID)
	}
	h.notify.NotifyKeyCounts(dev.UserID, dev.DeviceID)
	counts, err := h.oneTimeKeyCounts(r.Context(), dev.UserID, dev.DeviceID)
	if err != nil {
		return nil, err
	}
	return map[string]any{"one_time_key_counts": counts}, nil
}

// oneTimeKeyCounts is the stored counts with signed_curve25519 always
// present, as the spec asks (0 when none).
func (h *Handlers) oneTimeKeyCounts(ctx context.Context, userID, deviceID string) (map[string]int, error) {
	counts, err := h.store.OneTimeKeyCounts(ctx, userID, deviceID)
	if err != nil {
		return nil, err
	}
	if _, ok := counts[algSignedCurve25519]; !ok {
		counts[algSignedCurve25519] = 0
	}
	return counts, nil
}

// checkDeviceKeys checks that raw is userID's deviceID's keys, signed by
// the device's own ed25519 key, and returns it as canonical JSON.
func checkDeviceKeys(raw json.RawMessage, userID, deviceID string) (string, error) {
	var dk deviceKeysJSON
	if err := json.Unmarshal(raw, &dk); err != nil {
		return "", httputil.BadJSON("device_keys has the wrong shape")
	}
	if dk.UserID != userID || dk.DeviceID != deviceID {
		return "", httputil.InvalidParam("device_keys are for %s's device %s, not the caller's device", dk.UserID, dk.DeviceID)
	}
	if len(dk.Algorithms) == 0 {
		return "", httputil.MissingParam("device_keys.algorithms is required")
	}
	keyID := "ed25519:" + deviceID
	edKey, ok := dk.Keys[keyID]
	if !ok {
		return "", httputil.MissingParam("device_keys.keys has no %s key", keyID)
	}
	pub, err := decodeKey(edKey)
	if err != nil {
		return "", httputil.InvalidParam("device_keys.keys.%s is not an ed25519 public key", keyID)
	}
	if _, err := verifySigned(raw, userID, keyID, pub); err != nil {
		if errors.Is(err, errNoSignature) || errors.Is(err, errBadSignature) {
			return "", httputil.Errorf(httputil.CodeInvalidSignature, "device_keys are not signed by the device's own key %s: %v", keyID, err)
		}
		return "", httputil.BadJSON("device_keys: %v", err)
	}
	canonical, err := canonicalJSON(raw)
	if err != nil {
		return "", httputil.BadJSON("device_keys: %v", err)
	}
	return canonical, nil
}

// parseKeyMap checks a map of "algorithm:id" to key (an object or a
// string) and returns its keys as canonical JSON, sorted by key id.
func parseKeyMap(m map[string]json.RawMessage, field string) ([]storage.OneTimeKey, error) {
	var out []storage.OneTimeKey
	for id, raw := range m {
		alg, keyID, ok := strings.Cut(id, ":")
		if !ok || alg == "" || keyID == "" {
			return nil, httputil.InvalidParam("%s: key id %q is not algorithm:id", field, id)
		}
		t := strings.TrimSpace(string(raw))
		if t == "" || (t[0] != '{' && t[0] != '"') {
			return nil, httputil.BadJSON("%s: key %q must be an object or a string", field, id)
		}
		canonical, err := canonicalJSON(raw)
		if err != nil {
			return nil, httputil.BadJSON("%s: key %q: %v", field, id, err)
		}
		out = append(out, storage.OneTimeKey{Algorithm: alg, KeyID: keyID, JSON: canonical})
	}
	return out, nil
}

// oneKeyPerAlgorithm refuses two fallback keys of one algorithm: a device
// has one fallback key per algorithm.
func oneKeyPerAlgorithm(keys []storage.OneTimeKey) error {
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k.Algorithm] {
			return httputil.InvalidParam("fallback_keys: more than one %s key", k.Algorithm)
		}
		seen[k.Algorithm] = true
	}
	return nil
}
