//go:build goolm

package tests

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/crypto/backup"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
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
	t.Parallel()
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
		bob1.join(s, room)
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
		bob1.logout(s)
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
		var bob1Err error
		bob1.locked(func() { _, bob1Err = bob1.mach.DecryptMegolmEvent(bob1.ctx, afterEvt) })
		if !errors.Is(bob1Err, crypto.ErrNoSessionFound) {
			t.Fatalf("the deleted device decrypting alice1's next message: %v, want no session", bob1Err)
		}
		devices = []*e2eeDevice{alice1, alice2, bob2}
		exchange(t, "phase 3", room, devices)

		// 4. A user who joins and leaves.
		carol := startE2EEDevice(t, "carol", s.Register("carol"))
		alice1.invite(s, room, carol.c.UserID)
		carol.join(s, room)
		for _, d := range append(devices, carol) {
			d.waitRoom(room, alice1, bob2, carol)
		}
		exchange(t, "phase 4", room, append(devices, carol))
		carol.leave(s, room)
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
		carolEvt := bob2.encryptedEvent(evt)
		var carolErr error
		carol.locked(func() { _, carolErr = carol.mach.DecryptMegolmEvent(carol.ctx, carolEvt) })
		if !errors.Is(carolErr, crypto.ErrNoSessionFound) {
			t.Fatalf("carol decrypting a message sent after she left: %v, want no session", carolErr)
		}

		// None of the messages is readable on the server.
		db := storagetest.Open(t, s.Cfg.Database.URL)
		for _, needle := range []string{"message from", secret, afterCarol} {
			if where := findInDatabase(t, db, needle); where != "" {
				t.Errorf("%q found in table %s", needle, where)
			}
		}
		if where := findInDatabase(t, db, evt.String()); where == "" {
			t.Fatal("the database scan does not find the last event id")
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

// TestE2EECrossSigning: alice bootstraps cross-signing on one device and
// signs both of hers; bob's and alice's other device learn it through
// device_lists.changed and see her devices as cross-signed (trusted on
// first use); bob then verifies alice (signs her master key with his
// user-signing key), which makes her devices verified for him, and the
// server shows bob his signature on her master key.
func TestE2EECrossSigning(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		aliceC, bobC := s.Register("alice"), s.Register("bob")
		alice1 := startE2EEDevice(t, "alice1", aliceC)
		alice2 := startE2EEDevice(t, "alice2", s.Login(aliceC.UserID))
		bob1 := startE2EEDevice(t, "bob1", bobC)
		room := createRoom(t, s, aliceC, map[string]any{"preset": "private_chat", "invite": []string{bobC.UserID.String()}})
		bob1.join(s, room)
		devices := []*e2eeDevice{alice1, alice2, bob1}
		for _, d := range devices {
			d.waitRoom(room, alice1, bob1)
		}
		eventually(t, "alice1 learns alice2", func() bool { return alice1.knowsDevice(aliceC.UserID, alice2.c.DeviceID) })
		exchange(t, "before cross-signing", room, devices)

		bootstrap := func(d *e2eeDevice) {
			t.Helper()
			var err error
			d.locked(func() {
				var keys *crypto.CrossSigningKeysCache
				if keys, err = d.mach.GenerateCrossSigningKeys(); err != nil {
					return
				}
				// The first upload needs no user-interactive auth (spec v1.11).
				err = d.mach.PublishCrossSigningKeys(d.ctx, keys, func(*mautrix.RespUserInteractive) interface{} {
					t.Errorf("%s: the first cross-signing upload asked for UIA", d.name)
					return nil
				})
			})
			if err != nil {
				t.Fatalf("%s: publish cross-signing keys: %v", d.name, err)
			}
		}
		trustOf := func(d *e2eeDevice, user id.UserID, dev id.DeviceID) id.TrustState {
			trust := id.TrustStateUnset
			d.locked(func() {
				if device, err := d.mach.CryptoStore.GetDevice(d.ctx, user, dev); err == nil && device != nil {
					trust, _ = d.mach.ResolveTrustContext(d.ctx, device)
				}
			})
			return trust
		}
		if got := trustOf(bob1, aliceC.UserID, alice2.c.DeviceID); got != id.TrustStateUnset {
			t.Fatalf("alice2 for bob1 before cross-signing: %s, want %s", got, id.TrustStateUnset)
		}
		bootstrap(alice1)
		for _, dev := range []id.DeviceID{alice1.c.DeviceID, alice2.c.DeviceID} {
			var err error
			alice1.locked(func() {
				var device *id.Device
				if device, err = alice1.mach.GetOrFetchDevice(alice1.ctx, aliceC.UserID, dev); err == nil {
					err = alice1.mach.SignOwnDevice(alice1.ctx, device)
				}
			})
			if err != nil {
				t.Fatalf("alice1 signs %s: %v", dev, err)
			}
		}

		for _, c := range []struct {
			d   *e2eeDevice
			dev id.DeviceID
		}{{bob1, alice1.c.DeviceID}, {bob1, alice2.c.DeviceID}, {alice2, alice1.c.DeviceID}} {
			eventually(t, fmt.Sprintf("%s sees %s cross-signed", c.d.name, c.dev), func() bool {
				return trustOf(c.d, aliceC.UserID, c.dev) == id.TrustStateCrossSignedTOFU
			})
		}

		// bob verifies alice.
		bootstrap(bob1)
		var bobPub *crypto.CrossSigningPublicKeysCache
		var err error
		bob1.locked(func() {
			var pub *crypto.CrossSigningPublicKeysCache
			if pub, err = bob1.mach.GetCrossSigningPublicKeys(bob1.ctx, aliceC.UserID); err != nil || pub == nil {
				err = fmt.Errorf("bob1's copy of alice's cross-signing keys: %v, %w", pub, err)
				return
			}
			if err = bob1.mach.SignUser(bob1.ctx, aliceC.UserID, pub.MasterKey); err != nil {
				return
			}
			bobPub, err = bob1.mach.GetOwnCrossSigningPublicKeys(bob1.ctx)
		})
		if err != nil {
			t.Fatalf("bob1 signs alice's master key: %v", err)
		}
		if got := trustOf(bob1, aliceC.UserID, alice2.c.DeviceID); got != id.TrustStateCrossSignedVerified {
			t.Fatalf("alice2 for bob1 after verification: %s, want %s", got, id.TrustStateCrossSignedVerified)
		}
		q, err := bobC.QueryKeys(ctx(), queryReq(aliceC.UserID))
		if err != nil {
			t.Fatal(err)
		}
		if sig := q.MasterKeys[aliceC.UserID].Signatures[bobC.UserID][id.NewKeyID(id.KeyAlgorithmEd25519, bobPub.UserSigningKey.String())]; sig == "" {
			t.Fatalf("bob does not see his signature on alice's master key: %+v", q.MasterKeys[aliceC.UserID])
		}
	})
}

