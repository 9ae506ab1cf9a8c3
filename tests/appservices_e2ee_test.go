//go:build goolm

package tests

import (
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// TestAppServiceE2EE has a bridge's user exchange encrypted messages with
// a mautrix-go client: the bridge makes its user's device without UIA
// (MSC4190) and runs mautrix's OlmMachine on it through device
// masquerading (MSC3202: its as_token with user_id and device_id), as
// encrypted mautrix bridges do.
func TestAppServiceE2EE(t *testing.T) {
	t.Parallel()
	bridgeEngines(t, func(t *testing.T, s *Server, tg, _ *testBridge) {
		aliceC := s.Register("alice")
		alice := startE2EEDevice(t, "alice", aliceC)

		bobID := id.NewUserID("tg_bob", serverName)
		if err := tg.AS.Intent(bobID).EnsureRegistered(ctx()); err != nil {
			t.Fatalf("register bridge user: %v", err)
		}
		bobC := tg.AS.Client(bobID)
		// The appservice's clients do not sync; this one will, as the
		// bridge's crypto device.
		bobC.Syncer, bobC.Store = mautrix.NewDefaultSyncer(), mautrix.NewMemorySyncStore()
		if err := bobC.CreateDeviceMSC4190(ctx(), "TGBOBE2EE", "telegram bridge"); err != nil {
			t.Fatalf("create bridge device: %v", err)
		}
		bob := startE2EEDevice(t, "tg_bob", bobC)

		room := createRoom(t, s, aliceC, map[string]any{"preset": "private_chat", "invite": []string{bobID.String()}})
		if _, err := bobC.JoinRoomByID(ctx(), room); err != nil {
			t.Fatalf("bridge user join: %v", err)
		}
		alice.waitRoom(room, alice, bob)
		bob.waitRoom(room, alice, bob)
		exchange(t, "bridged", room, []*e2eeDevice{alice, bob})
	})
}
