package keys

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"

	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/httputil"
)

// maxQueryUsers bounds one /keys/query, so that one request cannot ask for
// the whole user base at once.
const maxQueryUsers = 10000

// queryResponse is the body of a /keys/query answer.
type queryResponse struct {
	Failures        map[string]any                        `json:"failures"`
	DeviceKeys      map[string]map[string]json.RawMessage `json:"device_keys"`
	MasterKeys      map[string]json.RawMessage            `json:"master_keys"`
	SelfSigningKeys map[string]json.RawMessage            `json:"self_signing_keys"`
	UserSigningKeys map[string]json.RawMessage            `json:"user_signing_keys"`
}

// Query is POST /keys/query: the device keys and cross-signing keys of the
// users asked for. Local users are answered from the database; remote ones
// through RemoteKeys (in failures while there is none).
func (h *Handlers) Query(r *http.Request) (any, error) {
	var req struct {
		DeviceKeys map[string][]string `json:"device_keys"`
	}
	if err := h.decode(r, &req); err != nil {
		return nil, err
	}
	if req.DeviceKeys == nil {
		return nil, httputil.MissingParam("device_keys is required")
	}
	if len(req.DeviceKeys) > maxQueryUsers {
		return nil, httputil.InvalidParam("at most %d users per query", maxQueryUsers)
	}
	requester := auth.DeviceFrom(r.Context()).UserID
	resp := queryResponse{
		Failures:        map[string]any{},
		DeviceKeys:      map[string]map[string]json.RawMessage{},
		MasterKeys:      map[string]json.RawMessage{},
		SelfSigningKeys: map[string]json.RawMessage{},
		UserSigningKeys: map[string]json.RawMessage{},
	}
	remote := map[string]map[string][]string{}
	users := make([]string, 0, len(req.DeviceKeys))
	for u := range req.DeviceKeys {
		users = append(users, u)
	}
	sort.Strings(users)
	var local []string
	for _, userID := range users {
		if h.isLocal(userID) {
			local = append(local, userID)
			continue
		}
		server := serverOf(userID)
		if server == "" {
			continue
		}
		if remote[server] == nil {
			remote[server] = map[string][]string{}
		}
		remote[server][userID] = req.DeviceKeys[userID]
	}
	if err := h.queryLocal(r.Context(), requester, local, req.DeviceKeys, true, &resp); err != nil {
		return nil, err
	}
	h.queryRemote(r.Context(), remote, &resp)
	return resp, nil
}

// queryLocal adds local users' keys to resp (devices[user] lists the
// devices asked for, all when empty), with the signatures requester may
// see, and the devices' display names when names is set. The keys of all the users are read in a few batched queries.
func (h *Handlers) queryLocal(ctx context.Context, requester string, users []string, devices map[string][]string, names bool, resp *queryResponse) error {
	if len(users) == 0 {
		return nil
	}
	all, err := h.store.KeysOfUsers(ctx, users)
	if err != nil {
		return err
	}
	sigsByUser := map[string][]storage.Signature{}
	for _, sg := range all.Signatures {
		sigsByUser[sg.TargetUserID] = append(sigsByUser[sg.TargetUserID], sg)
	}
	for _, userID := range users {
		if err := h.addUserKeys(requester, userID, devices[userID], names, all, sigsByUser[userID], resp); err != nil {
			return err
		}
	}
	return nil
}

// addUserKeys adds one local user's keys to resp.
func (h *Handlers) addUserKeys(requester, userID string, wanted []string, names bool, all storage.UsersKeys, sigs []storage.Signature, resp *queryResponse) error {
	out := map[string]json.RawMessage{}
	resp.DeviceKeys[userID] = out
	want := map[string]bool{}
	for _, d := range wanted {
		want[d] = true
	}
	// Signatures on devices are shown to everyone.
	byTarget := groupSignatures(sigs, "")
	for _, d := range all.Devices[userID] {
		if len(want) > 0 && !want[d.DeviceID] {
			continue
		}
		obj, err := mergeSignatures(json.RawMessage(d.KeyJSON), byTarget[d.DeviceID])
		if err != nil {
			return err
		}
		if names {
			if obj, err = withDisplayName(obj, d.DisplayName); err != nil {
				return err
			}
		}
		out[d.DeviceID] = obj
	}
	cs := all.CrossSigning[userID]
	// Other servers (no requester) see the owner's signatures on the
	// master key, not who among this server's users verified whom.
	viewer := requester
	if viewer == "" {
		viewer = userID
	}
	master, _, err := masterKeyFor(userID, viewer, cs, sigs)
	if err != nil {
		return err
	}
	if master != nil {
		resp.MasterKeys[userID] = master
	}
	if ssk, ok := cs[storage.KeyTypeSelfSigning]; ok {
		resp.SelfSigningKeys[userID] = json.RawMessage(ssk)
	}
	// The user-signing key says whom the user trusts: its owner alone may
	// see it.
	if usk, ok := cs[storage.KeyTypeUserSigning]; ok && userID == requester {
		resp.UserSigningKeys[userID] = json.RawMessage(usk)
	}
	return nil
}

