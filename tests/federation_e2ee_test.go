//go:build goolm

package tests

import (
	"testing"

	"maunium.net/go/mautrix"
)

// TestFederationE2EE: users of two servers talk in an encrypted room with
// real Olm/Megolm clients (mautrix-go's goolm). Each client asks its own
// server for the other's device keys and one-time keys (passed on over
// federation's /user/keys/query and /user/keys/claim), shares its Megolm
// session by to-device messages that cross as m.direct_to_device EDUs,
// and decrypts the other's messages. A device logged in later on either
// server is announced to the other (m.device_list_update, then
// device_lists.changed) and takes part too.
func TestFederationE2EE(t *testing.T) {
	t.Parallel()
	federationEngines(t, []string{fedA, fedB}, func(t *testing.T, f *Federation) {
		a, b := f.Servers[fedA], f.Servers[fedB]
		aliceC, bobC := a.Register("alice"), b.Register("bob")
		alice1 := startE2EEDevice(t, "alice1", aliceC)
		alice2 := startE2EEDevice(t, "alice2", a.Login(aliceC.UserID))
		bob1 := startE2EEDevice(t, "bob1", bobC)
		bob2 := startE2EEDevice(t, "bob2", b.Login(bobC.UserID))

		// Encrypted by the private-room policy of A.
		room := createRoom(t, a, aliceC, map[string]any{"preset": "private_chat", "name": "Ministries, encrypted"})
		if _, err := aliceC.InviteUser(ctx(), room, &mautrix.ReqInviteUser{UserID: bobC.UserID}); err != nil {
			t.Fatalf("alice invites bob over federation: %v", err)
		}
		if _, err := bobC.JoinRoom(ctx(), room.String(), &mautrix.ReqJoinRoom{Via: []string{fedA}}); err != nil {
			t.Fatalf("bob joins over federation: %v", err)
		}
		devices := []*e2eeDevice{alice1, alice2, bob1, bob2}
		for _, d := range devices {
			d.waitRoom(room, alice1, bob1)
		}
		eventually(t, "alice1 learns alice2", func() bool { return alice1.knowsDevice(aliceC.UserID, alice2.c.DeviceID) })
		eventually(t, "bob1 learns bob2", func() bool { return bob1.knowsDevice(bobC.UserID, bob2.c.DeviceID) })
		exchange(t, "across servers", room, devices)

		// The keys came from the other server: each side knows both of
		// the other's devices.
		for _, d := range []*e2eeDevice{alice1, alice2} {
			for _, other := range []*e2eeDevice{bob1, bob2} {
				if !d.knowsDevice(bobC.UserID, other.c.DeviceID) {
					t.Errorf("%s does not know %s", d.name, other.name)
				}
			}
		}

		// A device of each user logged in after the room was joined.
		bob3 := startE2EEDevice(t, "bob3", b.Login(bobC.UserID))
		alice3 := startE2EEDevice(t, "alice3", a.Login(aliceC.UserID))
		for _, d := range []*e2eeDevice{bob3, alice3} {
			d.waitRoom(room, alice1, bob1)
		}
		for _, d := range []*e2eeDevice{alice1, alice2} {
			eventually(t, d.name+" learns bob3 from device_lists.changed", func() bool { return d.knowsDevice(bobC.UserID, bob3.c.DeviceID) })
		}
		for _, d := range []*e2eeDevice{bob1, bob2} {
			eventually(t, d.name+" learns alice3 from device_lists.changed", func() bool { return d.knowsDevice(aliceC.UserID, alice3.c.DeviceID) })
		}
		exchange(t, "with later devices", room, append(devices, bob3, alice3))
	})
}
