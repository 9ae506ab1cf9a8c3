package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/internal/uia"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// crossSigningKeyJSON is the part of a cross-signing key the server checks.
type crossSigningKeyJSON struct {
	UserID string            `json:"user_id"`
	Usage  []string          `json:"usage"`
	Keys   map[string]string `json:"keys"`
}

// crossSigningPublicKey returns the public key (unpadded base64) of a
// cross-signing key object: the value of its single ed25519 key.
func crossSigningPublicKey(raw json.RawMessage) (string, error) {
	var k crossSigningKeyJSON
	if err := json.Unmarshal(raw, &k); err != nil {
		return "", fmt.Errorf("cross-signing key: %w", err)
	}
	if len(k.Keys) != 1 {
		return "", fmt.Errorf("cross-signing key must hold exactly one key")
	}
	for id, v := range k.Keys {
		if !strings.HasPrefix(id, "ed25519:") || id != "ed25519:"+v {
			return "", fmt.Errorf("cross-signing key id %q must be ed25519:<the public key>", id)
		}
		if _, err := decodeKey(v); err != nil {
			return "", err
		}
		return v, nil
	}
	return "", fmt.Errorf("cross-signing key has no key")
}

// checkCrossSigningKey checks that raw is userID's key for usage and
// returns its public key.
func checkCrossSigningKey(raw json.RawMessage, userID, usage, field string) (string, error) {
	var k crossSigningKeyJSON
	if err := json.Unmarshal(raw, &k); err != nil {
		return "", httputil.BadJSON("%s has the wrong shape", field)
	}
	if k.UserID != userID {
		return "", httputil.InvalidParam("%s is for %s, not the caller", field, k.UserID)
	}
	found := false
	for _, u := range k.Usage {
		found = found || u == usage
	}
	if !found {
		return "", httputil.InvalidParam("%s.usage must contain %q", field, usage)
	}
	pub, err := crossSigningPublicKey(raw)
	if err != nil {
		return "", httputil.InvalidParam("%s: %v", field, err)
	}
	return pub, nil
}

// signingUploadRequest is the body of /keys/device_signing/upload.
type signingUploadRequest struct {
	MasterKey      json.RawMessage `json:"master_key"`
	SelfSigningKey json.RawMessage `json:"self_signing_key"`
	UserSigningKey json.RawMessage `json:"user_signing_key"`
	Auth           json.RawMessage `json:"auth"`
}

// passwordFlows is the UIA flow for replacing cross-signing keys.
var passwordFlows = [][]string{{uia.StagePassword}}

// UploadSigningKeys is POST /keys/device_signing/upload: the user's
// master, self-signing and user-signing keys. The latter two must be
// signed by the master key (the one uploaded with them, or the stored
// one). UIA is asked for unless the user has no master key yet or the
// request repeats the stored master key and holds no new key (spec v1.11,
// MSC3967); a repeat answers 200 and changes nothing.
func (h *Handlers) UploadSigningKeys(r *http.Request) (any, error) {
	userID := auth.DeviceFrom(r.Context()).UserID
	var req signingUploadRequest
	if err := h.decode(r, &req); err != nil {
		return nil, err
	}
	stored, err := h.store.CrossSigningKeys(r.Context(), userID)
	if err != nil {
		return nil, err
	}
	keys, masterPub, err := h.checkSigningUpload(req, userID, stored)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, httputil.MissingParam("no cross-signing key given")
	}
	_, hasMaster := stored[storage.KeyTypeMaster]
	same, err := sameKeys(keys, stored)
	if err != nil {
		return nil, err
	}
	// The spec's exception: the request repeats the stored master key
	// (and any other key it holds matches too).
	if hasMaster && same && present(req.MasterKey) {
		return struct{}{}, nil
	}
	if hasMaster {
		if _, err := h.uia.Verify(r.Context(), uia.Request{Auth: req.Auth, Flows: passwordFlows, UserID: userID, Operation: uia.Operation(r)}); err != nil {
			return nil, err
		}
	}
	if err := h.store.SetCrossSigningKeys(r.Context(), userID, masterPub, keys); err != nil {
		return nil, err
	}
	h.notify.NotifyDeviceListChange(userID)
	return struct{}{}, nil
}

// checkSigningUpload checks the keys of an upload and returns them by
// type (canonical JSON) with the master public key that will be current.
func (h *Handlers) checkSigningUpload(req signingUploadRequest, userID string, stored map[string]string) (map[string]string, string, error) {
	keys := map[string]string{}
	var masterPub string
	if present(req.MasterKey) {
		pub, err := checkCrossSigningKey(req.MasterKey, userID, storage.KeyTypeMaster, "master_key")
		if err != nil {
			return nil, "", err
		}
		masterPub = pub
		if keys[storage.KeyTypeMaster], err = canonicalJSON(req.MasterKey); err != nil {
			return nil, "", httputil.BadJSON("master_key: %v", err)
		}
	} else if m, ok := stored[storage.KeyTypeMaster]; ok {
		pub, err := crossSigningPublicKey(json.RawMessage(m))
		if err != nil {
			return nil, "", fmt.Errorf("stored master key: %w", err)
		}
		masterPub = pub
	}
	for _, sub := range []struct {
		raw        json.RawMessage
		typ, field string
	}{
		{req.SelfSigningKey, storage.KeyTypeSelfSigning, "self_signing_key"},
		{req.UserSigningKey, storage.KeyTypeUserSigning, "user_signing_key"},
	} {
		if !present(sub.raw) {
			continue
		}
		if _, err := checkCrossSigningKey(sub.raw, userID, sub.typ, sub.field); err != nil {
			return nil, "", err
		}
		if masterPub == "" {
			return nil, "", httputil.Errorf(httputil.CodeInvalidSignature, "%s: no master key to check its signature", sub.field)
		}
		pub, _ := decodeKey(masterPub)
		if _, err := verifySigned(sub.raw, userID, "ed25519:"+masterPub, pub); err != nil {
			if errors.Is(err, errNoSignature) || errors.Is(err, errBadSignature) {
				return nil, "", httputil.Errorf(httputil.CodeInvalidSignature, "%s is not signed by the master key: %v", sub.field, err)
			}
			return nil, "", httputil.BadJSON("%s: %v", sub.field, err)
		}
		c, err := canonicalJSON(sub.raw)
		if err != nil {
			return nil, "", httputil.BadJSON("%s: %v", sub.field, err)
		}
		keys[sub.typ] = c
	}
	return keys, masterPub, nil
}

// sameKeys reports whether every key of an upload equals the stored key of
// its type.
func sameKeys(keys, stored map[string]string) (bool, error) {
	for typ, k := range keys {
		s, ok := stored[typ]
		if !ok {
			return false, nil
		}
		a, err := canonicalJSON(json.RawMessage(k))
		if err != nil {
			return false, err
		}
		b, err := canonicalJSON(json.RawMessage(s))
		if err != nil {
			return false, err
		}
		if a != b {
			return false, nil
		}
	}
	return true, nil
}

func present(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }

// masterKeyOf returns the stored master key of userID and its public key;
// "" when the user has none.
func (h *Handlers) masterKeyOf(ctx context.Context, userID string) (map[string]string, string, error) {
	cs, err := h.store.CrossSigningKeys(ctx, userID)
	if err != nil {
		return nil, "", err
	}
	m, ok := cs[storage.KeyTypeMaster]
	if !ok {
		return cs, "", nil
	}
	pub, err := crossSigningPublicKey(json.RawMessage(m))
	if err != nil {
		return nil, "", fmt.Errorf("stored master key of %s: %w", userID, err)
	}
	return cs, pub, nil
}
