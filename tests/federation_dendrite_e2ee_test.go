//go:build goolm

package tests

import (
	"testing"
)

// TestFederationDendriteE2EE: a user of ours and one of Dendrite's talk in
// an encrypted room with real Olm/Megolm clients (goolm): device keys and
// one-time keys cross between the two implementations (/user/keys/query
// and /user/keys/claim), Megolm sessions go as to-device EDUs, and each
// decrypts the other's messages.
func TestFederationDendriteE2EE(t *testing.T) {
	t.Parallel()
	s, ourName, d, _ := startWithDendrite(t)
	aliceC, daveC := s.Register("alice"), d.register(t, "dave")
	alice := startE2EEDevice(t, "alice", aliceC)
	dave := startE2EEDevice(t, "dave", daveC)
	room := createRoom(t, s, aliceC, map[string]any{"preset": "public_chat", "name": "encrypted, with Dendrite",
		"initial_state": []any{map[string]any{"type": "m.room.encryption", "state_key": "",
			"content": map[string]any{"algorithm": "m.megolm.v1.aes-sha2"}}}})
	joinFromDendrite(t, daveC, room, ourName)
	devices := []*e2eeDevice{alice, dave}
	for _, dev := range devices {
		dev.waitRoom(room, alice, dave)
	}
	exchange(t, "with Dendrite", room, devices)
}
