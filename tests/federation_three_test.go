package tests

import (
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// TestFederationThreeServers: a room created on A is joined from B and
// C; messages, state changes made on A and on B, a redaction and a ban
// are seen on all three servers.
func TestFederationThreeServers(t *testing.T) {
	t.Parallel()
	federationEngines(t, []string{fedA, fedB, fedC}, func(t *testing.T, f *Federation) {
		a, b, c := f.Servers[fedA], f.Servers[fedB], f.Servers[fedC]
		alice, bob, carol := a.Register("alice"), b.Register("bob"), c.Register("carol")
		room := createRoom(t, a, alice, map[string]any{"preset": "public_chat"})
		for _, u := range []*mautrix.Client{bob, carol} {
			if _, err := u.JoinRoom(ctx(), room.String(), &mautrix.ReqJoinRoom{Via: []string{fedA}}); err != nil {
				t.Fatalf("%s joins: %v", u.UserID, err)
			}
		}
		type member struct {
			srv *Server
			c   *mautrix.Client
		}
		all := []member{{a, alice}, {b, bob}, {c, carol}}
		// eventually waits until check holds on every server.
		eventually := func(what string, check func(m member) bool) {
			t.Helper()
			for _, m := range all {
				deadline := time.Now().Add(15 * time.Second)
				for !check(m) {
					if time.Now().After(deadline) {
						t.Fatalf("%s: not seen by %s", what, m.c.UserID)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		}
		eventually("three joined members", func(m member) bool {
			j, err := m.c.JoinedMembers(ctx(), room)
			return err == nil && len(j.Joined) == 3
		})

		// Messages from each server reach the other two.
		for _, m := range all {
			sendText(t, m.c, room, "hello from "+m.c.UserID.Homeserver())
		}
		eventually("every message", func(m member) bool {
			bodies := roomBodies(t, m.c, room)
			for _, s := range []string{fedA, fedB, fedC} {
				if !slices.Contains(bodies, "hello from "+s) {
					return false
				}
			}
			return true
		})

		// State changes: alice names the room and lets bob set the topic;
		// bob sets it from B.
		if _, err := alice.SendStateEvent(ctx(), room, event.StateRoomName, "", map[string]string{"name": "Three ministries"}); err != nil {
			t.Fatal(err)
		}
		var pl event.PowerLevelsEventContent
		if err := alice.StateEvent(ctx(), room, event.StatePowerLevels, "", &pl); err != nil {
			t.Fatal(err)
		}
		pl.SetUserLevel(bob.UserID, 50)
		if _, err := alice.SendStateEvent(ctx(), room, event.StatePowerLevels, "", &pl); err != nil {
			t.Fatal(err)
		}
		eventually("bob's power", func(m member) bool {
			var got event.PowerLevelsEventContent
			return m.c.StateEvent(ctx(), room, event.StatePowerLevels, "", &got) == nil && got.GetUserLevel(bob.UserID) == 50
		})
		if _, err := bob.SendStateEvent(ctx(), room, event.StateTopic, "", map[string]string{"topic": "set on B"}); err != nil {
			t.Fatal(err)
		}
		eventually("the name and the topic", func(m member) bool {
			r := m.srv.Do("GET", roomPath(room, "state", "m.room.topic", ""), m.c.AccessToken, nil)
			n := m.srv.Do("GET", roomPath(room, "state", "m.room.name", ""), m.c.AccessToken, nil)
			return r.Status == 200 && r.Body["topic"] == "set on B" && n.Status == 200 && n.Body["name"] == "Three ministries"
		})

		// A redaction by A's admin of carol's message.
		secret := sendText(t, carol, room, "to be redacted")
		eventually("carol's message", func(m member) bool { return slices.Contains(roomBodies(t, m.c, room), "to be redacted") })
		if _, err := alice.RedactEvent(ctx(), room, secret); err != nil {
			t.Fatal(err)
		}
		eventually("the redaction", func(m member) bool {
			r := m.srv.Do("GET", roomPath(room, "event", string(secret)), m.c.AccessToken, nil)
			content, _ := r.Body["content"].(map[string]any)
			return r.Status == 200 && len(content) == 0
		})

		// A ban of carol: everyone sees it, and her server refuses her
		// messages in the room.
		if _, err := alice.BanUser(ctx(), room, &mautrix.ReqBanUser{UserID: carol.UserID, Reason: "test"}); err != nil {
			t.Fatal(err)
		}
		eventually("carol's ban", func(m member) bool {
			// A banned user still reads the room's state as it was at her
			// ban: carol's server has the ban too.
			r := m.srv.Do("GET", roomPath(room, "state", "m.room.member", carol.UserID.String()), m.c.AccessToken, nil)
			return r.Status == 200 && r.Body["membership"] == "ban"
		})
		if _, err := carol.SendText(ctx(), room, "still here?"); errcode(err) != "M_FORBIDDEN" {
			t.Errorf("a banned user's message on her own server: %v", err)
		}
	})
}

// roomBodies returns the bodies of room's messages as c reads them
// through /messages, newest first.
func roomBodies(t *testing.T, c *mautrix.Client, room id.RoomID) []string {
	t.Helper()
	resp, err := c.Messages(ctx(), room, "", "", mautrix.DirectionBackward, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range resp.Chunk {
		if e.Type != event.EventMessage {
			continue
		}
		_ = e.Content.ParseRaw(e.Type)
		if msg := e.Content.AsMessage(); msg != nil && msg.Body != "" {
			out = append(out, msg.Body)
		}
	}
	return out
}
