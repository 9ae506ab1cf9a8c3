package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	hsapi "github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
)

// What other servers ask about this server's users' keys (the federation
// component's /user/keys/query, /user/keys/claim, /user/devices) and the
// to-device messages they send (m.direct_to_device).

// federationDeviceID stands for the sending device of a to-device EDU in
// the idempotence key of its delivery: the EDU's message id is unique
// per sending user.
const federationDeviceID = "federation"

// QueryLocalKeys answers another server's key query for local users
// (others are left out). Devices' display names are not shown to other
// servers (Synapse's default), nor user-signing keys.
func (h *Handlers) QueryLocalKeys(ctx context.Context, users map[string][]string) (hsapi.KeysQueryResult, error) {
	resp := queryResponse{
		DeviceKeys:      map[string]map[string]json.RawMessage{},
		MasterKeys:      map[string]json.RawMessage{},
		SelfSigningKeys: map[string]json.RawMessage{},
		UserSigningKeys: map[string]json.RawMessage{},
	}
	var local []string
	for u := range users {
		if h.isLocal(u) {
			local = append(local, u)
		}
	}
	if len(local) > maxQueryUsers {
		return hsapi.KeysQueryResult{}, fmt.Errorf("%w: at most %d users per query", hsapi.ErrTooLarge, maxQueryUsers)
	}
	slices.Sort(local)
	if err := h.queryLocal(ctx, "", local, users, false, &resp); err != nil {
		return hsapi.KeysQueryResult{}, err
	}
	return hsapi.KeysQueryResult{DeviceKeys: resp.DeviceKeys, MasterKeys: resp.MasterKeys, SelfSigningKeys: resp.SelfSigningKeys}, nil
}