// TestE2EEKeyBackup: alice's device backs up the Megolm session of a
// message (encrypted to a backup key, as Element does); a device she logs
// in later cannot read that message from the room keys it is sent, but
// restores the backup with the key (what Element's recovery key gives)
// and then decrypts it.
func TestE2EEKeyBackup(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		aliceC, bobC := s.Register("alice"), s.Register("bob")
		alice1 := startE2EEDevice(t, "alice1", aliceC)
		bob1 := startE2EEDevice(t, "bob1", bobC)
		room := createRoom(t, s, aliceC, map[string]any{"preset": "private_chat", "invite": []string{bobC.UserID.String()}})
		bob1.join(s, room)
		for _, d := range []*e2eeDevice{alice1, bob1} {
			d.waitRoom(room, alice1, bob1)
		}
		const old = "ordre du jour de lundi"
		evt := alice1.send(room, old)
		bob1.waitDecrypted(evt, old)
		sessionID := bob1.encryptedEvent(evt).Content.AsEncrypted().SessionID

		// alice1 creates a backup version and backs the session up.
		key, err := backup.NewMegolmBackupKey()
		if err != nil {
			t.Fatal(err)
		}
		version, err := aliceC.CreateKeyBackupVersion(ctx(), &mautrix.ReqRoomKeysVersionCreate[backup.MegolmAuthData]{
			Algorithm: id.KeyBackupAlgorithmMegolmBackupV1,
			AuthData:  backup.MegolmAuthData{PublicKey: id.Ed25519(base64.RawStdEncoding.EncodeToString(key.PublicKey().Bytes()))},
		})
		if err != nil {
			t.Fatalf("create backup version: %v", err)
		}
		var data *backup.MegolmSessionData
		alice1.locked(func() {
			var sess *crypto.InboundGroupSession
			if sess, err = alice1.mach.CryptoStore.GetGroupSession(alice1.ctx, room, sessionID); err != nil || sess == nil {
				err = fmt.Errorf("alice1's inbound session %s: %v, %w", sessionID, sess, err)
				return
			}
			var exported []byte
			if exported, err = sess.Internal.Export(sess.Internal.FirstKnownIndex()); err != nil {
				return
			}
			data = &backup.MegolmSessionData{Algorithm: id.AlgorithmMegolmV1, SenderKey: sess.SenderKey,
				SenderClaimedKeys: backup.SenderClaimedKeys{Ed25519: sess.SigningKey}, SessionKey: string(exported)}
		})
		if err != nil {
			t.Fatal(err)
		}
		enc, err := backup.EncryptSessionData(key, data)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := json.Marshal(enc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := aliceC.PutKeysInBackupForRoomAndSession(ctx(), version.Version, room, sessionID,
			&mautrix.ReqKeyBackupData{IsVerified: true, SessionData: raw}); err != nil {
			t.Fatalf("back the session up: %v", err)
		}

		// A device logged in later: the old message is in its first
		// sync, without a key.
		alice3 := startE2EEDevice(t, "alice3", s.Login(aliceC.UserID))
		oldEvt := alice3.encryptedEvent(evt)
		var decErr error
		alice3.locked(func() { _, decErr = alice3.mach.DecryptMegolmEvent(alice3.ctx, oldEvt) })
		if !errors.Is(decErr, crypto.ErrNoSessionFound) {
			t.Fatalf("alice3 before restoring: %v, want no session", decErr)
		}
		var restored id.KeyBackupVersion
		alice3.locked(func() { restored, err = alice3.mach.DownloadAndStoreLatestKeyBackup(alice3.ctx, key) })
		if err != nil || restored != version.Version {
			t.Fatalf("alice3 restores backup %q: %v (want version %q)", restored, err, version.Version)
		}
		var dec *event.Event
		alice3.locked(func() { dec, decErr = alice3.mach.DecryptMegolmEvent(alice3.ctx, oldEvt) })
		if decErr != nil {
			t.Fatalf("alice3 after restoring: %v", decErr)
		}
		if body := dec.Content.AsMessage().Body; body != old {
			t.Fatalf("alice3 decrypted %q, want %q", body, old)
		}
	})
}
