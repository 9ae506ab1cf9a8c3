package keys

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"

	"github.com/matrix-gouv/homeserver/homeserver/storage"
)

// TestMasterKeySignaturesShown: who sees which signatures on a user's
// master key. Its owner and other servers see the owner's (its devices');
// another user sees only their own user-signing key's.
func TestMasterKeySignaturesShown(t *testing.T) {
	const alice, bob, carol = "@alice:here", "@bob:here", "@carol:here"
	pub, _ := newKey(t)
	master, _ := json.Marshal(map[string]any{"user_id": alice, "usage": []string{"master"}, "keys": map[string]string{"ed25519:" + pub: pub}})
	all := storage.UsersKeys{
		CrossSigning: map[string]map[string]string{alice: {storage.KeyTypeMaster: string(master)}},
		Signatures: []storage.Signature{
			{OriginUserID: alice, OriginKeyID: "ed25519:DEVICE", TargetUserID: alice, TargetKeyID: pub, Signature: "by-device"},
			{OriginUserID: bob, OriginKeyID: "ed25519:BOBUSK", TargetUserID: alice, TargetKeyID: pub, Signature: "by-bob"},
			{OriginUserID: carol, OriginKeyID: "ed25519:CAROLUSK", TargetUserID: alice, TargetKeyID: pub, Signature: "by-carol"},
		},
	}
	for _, tc := range []struct {
		name, requester string
		signers         []string
	}{
		{"the owner", alice, []string{alice}},
		{"another user", bob, []string{bob}},
		{"another server", "", []string{alice}},
	} {
		resp := queryResponse{DeviceKeys: map[string]map[string]json.RawMessage{}, MasterKeys: map[string]json.RawMessage{},
			SelfSigningKeys: map[string]json.RawMessage{}, UserSigningKeys: map[string]json.RawMessage{}}
		if err := (&Handlers{}).addUserKeys(tc.requester, alice, nil, false, all, all.Signatures, &resp); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var got struct {
			Signatures map[string]map[string]string `json:"signatures"`
		}
		if err := json.Unmarshal(resp.MasterKeys[alice], &got); err != nil {
			t.Fatalf("%s: master key %s: %v", tc.name, resp.MasterKeys[alice], err)
		}
		if signers := slices.Sorted(maps.Keys(got.Signatures)); !slices.Equal(signers, tc.signers) {
			t.Errorf("%s sees signatures by %v, want %v", tc.name, signers, tc.signers)
		}
	}
}
