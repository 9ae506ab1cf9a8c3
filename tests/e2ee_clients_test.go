//go:build goolm

package tests

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/id"
)

// TestE2EEClients drives real E2EE clients (mautrix-go's OlmMachine on
// goolm, each device with its own /sync loop) through the life of an
// encrypted room as Element users live it:
//
//  1. alice on two devices and bob on one, in a private room that the
//     encryption policy made encrypted: every message of every device is
//     decrypted by every other device, and the one-time keys that the
//     Olm sessions used up are topped up, driven by the counts in /sync;
//  2. bob logs in a second device: the others learn it through
//     device_lists.changed and it decrypts every new message;
//  3. bob logs his first device out: alice learns it through
//     device_lists.changed, her Megolm session rotates and the removed
//     device has no key for her next message, which the others read;
//  4. carol joins and leaves: alice sees her in device_lists.left and
//     carol has no key for the next message.
func TestE2EEClients(t *testing.T) {
	engines(t, func(t *testing.T, s *Server) {
		aliceC := s.Register("alice")
		bobC := s.Register("bob")
		alice1 := startE2EEDevice(t, "alice1", aliceC)
		alice2 := startE2EEDevice(t, "alice2", s.Login(aliceC.UserID))
		bob1 := startE2EEDevice(t, "bob1", bobC)
		if n := bob1.serverOTKCount(); n < bob1.otkTarget() {
			t.Fatalf("bob1 uploaded %d one-time keys, want at least %d", n, bob1.otkTarget())
		}

		// No m.room.encryption in the request: the policy adds it.
		room := createRoom(t, s, aliceC, map[string]any{"preset": "private_chat", "invite": []string{bobC.UserID.String()}})
		if _, err := bobC.JoinRoomByID(ctx(), room); err != nil {
			t.Fatal(err)
		}
		// alice1 was logged in before alice2: it learns alice2 from the
		// device_lists.changed of its sync (a client that sent before
		// that would not share its keys with alice2, as in Element).
		eventually(t, "alice1 learns alice2 from device_lists.changed", func() bool {
			return alice1.knowsDevice(aliceC.UserID, alice2.c.DeviceID)
		})
		devices := []*e2eeDevice{alice1, alice2, bob1}
		for _, d := range devices {
			d.waitRoom(room, alice1, bob1)
		}
		exchange(t, "phase 1", room, devices)

		// alice's two devices claimed one of bob1's one-time keys each;
		// the counts in bob1's syncs made its machine upload new ones.
		eventuallyEvery(t, "bob1's one-time keys topped up", 200*time.Millisecond, func() bool {
			return bob1.serverOTKCount() >= bob1.otkTarget()
		})
		bob1.mu.Lock()
		lowest := bob1.otkTarget()
		for _, n := range bob1.otkCounts {
			lowest = min(lowest, n)
		}
		bob1.mu.Unlock()
		if lowest >= bob1.otkTarget() {
			t.Fatalf("bob1's syncs never showed fewer than %d one-time keys", bob1.otkTarget())
		}

		// 2. A device logged in later.
		bob2 := startE2EEDevice(t, "bob2", s.Login(bobC.UserID))
		bob2.waitRoom(room, alice1, bob1)
		for _, d := range devices {
			eventually(t, d.name+" learns bob2 from device_lists.changed", func() bool {
				return d.knowsDevice(bobC.UserID, bob2.c.DeviceID)
			})
		}
		devices = append(devices, bob2)
		exchange(t, "phase 2", room, devices)
		before := alice1.send(room, "before bob1 leaves")
		beforeSession := bob2.encryptedEvent(before).Content.AsEncrypted().SessionID
		for _, d := range devices[1:] {
			d.waitDecrypted(before, "before bob1 leaves")
		}

		// 3. A device logged out.
		if _, err := bob1.c.Logout(ctx()); err != nil {
			t.Fatal(err)
		}
		for _, d := range []*e2eeDevice{alice1, alice2, bob2} {
			eventually(t, d.name+" learns bob1 left from device_lists.changed", func() bool {
				return !d.knowsDevice(bobC.UserID, bob1.c.DeviceID)
			})
		}
		<-bob1.done
		if errcode(bob1.syncErr) != "M_UNKNOWN_TOKEN" {
			t.Fatalf("bob1's sync ended with %v, want M_UNKNOWN_TOKEN", bob1.syncErr)
		}
		const secret = "after bob1 is gone"
		after := alice1.send(room, secret)
		for _, d := range []*e2eeDevice{alice2, bob2} {
			d.waitDecrypted(after, secret)
		}
		afterEvt := bob2.encryptedEvent(after)
		if got := afterEvt.Content.AsEncrypted().SessionID; got == beforeSession {
			t.Fatalf("alice1 kept Megolm session %s after bob1's device was deleted", got)
		}
		if _, err := bob1.mach.DecryptMegolmEvent(bob1.ctx, afterEvt); !errors.Is(err, crypto.ErrNoSessionFound) {
			t.Fatalf("the deleted device decrypting alice1's next message: %v, want no session", err)
		}
		devices = []*e2eeDevice{alice1, alice2, bob2}
		exchange(t, "phase 3", room, devices)

		// 4. A user who joins and leaves.
		carol := startE2EEDevice(t, "carol", s.Register("carol"))
		if _, err := aliceC.InviteUser(ctx(), room, &mautrix.ReqInviteUser{UserID: carol.c.UserID}); err != nil {
			t.Fatal(err)
		}
		if _, err := carol.c.JoinRoomByID(ctx(), room); err != nil {
			t.Fatal(err)
		}
		for _, d := range append(devices, carol) {
			d.waitRoom(room, alice1, bob2, carol)
		}
		exchange(t, "phase 4", room, append(devices, carol))
		if _, err := carol.c.LeaveRoom(ctx(), room); err != nil {
			t.Fatal(err)
		}
		for _, d := range devices {
			d.waitRoom(room, alice1, bob2)
		}
		eventually(t, "alice1 sees carol in device_lists.left", func() bool {
			alice1.mu.Lock()
			defer alice1.mu.Unlock()
			return alice1.left[carol.c.UserID]
		})
		const afterCarol = "after carol left"
		evt := alice1.send(room, afterCarol)
		for _, d := range devices[1:] {
			d.waitDecrypted(evt, afterCarol)
		}
		if _, err := carol.mach.DecryptMegolmEvent(carol.ctx, bob2.encryptedEvent(evt)); !errors.Is(err, crypto.ErrNoSessionFound) {
			t.Fatalf("carol decrypting a message sent after she left: %v, want no session", err)
		}
	})
}

// exchange has every device send one message and waits until every other
// device has decrypted every one of them.
func exchange(t *testing.T, phase string, room id.RoomID, devices []*e2eeDevice) {
	t.Helper()
	sent := map[id.EventID]string{}
	from := map[id.EventID]*e2eeDevice{}
	for _, d := range devices {
		body := fmt.Sprintf("%s: message from %s", phase, d.name)
		evt := d.send(room, body)
		sent[evt], from[evt] = body, d
	}
	for evt, body := range sent {
		for _, d := range devices {
			if d != from[evt] {
				d.waitDecrypted(evt, body)
			}
		}
	}
}
