package tests

import (
	"encoding/json"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

// TestFederationPartition: two servers in a room are cut off from each
// other; each makes state changes the other does not see (A demotes bob
// and names the room; bob, on B, still thinking himself a moderator,
// sets the topic and names the room too). Once the link is back, both
// servers resolve the forked DAG to the same state, in which the
// demotion holds and bob's topic and name, which it forbids, do not.
func TestFederationPartition(t *testing.T) {
	t.Parallel()
	storagetest.EnginesEach(t, func(t *testing.T, dbURL func(testing.TB) string) {
		links, cutLinks := cuttableLinks(t)
		f := startFederation(t, dbURL, []string{fedA, fedB}, cutLinks)
		testFederationPartition(t, f, links)
	})
}

func testFederationPartition(t *testing.T, f *Federation, links map[string]*link) {
	a, b := f.Servers[fedA], f.Servers[fedB]
	alice, bob := a.Register("alice"), b.Register("bob")
	room := createRoom(t, a, alice, map[string]any{"preset": "public_chat", "name": "before",
		"power_level_content_override": map[string]any{"users": map[string]int{alice.UserID.String(): 100, bob.UserID.String(): 50}}})
	if _, err := bob.JoinRoom(ctx(), room.String(), &mautrix.ReqJoinRoom{Via: []string{fedA}}); err != nil {
		t.Fatal(err)
	}
	waitSameState(t, a, alice, b, bob, room)

	for _, l := range links {
		l.cut()
	}
	var pl event.PowerLevelsEventContent
	if err := alice.StateEvent(ctx(), room, event.StatePowerLevels, "", &pl); err != nil {
		t.Fatal(err)
	}
	pl.SetUserLevel(bob.UserID, 0)
	if _, err := alice.SendStateEvent(ctx(), room, event.StatePowerLevels, "", &pl); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendStateEvent(ctx(), room, event.StateRoomName, "", map[string]string{"name": "named on A"}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.SendStateEvent(ctx(), room, event.StateTopic, "", map[string]string{"topic": "set on B"}); err != nil {
		t.Fatalf("bob, unaware of his demotion, sets the topic on B: %v", err)
	}
	if _, err := bob.SendStateEvent(ctx(), room, event.StateRoomName, "", map[string]string{"name": "named on B"}); err != nil {
		t.Fatal(err)
	}
	// Neither side knows of the other's changes.
	time.Sleep(300 * time.Millisecond)

	for _, l := range links {
		l.restore()
	}
	// A message from each side after the link is back merges the forks.
	sendText(t, alice, room, "back on A")
	sendText(t, bob, room, "back on B")
	st := waitSameState(t, a, alice, b, bob, room)

	if st["m.room.power_levels"] == nil {
		t.Fatal("no power levels in the resolved state")
	}
	var resolved event.PowerLevelsEventContent
	if err := json.Unmarshal(st["m.room.power_levels"], &resolved); err != nil {
		t.Fatal(err)
	}
	if lvl := resolved.GetUserLevel(bob.UserID); lvl != 0 {
		t.Errorf("bob's level in the resolved state = %d, want 0 (the demotion holds)", lvl)
	}
	if topic, ok := st["m.room.topic"]; ok {
		t.Errorf("the resolved state holds bob's topic %s, which his demotion forbids", topic)
	}
	var name struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(st["m.room.name"], &name); err != nil || name.Name != "named on A" {
		t.Errorf("the resolved name = %q (%v), want A's: bob's is forbidden too", name.Name, err)
	}
}

// waitSameState waits until the two servers' current state of room (as
// their users read it) is the same, and returns its content by type
// (state key "" only).
func waitSameState(t *testing.T, a *Server, alice *mautrix.Client, b *Server, bob *mautrix.Client, room id.RoomID) map[string]json.RawMessage {
	t.Helper()
	read := func(s *Server, c *mautrix.Client) (ids []string, content map[string]json.RawMessage) {
		r := s.Do("GET", roomPath(room, "state"), c.AccessToken, nil)
		var evs []struct {
			Type     string          `json:"type"`
			StateKey string          `json:"state_key"`
			EventID  string          `json:"event_id"`
			Content  json.RawMessage `json:"content"`
		}
		if r.Status != 200 || json.Unmarshal(r.Raw, &evs) != nil {
			return nil, nil
		}
		content = map[string]json.RawMessage{}
		for _, e := range evs {
			ids = append(ids, e.EventID)
			if e.StateKey == "" {
				content[e.Type] = e.Content
			}
		}
		slices.Sort(ids)
		return ids, content
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		idsA, content := read(a, alice)
		idsB, _ := read(b, bob)
		if idsA != nil && slices.Equal(idsA, idsB) {
			return content
		}
		if time.Now().After(deadline) {
			t.Fatalf("the servers' states differ:\nA %v\nB %v", idsA, idsB)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cuttableLinks returns a startFederation mutate that makes each server
// reach each other one through a link the test can cut, and the links by
// "from>to" server names: per federation, so per engine's run
// (storagetest.EnginesEach).
func cuttableLinks(t testing.TB) (map[string]*link, func(cfg *config.Config)) {
	links := map[string]*link{}
	return links, func(cfg *config.Config) {
		for other, addr := range cfg.Federation.ServerAddresses {
			l := newLink(t, addr)
			links[cfg.Global.ServerName+">"+other] = l
			cfg.Federation.ServerAddresses[other] = l.addr
		}
	}
}

// link is a TCP relay to a server's federation listener that the test can
// cut (every connection closed, new ones refused) and restore: a network
// partition between two servers.
type link struct {
	addr, target string
	mu           sync.Mutex
	down         bool
	conns        []net.Conn
}

func newLink(t testing.TB, target string) *link {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &link{addr: ln.Addr().String(), target: target}
	t.Cleanup(func() { ln.Close(); l.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go l.relay(c)
		}
	}()
	return l
}

func (l *link) relay(c net.Conn) {
	l.mu.Lock()
	if l.down {
		l.mu.Unlock()
		c.Close()
		return
	}
	l.mu.Unlock()
	up, err := net.Dial("tcp", l.target)
	if err != nil {
		c.Close()
		return
	}
	l.mu.Lock()
	l.conns = append(l.conns, c, up)
	l.mu.Unlock()
	go func() { _, _ = io.Copy(up, c); up.Close() }()
	_, _ = io.Copy(c, up)
	c.Close()
}

func (l *link) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = true
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
}

func (l *link) restore() {
	l.mu.Lock()
	l.down = false
	l.mu.Unlock()
}

// TestFederationGap: B is cut off from A while A's users say more than
// /get_missing_events brings back at once; C, which heard it all, then
// speaks. B fetches the missing events from C, and for the oldest of them,
// whose prev events it still lacks, the state before it (/state_ids,
// /state): C's message and the twenty before it reach B's users without
// waiting for A. Once the link is back, A's queue fills the hole and the
// three servers agree.
func TestFederationGap(t *testing.T) {
	t.Parallel()
	storagetest.EnginesEach(t, func(t *testing.T, dbURL func(testing.TB) string) {
		links, cutLinks := cuttableLinks(t)
		f := startFederation(t, dbURL, []string{fedA, fedB, fedC}, cutLinks)
		a, b, c := f.Servers[fedA], f.Servers[fedB], f.Servers[fedC]
		alice, bob, carol := a.Register("alice"), b.Register("bob"), c.Register("carol")
		room := createRoom(t, a, alice, map[string]any{"preset": "public_chat"})
		for _, u := range []*mautrix.Client{bob, carol} {
			if _, err := u.JoinRoom(ctx(), room.String(), &mautrix.ReqJoinRoom{Via: []string{fedA}}); err != nil {
				t.Fatal(err)
			}
		}
		waitSameState(t, a, alice, b, bob, room)
		waitSameState(t, a, alice, c, carol, room)

		links[fedA+">"+fedB].cut()
		links[fedB+">"+fedA].cut()
		said := texts("while B was away", 25)
		for _, body := range said {
			sendText(t, alice, room, body)
		}
		waitUntil(t, "carol hears alice", func() bool { return slices.Contains(roomBodies(t, carol, room), said[24]) })
		sendText(t, carol, room, "carol speaks")
		waitUntil(t, "bob hears carol", func() bool { return slices.Contains(roomBodies(t, bob, room), "carol speaks") })
		got := roomBodies(t, bob, room)
		for _, body := range said[5:] {
			if !slices.Contains(got, body) {
				t.Errorf("bob lacks %q of the missing events: %q", body, got)
			}
		}

		links[fedA+">"+fedB].restore()
		links[fedB+">"+fedA].restore()
		sendText(t, bob, room, "bob is back")
		waitUntil(t, "alice hears bob", func() bool { return slices.Contains(roomBodies(t, alice, room), "bob is back") })
		waitUntil(t, "bob has everything", func() bool {
			got := roomBodies(t, bob, room)
			for _, body := range said {
				if !slices.Contains(got, body) {
					return false
				}
			}
			return true
		})
		waitSameState(t, a, alice, b, bob, room)
	})
}
