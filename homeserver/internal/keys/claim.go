package keys

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// maxClaims bounds the devices of one /keys/claim.
const maxClaims = 10000

// Claim is POST /keys/claim: one key per device asked for, a one-time key
// that no other claim will ever get, or else the device's fallback key
// (which stays, marked used). Devices with neither are left out.
func (h *Handlers) Claim(r *http.Request) (any, error) {
	var req struct {
		OneTimeKeys map[string]map[string]string `json:"one_time_keys"`
	}
	if err := h.decode(r, &req); err != nil {
		return nil, err
	}
	if req.OneTimeKeys == nil {
		return nil, httputil.MissingParam("one_time_keys is required")
	}
	n := 0
	for _, devs := range req.OneTimeKeys {
		n += len(devs)
	}
	if n > maxClaims {
		return nil, httputil.InvalidParam("at most %d devices per claim", maxClaims)
	}
	out := map[string]map[string]map[string]json.RawMessage{}
	failures := map[string]any{}
	remote := map[string]map[string]map[string]string{}
	for userID, devs := range req.OneTimeKeys {
		if !h.isLocal(userID) {
			server := serverOf(userID)
			if server == "" {
				continue
			}
			if remote[server] == nil {
				remote[server] = map[string]map[string]string{}
			}
			remote[server][userID] = devs
			continue
		}
		if err := h.claimLocal(r.Context(), userID, devs, out); err != nil {
			return nil, err
		}
	}
	for server, claims := range remote {
		if h.remote == nil {
			failures[server] = map[string]any{"status": http.StatusServiceUnavailable, "message": "federation is not available"}
			continue
		}
		res, err := h.remote.ClaimKeys(r.Context(), server, claims)
		if err != nil {
			h.log.WithError(err).WithField(fieldServer, server).Warn("remote key claim failed")
			failures[server] = map[string]any{"status": http.StatusServiceUnavailable, "message": "the server did not answer"}
			continue
		}
		for u, devs := range res {
			if serverOf(u) == server {
				out[u] = devs
			}
		}
	}
	return map[string]any{"one_time_keys": out, "failures": failures}, nil
}

// claimLocal claims one key of each of a local user's devices asked for
// (device → algorithm) into out; a device without a key is left out.
func (h *Handlers) claimLocal(ctx context.Context, userID string, devs map[string]string, out map[string]map[string]map[string]json.RawMessage) error {
	for deviceID, alg := range devs {
		k, err := h.store.ClaimKey(ctx, userID, deviceID, alg)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		h.notify.NotifyKeyCounts(userID, deviceID)
		if out[userID] == nil {
			out[userID] = map[string]map[string]json.RawMessage{}
		}
		out[userID][deviceID] = map[string]json.RawMessage{k.KeyID: json.RawMessage(k.JSON)}
	}
	return nil
}
