package keys

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// signatureFailure is one entry of /keys/signatures/upload's failures.
type signatureFailure struct {
	Errcode httputil.Code `json:"errcode"`
	Error   string        `json:"error"`
}

func failure(code httputil.Code, msg string) *signatureFailure {
	return &signatureFailure{Errcode: code, Error: msg}
}

// UploadSignatures is POST /keys/signatures/upload: signatures of the
// caller's own devices (by its self-signing key), of its own master key
// (by its devices) and of other users' master keys (by its user-signing
// key). Each signature is checked; those that fail are reported per key
// in failures and the others are stored.
func (h *Handlers) UploadSignatures(r *http.Request) (any, error) {
	signer := auth.DeviceFrom(r.Context()).UserID
	var req map[string]map[string]json.RawMessage
	if err := h.decode(r, &req); err != nil {
		return nil, err
	}
	ctx := r.Context()
	own, ownMaster, err := h.masterKeyOf(ctx, signer)
	if err != nil {
		return nil, err
	}
	failures := map[string]map[string]*signatureFailure{}
	var sigs []storage.Signature
	changed := map[string]string{}
	users := make([]string, 0, len(req))
	for u := range req {
		users = append(users, u)
	}
	sort.Strings(users)
	for _, target := range users {
		objs := req[target]
		ids := make([]string, 0, len(objs))
		for id := range objs {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, keyID := range ids {
			var got []storage.Signature
			var fail *signatureFailure
			if target == signer {
				got, fail, err = h.checkOwnSignature(ctx, signer, own, ownMaster, keyID, objs[keyID])
			} else {
				got, fail, err = h.checkUserSignature(ctx, signer, own, target, keyID, objs[keyID])
			}
			if err != nil {
				return nil, err
			}
			if fail != nil {
				if failures[target] == nil {
					failures[target] = map[string]*signatureFailure{}
				}
				failures[target][keyID] = fail
				continue
			}
			sigs = append(sigs, got...)
			if target == signer {
				changed[signer] = keyID
			} else if _, ok := changed[signer]; !ok {
				// Only the signer's own devices need to hear of a
				// signature on another user's key (Synapse's rule).
				changed[signer] = ownMaster
			}
		}
	}
	if len(sigs) > 0 {
		if err := h.store.AddSignatures(ctx, sigs, changed); err != nil {
			return nil, err
		}
		h.notify.NotifyDeviceListChange(signer)
	}
	return map[string]any{"failures": failures}, nil
}

// checkOwnSignature checks signatures on one of the signer's own keys:
// a device signed by the self-signing key, or the master key signed by
// the signer's devices.
func (h *Handlers) checkOwnSignature(ctx context.Context, signer string, own map[string]string, ownMaster, keyID string, obj json.RawMessage) ([]storage.Signature, *signatureFailure, error) {
	if ownMaster != "" && keyID == ownMaster {
		if fail := matchesStored(obj, own[storage.KeyTypeMaster]); fail != nil {
			return nil, fail, nil
		}
		var o struct {
			Signatures map[string]map[string]string `json:"signatures"`
		}
		_ = json.Unmarshal(obj, &o)
		var out []storage.Signature
		for sigKey := range o.Signatures[signer] {
			deviceID, ok := strings.CutPrefix(sigKey, "ed25519:")
			if !ok || deviceID == ownMaster {
				continue // the master key's own signature is in the key itself
			}
			devs, err := h.store.DeviceKeysOf(ctx, signer, []string{deviceID})
			if err != nil {
				return nil, nil, err
			}
			if len(devs) == 0 {
				return nil, failure(httputil.CodeNotFound, "unknown device "+deviceID), nil
			}
			pub, err := deviceSigningKey(devs[0])
			if err != nil {
				return nil, failure(httputil.CodeInvalidSignature, err.Error()), nil
			}
			sig, err := verifySigned(obj, signer, sigKey, pub)
			if err != nil {
				return nil, failure(httputil.CodeInvalidSignature, "invalid signature by "+sigKey), nil
			}
			out = append(out, storage.Signature{OriginUserID: signer, OriginKeyID: sigKey, TargetUserID: signer, TargetKeyID: keyID, Signature: sig})
		}
		if len(out) == 0 {
			return nil, failure(httputil.CodeInvalidSignature, "no signature by one of the user's devices"), nil
		}
		return out, nil, nil
	}
	devs, err := h.store.DeviceKeysOf(ctx, signer, []string{keyID})
	if err != nil {
		return nil, nil, err
	}
	if len(devs) == 0 {
		return nil, failure(httputil.CodeNotFound, "unknown device or key "+keyID), nil
	}
	if fail := matchesStored(obj, devs[0].KeyJSON); fail != nil {
		return nil, fail, nil
	}
	ssk, ok := own[storage.KeyTypeSelfSigning]
	if !ok {
		return nil, failure(httputil.CodeInvalidSignature, "the user has no self-signing key"), nil
	}
	return verifyBy(obj, signer, ssk, keyID, signer)
}

// checkUserSignature checks a signature by the signer's user-signing key
// on another user's master key.
func (h *Handlers) checkUserSignature(ctx context.Context, signer string, own map[string]string, target, keyID string, obj json.RawMessage) ([]storage.Signature, *signatureFailure, error) {
	if !h.isLocal(target) {
		return nil, failure(httputil.CodeNotFound, "keys of remote users cannot be signed until federation is available"), nil
	}
	theirs, theirMaster, err := h.masterKeyOf(ctx, target)
	if err != nil {
		return nil, nil, err
	}
	if theirMaster == "" || keyID != theirMaster {
		return nil, failure(httputil.CodeNotFound, "only another user's master key may be signed"), nil
	}
	if fail := matchesStored(obj, theirs[storage.KeyTypeMaster]); fail != nil {
		return nil, fail, nil
	}
	usk, ok := own[storage.KeyTypeUserSigning]
	if !ok {
		return nil, failure(httputil.CodeInvalidSignature, "the signer has no user-signing key"), nil
	}
	return verifyBy(obj, signer, usk, keyID, target)
}

// verifyBy checks obj's signature by the cross-signing key signingKey
// (stored JSON) of signer and returns it as a Signature on target's keyID.
func verifyBy(obj json.RawMessage, signer, signingKey, keyID, target string) ([]storage.Signature, *signatureFailure, error) {
	pubStr, err := crossSigningPublicKey(json.RawMessage(signingKey))
	if err != nil {
		return nil, nil, err
	}
	pub, _ := decodeKey(pubStr)
	sig, err := verifySigned(obj, signer, "ed25519:"+pubStr, pub)
	if errors.Is(err, errNoSignature) {
		return nil, failure(httputil.CodeInvalidSignature, "no signature by the signer's key ed25519:"+pubStr), nil
	}
	if err != nil {
		return nil, failure(httputil.CodeInvalidSignature, "invalid signature"), nil
	}
	return []storage.Signature{{OriginUserID: signer, OriginKeyID: "ed25519:" + pubStr, TargetUserID: target, TargetKeyID: keyID, Signature: sig}}, nil, nil
}

// matchesStored refuses a signed object that is not the stored key.
func matchesStored(obj json.RawMessage, stored string) *signatureFailure {
	a, err := withoutSignatures(obj)
	if err != nil {
		return failure(httputil.CodeBadJSON, "the signed object is not a JSON object")
	}
	b, err := withoutSignatures(json.RawMessage(stored))
	if err != nil || a != b {
		return failure(httputil.CodeInvalidParam, "the signed object is not the stored key")
	}
	return nil
}

// deviceSigningKey returns a device's ed25519 key.
func deviceSigningKey(d storage.DeviceKeys) (ed25519.PublicKey, error) {
	var dk deviceKeysJSON
	if err := json.Unmarshal([]byte(d.KeyJSON), &dk); err != nil {
		return nil, err
	}
	return decodeKey(dk.Keys["ed25519:"+d.DeviceID])
}