// ClaimLocalKeys claims one-time keys of local users for another server.
func (h *Handlers) ClaimLocalKeys(ctx context.Context, claims map[string]map[string]string) (map[string]map[string]map[string]json.RawMessage, error) {
	n := 0
	for _, devs := range claims {
		n += len(devs)
	}
	if n > maxClaims {
		return nil, fmt.Errorf("%w: at most %d devices per claim", hsapi.ErrTooLarge, maxClaims)
	}
	out := map[string]map[string]map[string]json.RawMessage{}
	for userID, devs := range claims {
		if !h.isLocal(userID) {
			continue
		}
		if err := h.claimLocal(ctx, userID, devs, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// LocalUserDevices lists a local user's devices with their keys and
// cross-signing keys, with the stream id of the user's last device-list
// change: the prev_id the EDU of their next change names, so that a
// server keeping a copy of the list applies it in place.
func (h *Handlers) LocalUserDevices(ctx context.Context, userID string) (hsapi.UserDevices, error) {
	if !h.isLocal(userID) {
		return hsapi.UserDevices{}, hsapi.ErrNotLocal
	}
	var pos int64
	last, _, err := h.store.LatestDeviceChange(ctx, userID)
	switch {
	case err == nil:
		pos = last.StreamID
	case !errors.Is(err, storage.ErrNotFound):
		return hsapi.UserDevices{}, err
	}
	keys, err := h.QueryLocalKeys(ctx, map[string][]string{userID: nil})
	if err != nil {
		return hsapi.UserDevices{}, err
	}
	devices, err := h.store.Devices(ctx, userID)
	if err != nil {
		return hsapi.UserDevices{}, err
	}
	out := hsapi.UserDevices{UserID: userID, StreamID: pos, Devices: []hsapi.UserDevice{},
		MasterKey: keys.MasterKeys[userID], SelfSigningKey: keys.SelfSigningKeys[userID]}
	for _, d := range devices {
		out.Devices = append(out.Devices, hsapi.UserDevice{DeviceID: d.DeviceID, Keys: keys.DeviceKeys[userID][d.DeviceID]})
	}
	return out, nil
}

// ReceiveToDevice delivers another server's to-device messages to local
// devices, once per (sender, messageID).
func (h *Handlers) ReceiveToDevice(ctx context.Context, sender, eventType, messageID string, messages map[string]map[string]json.RawMessage) error {
	var local []storage.ToDeviceMessage
	users := make([]string, 0, len(messages))
	for u := range messages {
		users = append(users, u)
	}
	slices.Sort(users)
	for _, userID := range users {
		if !h.isLocal(userID) {
			continue
		}
		for deviceID, content := range messages[userID] {
			msg, err := json.Marshal(toDeviceEvent{Content: content, Sender: sender, Type: eventType})
			if err != nil {
				// Content that is not JSON: that device's message is
				// dropped, not the others.
				continue
			}
			local = append(local, storage.ToDeviceMessage{UserID: userID, DeviceID: deviceID, JSON: string(msg)})
		}
	}
	recipients, duplicate, err := h.store.SendToDevice(ctx, storage.ToDeviceTxn{UserID: sender, DeviceID: federationDeviceID, TxnID: messageID}, local)
	if err != nil || duplicate {
		return err
	}
	for _, u := range recipients {
		h.notify.NotifyToDevice(u)
	}
	return nil
}

// SignedDeviceKeys returns a local user's device keys as other servers
// are to keep them: with the signatures uploaded since (the user's
// self-signing key's, once the device is verified), and its display
// name; nil keys when the device has none.
func SignedDeviceKeys(ctx context.Context, store *storage.Store, userID, deviceID string) (json.RawMessage, *string, error) {
	all, err := store.KeysOfUsers(ctx, []string{userID})
	if err != nil {
		return nil, nil, err
	}
	for _, d := range all.Devices[userID] {
		if d.DeviceID != deviceID {
			continue
		}
		var sigs []storage.Signature
		for _, s := range all.Signatures {
			if s.TargetUserID == userID {
				sigs = append(sigs, s)
			}
		}
		keys, err := mergeSignatures(json.RawMessage(d.KeyJSON), groupSignatures(sigs, "")[deviceID])
		if err != nil {
			return nil, nil, err
		}
		return keys, d.DisplayName, nil
	}
	return nil, nil, nil
}

// PublicCrossSigningKeys are a local user's master and self-signing keys
// as other servers keep them (the m.signing_key_update EDU), with their
// public keys, which name their changes in the device-list stream.
type PublicCrossSigningKeys struct {
	Master, SelfSigning       json.RawMessage
	MasterPub, SelfSigningPub string
}

// Names reports whether deviceID, a device id of the device-list stream,
// names one of these keys: the change was of the user's cross-signing
// keys, not of a device.
func (k PublicCrossSigningKeys) Names(deviceID string) bool {
	return deviceID != "" && (deviceID == k.MasterPub || deviceID == k.SelfSigningPub)
}

// SignedCrossSigningKeys returns a local user's master key (with the
// owner's signatures on it) and self-signing key as other servers are
// to keep them; empty fields when the user has none.
func SignedCrossSigningKeys(ctx context.Context, store *storage.Store, userID string) (PublicCrossSigningKeys, error) {
	all, err := store.KeysOfUsers(ctx, []string{userID})
	if err != nil {
		return PublicCrossSigningKeys{}, err
	}
	var sigs []storage.Signature
	for _, s := range all.Signatures {
		if s.TargetUserID == userID {
			sigs = append(sigs, s)
		}
	}
	cs := all.CrossSigning[userID]
	var out PublicCrossSigningKeys
	if out.Master, out.MasterPub, err = masterKeyFor(userID, userID, cs, sigs); err != nil {
		return PublicCrossSigningKeys{}, err
	}
	if ssk, ok := cs[storage.KeyTypeSelfSigning]; ok {
		out.SelfSigning = json.RawMessage(ssk)
		if out.SelfSigningPub, err = crossSigningPublicKey(out.SelfSigning); err != nil {
			return PublicCrossSigningKeys{}, fmt.Errorf("stored self-signing key of %s: %w", userID, err)
		}
	}
	return out, nil
}
