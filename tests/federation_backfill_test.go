package tests

import (
	"net/url"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// TestFederationBackfill: a user who joins a room of another server
// pages back past his join into the history his server never had, which
// it fetches (/backfill, /state_ids, /state) and keeps: every message in
// order, the room's state events, down to m.room.create, with the state
// at each event (a topic changed midway reads as it was). History that
// visibility hides from his server stays hidden.
func TestFederationBackfill(t *testing.T) {
	t.Parallel()
	federationEngines(t, []string{fedA, fedB}, func(t *testing.T, f *Federation) {
		a, b := f.Servers[fedA], f.Servers[fedB]
		alice, bob := a.Register("alice"), b.Register("bob")
		room := createRoom(t, a, alice, map[string]any{"preset": "public_chat", "topic": "first topic"})
		want := texts("old", 30)
		var midway id.EventID
		for i, body := range want {
			if i == 15 {
				if _, err := alice.SendStateEvent(ctx(), room, event.StateTopic, "", map[string]string{"topic": "second topic"}); err != nil {
					t.Fatal(err)
				}
			}
			ev := sendText(t, alice, room, body)
			if i == 10 {
				midway = ev
			}
		}
		if _, err := bob.JoinRoom(ctx(), room.String(), &mautrix.ReqJoinRoom{Via: []string{fedA}}); err != nil {
			t.Fatalf("bob joins over federation: %v", err)
		}
		bobSync, _ := newSyncer(t, bob, "")
		sendText(t, alice, room, "new")
		bobSync.until("the new message", func(r *mautrix.RespSync) bool { return slices.Contains(timelineBodies(r, room), "new") })

		// Paging back page by page, as Element does.
		history, _ := allEvents(t, bob, room, mautrix.DirectionBackward, 10)
		msgs := bodies(history)
		var types []string
		for _, e := range history {
			types = append(types, e.Type.Type)
		}
		if !sameList(msgs, append([]string{"new"}, reversed(want)...)) {
			t.Fatalf("bob's history: %q", msgs)
		}
		if types[len(types)-1] != "m.room.create" {
			t.Errorf("history does not end with the room's creation: %q", types)
		}
		if !slices.Contains(types, "m.room.topic") || !slices.Contains(types, "m.room.power_levels") {
			t.Errorf("history lacks the room's state events: %q", types)
		}
		// The backfilled events have their state: the topic when the
		// eleventh message was sent was the first.
		ctxResp, err := bob.Context(ctx(), room, midway, nil, 2)
		if err != nil {
			t.Fatalf("context of a backfilled event: %v", err)
		}
		topic := ""
		for _, e := range ctxResp.State {
			if e.Type == event.StateTopic {
				_ = e.Content.ParseRaw(e.Type)
				topic = e.Content.AsTopic().Topic
			}
		}
		if topic != "first topic" || len(ctxResp.EventsBefore) != 1 || len(ctxResp.EventsAfter) != 1 {
			t.Errorf("context of a backfilled event: topic %q, %d before, %d after", topic, len(ctxResp.EventsBefore), len(ctxResp.EventsAfter))
		}
		// Paging again reads what is kept, and forward from the start
		// gives it all in order.
		again, _ := allMessages(t, bob, room, mautrix.DirectionBackward, 25)
		if !sameList(again, msgs) {
			t.Errorf("second paging: %q", again)
		}

		// A room whose history is "joined": what was said before bob's
		// server was in it is not his to read.
		hidden := createRoom(t, a, alice, map[string]any{"preset": "public_chat", "initial_state": []any{
			map[string]any{"type": "m.room.history_visibility", "state_key": "", "content": map[string]string{"history_visibility": "joined"}},
		}})
		sendText(t, alice, hidden, "secret")
		if _, err := bob.JoinRoom(ctx(), hidden.String(), &mautrix.ReqJoinRoom{Via: []string{fedA}}); err != nil {
			t.Fatal(err)
		}
		sendText(t, alice, hidden, "public")
		bobSync.until("the message after the join", func(r *mautrix.RespSync) bool { return slices.Contains(timelineBodies(r, hidden), "public") })
		got, _ := allMessages(t, bob, hidden, mautrix.DirectionBackward, 10)
		if !sameList(got, []string{"public"}) {
			t.Errorf("bob reads in a joined-history room: %q", got)
		}
	})
}

// TestFederationRedactionBeforeItsEvent: alice (A) redacts a message sent
// before bob's server (B) joined; B gets the redaction first, and the
// message only when bob pages back. The message then reads as redacted,
// with the redaction that did it (unsigned.redacted_because), as Element
// needs to show "Message deleted".
func TestFederationRedactionBeforeItsEvent(t *testing.T) {
	t.Parallel()
	federationEngines(t, []string{fedA, fedB}, func(t *testing.T, f *Federation) {
		a, b := f.Servers[fedA], f.Servers[fedB]
		alice, bob := a.Register("alice"), b.Register("bob")
		room := createRoom(t, a, alice, map[string]any{"preset": "public_chat"})
		secret := sendText(t, alice, room, "sent by mistake")
		sendText(t, alice, room, "after")
		if _, err := bob.JoinRoom(ctx(), room.String(), &mautrix.ReqJoinRoom{Via: []string{fedA}}); err != nil {
			t.Fatalf("bob joins over federation: %v", err)
		}
		bobSync, _ := newSyncer(t, bob, "")
		red, err := alice.RedactEvent(ctx(), room, secret)
		if err != nil {
			t.Fatal(err)
		}
		bobSync.until("the redaction", func(r *mautrix.RespSync) bool {
			for _, e := range r.Rooms.Join[room].Timeline.Events {
				if e.ID == red.EventID {
					return true
				}
			}
			return false
		})

		var found *event.Event
		history, _ := allEvents(t, bob, room, mautrix.DirectionBackward, 10)
		for _, e := range history {
			if e.ID == secret {
				found = e
			}
		}
		if found == nil {
			t.Fatal("the redacted message is not in bob's history")
		}
		if len(found.Content.VeryRaw) > 2 && string(found.Content.VeryRaw) != "{}" {
			t.Errorf("the redacted message has content: %s", found.Content.VeryRaw)
		}
		if found.Unsigned.RedactedBecause == nil || found.Unsigned.RedactedBecause.ID != red.EventID {
			t.Errorf("the redacted message does not say which redaction did it: %+v", found.Unsigned)
		}
	})
}

// TestFederationBackfilledThread: a thread started before bob's server
// (B) joined gets a reply after; once bob pages back, B has the old
// replies too (backfilled), and they sort as old: /relations gives the
// new reply first and pages through the old ones (negative positions),
// and the thread's latest reply is the new one.
func TestFederationBackfilledThread(t *testing.T) {
	t.Parallel()
	federationEngines(t, []string{fedA, fedB}, func(t *testing.T, f *Federation) {
		a, b := f.Servers[fedA], f.Servers[fedB]
		alice, bob := a.Register("alice"), b.Register("bob")
		room := createRoom(t, a, alice, map[string]any{"preset": "public_chat"})
		root := sendText(t, alice, room, "root")
		old1 := relatedTo(t, alice, room, "m.thread", root, "old 1")
		old2 := relatedTo(t, alice, room, "m.thread", root, "old 2")
		if _, err := bob.JoinRoom(ctx(), room.String(), &mautrix.ReqJoinRoom{Via: []string{fedA}}); err != nil {
			t.Fatalf("bob joins over federation: %v", err)
		}
		bobSync, _ := newSyncer(t, bob, "")
		recent := relatedTo(t, alice, room, "m.thread", root, "new")
		bobSync.until("the new reply", func(r *mautrix.RespSync) bool { return slices.Contains(timelineBodies(r, room), "new") })
		allMessages(t, bob, room, mautrix.DirectionBackward, 10)

		var got []id.EventID
		from := ""
		for pages := 0; pages < 10; pages++ {
			path := v1RoomPath(room, "relations", string(root), "m.thread") + "?limit=1"
			if from != "" {
				path += "&from=" + url.QueryEscape(from)
			}
			r := b.Do("GET", path, bob.AccessToken, nil).Expect(t, 200, "")
			for _, e := range r.Body["chunk"].([]any) {
				got = append(got, id.EventID(e.(map[string]any)["event_id"].(string)))
			}
			next, _ := r.Body["next_batch"].(string)
			if next == "" {
				break
			}
			from = next
		}
		if want := []id.EventID{recent, old2, old1}; !slices.Equal(got, want) {
			t.Errorf("the thread's replies, newest first: %v, want %v", got, want)
		}
		ev := b.Do("GET", roomPath(room, "event", string(root)), bob.AccessToken, nil).Expect(t, 200, "")
		rels, _ := ev.Body["unsigned"].(map[string]any)["m.relations"].(map[string]any)
		thread, _ := rels["m.thread"].(map[string]any)
		if latest, _ := thread["latest_event"].(map[string]any); thread["count"] != float64(3) || latest["event_id"] != string(recent) {
			t.Errorf("the thread's summary: %s", ev.Raw)
		}
	})
}
