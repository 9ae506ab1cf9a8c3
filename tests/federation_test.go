package tests

import (
	"crypto/ed25519"
	"crypto/rand"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

// Server names of the federation tests: loopback servers, reached
// through federation.server_addresses, with certificates for these names
// from the test's CA.
const (
	fedA = "a.fed.test"
	fedB = "b.fed.test"
	fedC = "c.fed.test"
)

// TestFederationJoinAndMessages: a room created on A, a user of B joins
// it over federation, and messages flow both ways into both sides' /sync.
func TestFederationJoinAndMessages(t *testing.T) {
	federationEngines(t, []string{fedA, fedB}, func(t *testing.T, f *Federation) {
		a, b := f.Servers[fedA], f.Servers[fedB]
		alice, bob := a.Register("alice"), b.Register("bob")
		room := createRoom(t, a, alice, map[string]any{"preset": "public_chat", "name": "Ministries"})
		sendText(t, alice, room, "before bob")

		aliceSync, _ := newSyncer(t, alice, "")
		bobSync, _ := newSyncer(t, bob, "")

		if _, err := bob.JoinRoom(ctx(), room.String(), &mautrix.ReqJoinRoom{Via: []string{fedA}}); err != nil {
			t.Fatalf("bob joins over federation: %v", err)
		}
		// Bob's server has the room, its state included.
		bobSync.until("the joined room", func(r *mautrix.RespSync) bool { _, ok := r.Rooms.Join[room]; return ok })
		if name := stateContent(t, b, bob, room, "m.room.name", ""); name["name"] != "Ministries" {
			t.Fatalf("room name on B = %v", name)
		}
		// Alice sees bob join.
		aliceSync.until("bob's join", func(r *mautrix.RespSync) bool {
			return hasMember(r, room, bob.UserID, event.MembershipJoin)
		})

		sendText(t, alice, room, "from A")
		bobSync.until("alice's message", func(r *mautrix.RespSync) bool { return slices.Contains(timelineBodies(r, room), "from A") })
		sendText(t, bob, room, "from B")
		aliceSync.until("bob's message", func(r *mautrix.RespSync) bool { return slices.Contains(timelineBodies(r, room), "from B") })
		// Both servers agree on who is in the room.
		for _, s := range []struct {
			srv *Server
			c   *mautrix.Client
		}{{a, alice}, {b, bob}} {
			members, err := s.c.JoinedMembers(ctx(), room)
			if err != nil {
				t.Fatal(err)
			}
			if len(members.Joined) != 2 {
				t.Errorf("%s sees %d joined members, want 2", s.c.UserID, len(members.Joined))
			}
		}
	})
}

// hasMember reports whether resp's timeline or state of room holds a
// membership event of user.
func hasMember(resp *mautrix.RespSync, room id.RoomID, user id.UserID, m event.Membership) bool {
	jr, ok := resp.Rooms.Join[room]
	if !ok {
		return false
	}
	for _, evs := range [][]*event.Event{jr.Timeline.Events, jr.State.Events} {
		parseAll(evs)
		for _, e := range evs {
			if e.Type == event.StateMember && e.StateKey != nil && *e.StateKey == user.String() && e.Content.AsMember().Membership == m {
				return true
			}
		}
	}
	return false
}

// TestFederationRefusals: requests without a signature, with a wrong
// one, and from a server off the allow-list are refused; a join through
// a server off the list is never attempted.
func TestFederationRefusals(t *testing.T) {
	f := startFederation(t, storagetest.SQLiteURL, []string{fedA, fedB}, nil)
	_, forged, _ := ed25519.GenerateKey(rand.Reader)
	path := "/_matrix/federation/v1/state_ids/!nope:a.fed.test?event_id=%24x"

	// No signature at all.
	if status, body := f.fedRequest(t, fedA, fedB, fedA, "GET", path, nil, "", nil); status != 401 || body["errcode"] != "M_UNAUTHORIZED" {
		t.Errorf("unsigned request: %d %v", status, body)
	}
	// Signed by B's name with a key that is not B's.
	if status, body := f.fedRequest(t, fedA, fedB, fedA, "GET", path, nil, "ed25519:forged", forged); status != 401 || body["errcode"] != "M_UNAUTHORIZED" {
		t.Errorf("wrongly signed request: %d %v", status, body)
	}
	// Addressed to another server.
	if status, body := f.fedRequest(t, fedA, fedB, fedC, "GET", path, nil, "ed25519:forged", forged); status != 401 || body["errcode"] != "M_UNAUTHORIZED" {
		t.Errorf("request for another destination: %d %v", status, body)
	}
	// C is not on A's list.
	if status, body := f.fedRequest(t, fedA, fedC, fedA, "GET", path, nil, "ed25519:c", forged); status != 403 || body["errcode"] != "M_FORBIDDEN" {
		t.Errorf("request from a server off the list: %d %v", status, body)
	}
	// The key endpoints and /version need no signature.
	if status, body := f.fedRequest(t, fedA, fedB, fedA, "GET", "/_matrix/federation/v1/version", nil, "", nil); status != 200 {
		t.Errorf("version: %d %v", status, body)
	}

	// Outbound: A never asks C (off its list) to let alice in.
	alice := f.Servers[fedA].Register("alice")
	_, err := alice.JoinRoom(ctx(), "!room:"+fedC, &mautrix.ReqJoinRoom{Via: []string{fedC}})
	if errcode(err) != "M_NOT_FOUND" {
		t.Errorf("join through a server off the list: %v", err)
	}
}