// masterKeyFor returns userID's master key (from cs, the user's stored
// cross-signing keys) as viewer sees it, with its public key; nil when
// the user has none. Signatures on a master key are shown only to the
// user who made them: the owner sees its devices' signatures, another
// user its own user-signing key's (Synapse's rule).
func masterKeyFor(userID, viewer string, cs map[string]string, sigs []storage.Signature) (json.RawMessage, string, error) {
	master, ok := cs[storage.KeyTypeMaster]
	if !ok {
		return nil, "", nil
	}
	pub, err := crossSigningPublicKey(json.RawMessage(master))
	if err != nil {
		return nil, "", fmt.Errorf("stored master key of %s: %w", userID, err)
	}
	obj, err := mergeSignatures(json.RawMessage(master), groupSignatures(sigs, viewer)[pub])
	if err != nil {
		return nil, "", err
	}
	return obj, pub, nil
}

// groupSignatures groups sigs by target key id, then signer and key id;
// only those made by onlyBy when it is not empty.
func groupSignatures(sigs []storage.Signature, onlyBy string) map[string]map[string]map[string]string {
	out := map[string]map[string]map[string]string{}
	for _, s := range sigs {
		if onlyBy != "" && s.OriginUserID != onlyBy {
			continue
		}
		t := out[s.TargetKeyID]
		if t == nil {
			t = map[string]map[string]string{}
			out[s.TargetKeyID] = t
		}
		if t[s.OriginUserID] == nil {
			t[s.OriginUserID] = map[string]string{}
		}
		t[s.OriginUserID][s.OriginKeyID] = s.Signature
	}
	return out
}

// withDisplayName sets unsigned.device_display_name, as the spec shows it.
func withDisplayName(obj json.RawMessage, name *string) (json.RawMessage, error) {
	if name == nil {
		return obj, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(obj, &fields); err != nil {
		return nil, fmt.Errorf("device keys: %w", err)
	}
	unsigned := map[string]any{}
	if raw, ok := fields["unsigned"]; ok {
		_ = json.Unmarshal(raw, &unsigned)
	}
	unsigned["device_display_name"] = *name
	raw, err := json.Marshal(unsigned)
	if err != nil {
		return nil, fmt.Errorf("device keys: %w", err)
	}
	fields["unsigned"] = raw
	return json.Marshal(fields)
}

// queryRemote answers for remote users from the copies of their device
// lists (remotelists.go), and asks each server live for the others.
func (h *Handlers) queryRemote(ctx context.Context, remote map[string]map[string][]string, resp *queryResponse) {
	var all []string
	for _, users := range remote {
		for u := range users {
			all = append(all, u)
		}
	}
	copies := h.copiedLists(ctx, all)
	for server, users := range remote {
		for u, devices := range users {
			if l, ok := copies[u]; ok {
				fromCopy(l, devices, resp)
				delete(users, u)
			}
		}
		if len(users) == 0 {
			continue
		}
		if h.remote == nil {
			resp.Failures[server] = map[string]any{"status": http.StatusServiceUnavailable, "message": "federation is not available"}
			continue
		}
		res, err := h.remote.QueryKeys(ctx, server, users)
		if err != nil {
			h.log.WithError(err).WithField(fieldServer, server).Warn("remote key query failed")
			resp.Failures[server] = map[string]any{"status": http.StatusServiceUnavailable, "message": "the server did not answer"}
			continue
		}
		for u, devs := range res.DeviceKeys {
			if serverOf(u) == server {
				resp.DeviceKeys[u] = devs
			}
		}
		for u, k := range res.MasterKeys {
			if serverOf(u) == server {
				resp.MasterKeys[u] = k
			}
		}
		for u, k := range res.SelfSigningKeys {
			if serverOf(u) == server {
				resp.SelfSigningKeys[u] = k
			}
		}
	}
}
