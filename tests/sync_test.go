package tests

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// joinedPair makes alice's room with bob joined, and returns both clients
// and the room.
func joinedPair(t *testing.T, s *Server) (alice, bob *mautrix.Client, room id.RoomID) {
	t.Helper()
	alice, bob = s.Register("alice"), s.Register("bob")
	room = createRoom(t, s, alice, map[string]any{"preset": "public_chat"})
	if _, err := bob.JoinRoomByID(ctx(), room); err != nil {
		t.Fatalf("bob joins: %v", err)
	}
	return alice, bob, room
}

func TestSyncLongPollDelivers(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob, room := joinedPair(t, s)
		// The join returned once sync had it: the initial sync shows it.
		sy, first := newSyncer(t, bob, "")
		if _, ok := first.Rooms.Join[room]; !ok {
			t.Fatalf("initial sync: room %s not in join", room)
		}
		// A long poll waits, then returns the message sent meanwhile.
		done := make(chan *mautrix.RespSync, 1)
		go func() { done <- sy.next(20 * time.Second) }()
		time.Sleep(200 * time.Millisecond)
		start := time.Now()
		sendText(t, alice, room, "hello bob")
		select {
		case resp := <-done:
			if got := timelineBodies(resp, room); !slices.Equal(got, []string{"hello bob"}) {
				t.Fatalf("long poll timeline = %q", got)
			}
			if time.Since(start) > 5*time.Second {
				t.Fatalf("long poll took %v", time.Since(start))
			}
		case <-time.After(15 * time.Second):
			t.Fatal("long poll never woke")
		}
		// Nothing new: a short poll returns empty with the same rooms
		// position.
		resp := sy.next(0)
		if _, ok := resp.Rooms.Join[room]; ok {
			t.Fatalf("nothing happened, yet room is in sync: %+v", resp.Rooms.Join[room])
		}
	})
}

func TestSyncGapIsLimitedAndPrevBatchPagesBack(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob, room := joinedPair(t, s)
		sy, _ := newSyncer(t, bob, `{"room":{"timeline":{"limit":3}}}`)
		sent := texts("gap", 8)
		for _, b := range sent {
			sendText(t, alice, room, b)
		}
		// Wait for the last message through alice's sync, then bob's
		// next sync spans the whole gap at once.
		waiter, first := newSyncer(t, alice, "")
		if !slices.Contains(timelineBodies(first, room), sent[7]) {
			waiter.until("the last message", func(r *mautrix.RespSync) bool { return slices.Contains(timelineBodies(r, room), sent[7]) })
		}
		resp := sy.next(0)
		jr := resp.Rooms.Join[room]
		if !jr.Timeline.Limited {
			t.Fatal("timeline of 3 after 8 messages is not limited")
		}
		if got := timelineBodies(resp, room); !slices.Equal(got, sent[5:]) {
			t.Fatalf("timeline = %q, want %q", got, sent[5:])
		}
		// prev_batch pages back to exactly the missing messages.
		msgs, err := bob.Messages(ctx(), room, jr.Timeline.PrevBatch, "", mautrix.DirectionBackward, nil, 5)
		if err != nil {
			t.Fatal(err)
		}
		parseAll(msgs.Chunk)
		if got := bodies(msgs.Chunk); !slices.Equal(got, reversed(sent[:5])) {
			t.Fatalf("/messages from prev_batch = %q, want %q", got, reversed(sent[:5]))
		}
	})
}

func TestSyncLeaveStopsRoom(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob, room := joinedPair(t, s)
		sy, _ := newSyncer(t, bob, "")
		if _, err := bob.LeaveRoom(ctx(), room); err != nil {
			t.Fatal(err)
		}
		resp := sy.until("bob's leave", func(r *mautrix.RespSync) bool { _, ok := r.Rooms.Leave[room]; return ok })
		if _, ok := resp.Rooms.Join[room]; ok {
			t.Fatal("left room still in join")
		}
		lr := resp.Rooms.Leave[room]
		last := lr.Timeline.Events[len(lr.Timeline.Events)-1]
		if last.Type != event.StateMember || last.GetStateKey() != bob.UserID.String() {
			t.Fatalf("leave timeline ends with %s %s", last.Type.Type, last.GetStateKey())
		}
		sendText(t, alice, room, "bob is gone")
		for i := 0; i < 2; i++ {
			resp := sy.next(300 * time.Millisecond)
			if _, ok := resp.Rooms.Join[room]; ok {
				t.Fatal("room came back after leaving")
			}
			if _, ok := resp.Rooms.Leave[room]; ok {
				t.Fatal("leave repeated")
			}
		}
		// A fresh initial sync shows the room only with include_leave.
		_, init := newSyncer(t, bob, "")
		if _, ok := init.Rooms.Leave[room]; ok {
			t.Fatal("initial sync without include_leave shows the left room")
		}
		_, init = newSyncer(t, bob, `{"room":{"include_leave":true}}`)
		if _, ok := init.Rooms.Leave[room]; !ok {
			t.Fatal("initial sync with include_leave misses the left room")
		}
		if got := timelineBodies(&mautrix.RespSync{Rooms: mautrix.RespSyncRooms{Join: map[id.RoomID]*mautrix.SyncJoinedRoom{room: {Timeline: init.Rooms.Leave[room].Timeline}}}}, room); slices.Contains(got, "bob is gone") {
			t.Fatal("left room's timeline shows a message after the leave")
		}
	})
}

func TestSyncLazyLoadedMembers(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		room := createRoom(t, s, alice, map[string]any{"preset": "public_chat"})
		var members []*mautrix.Client
		for i := 0; i < 4; i++ {
			c := s.Register(fmt.Sprintf("m%d", i))
			if _, err := c.JoinRoomByID(ctx(), room); err != nil {
				t.Fatal(err)
			}
			members = append(members, c)
		}
		// Only m1 and m3 speak in the last messages.
		sendText(t, members[1], room, "one")
		sendText(t, members[3], room, "three")
		sendText(t, members[1], room, "one again")
		_, resp := newSyncer(t, alice, `{"room":{"timeline":{"limit":3},"state":{"lazy_load_members":true}}}`)
		jr := resp.Rooms.Join[room]
		var got []string
		for _, e := range jr.State.Events {
			if e.Type == event.StateMember {
				got = append(got, e.GetStateKey())
			}
		}
		slices.Sort(got)
		want := []string{alice.UserID.String(), members[1].UserID.String(), members[3].UserID.String()}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("lazy-loaded members = %q, want %q (senders and the user)", got, want)
		}
		if jr.Summary.JoinedMemberCount == nil || *jr.Summary.JoinedMemberCount != 5 {
			t.Fatalf("summary joined count = %v, want 5", jr.Summary.JoinedMemberCount)
		}
	})
}

func TestSyncTypingExpires(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob, room := joinedPair(t, s)
		sy, _ := newSyncer(t, bob, "")
		if _, err := alice.UserTyping(ctx(), room, true, 1500*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		typing := func(r *mautrix.RespSync) []any {
			for _, e := range ephemeralOf(r, room, "m.typing") {
				ids, _ := e["user_ids"].([]any)
				return ids
			}
			return nil
		}
		sy.until("alice typing", func(r *mautrix.RespSync) bool { return len(typing(r)) == 1 })
		start := time.Now()
		sy.until("alice no longer typing", func(r *mautrix.RespSync) bool {
			return ephemeralOf(r, room, "m.typing") != nil && len(typing(r)) == 0
		})
		if time.Since(start) < 500*time.Millisecond {
			t.Fatalf("typing expired after %v, before its timeout", time.Since(start))
		}
		// Typing in a room one is not in is refused.
		other := createRoom(t, s, alice, map[string]any{"preset": "private_chat"})
		s.Do("PUT", roomPath(other, "typing", bob.UserID.String()), bob.AccessToken, map[string]any{"typing": true, "timeout": 1000}).Expect(t, 403, "M_FORBIDDEN")
		s.Do("PUT", roomPath(room, "typing", alice.UserID.String()), bob.AccessToken, map[string]any{"typing": true, "timeout": 1000}).Expect(t, 403, "M_FORBIDDEN")
	})
}

func TestSyncReceipts(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob, room := joinedPair(t, s)
		sy, _ := newSyncer(t, alice, "")
		ev := sendText(t, alice, room, "read me")
		if err := bob.SendReceipt(ctx(), room, ev, event.ReceiptTypeRead, nil); err != nil {
			t.Fatal(err)
		}
		resp := sy.until("bob's receipt", func(r *mautrix.RespSync) bool { return len(ephemeralOf(r, room, "m.receipt")) > 0 })
		rc := ephemeralOf(resp, room, "m.receipt")[0]
		if _, ok := rc[ev.String()].(map[string]any)["m.read"].(map[string]any)[bob.UserID.String()]; !ok {
			t.Fatalf("receipt content %v lacks bob's m.read of %s", rc, ev)
		}
		// A private receipt is for its owner only.
		ev2 := sendText(t, alice, room, "read me privately")
		if err := bob.SendReceipt(ctx(), room, ev2, event.ReceiptTypeReadPrivate, nil); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			r := sy.next(300 * time.Millisecond)
			for _, c := range ephemeralOf(r, room, "m.receipt") {
				if strings.Contains(fmt.Sprint(c), "m.read.private") {
					t.Fatal("alice sees bob's private receipt")
				}
			}
		}
		s.Do("POST", roomPath(room, "receipt", "m.bogus", ev.String()), bob.AccessToken, map[string]any{}).Expect(t, 400, "M_INVALID_PARAM")
		s.Do("POST", roomPath(room, "receipt", "m.read", "$nope"), bob.AccessToken, map[string]any{}).Expect(t, 404, "M_NOT_FOUND")
	})
}

func TestSyncTokensSurviveRestart(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob, room := joinedPair(t, s)
		sy, _ := newSyncer(t, bob, "")
		sendText(t, alice, room, "before restart")
		sy.until("first message", func(r *mautrix.RespSync) bool { return len(timelineBodies(r, room)) > 0 })
		s.Restart()
		alice.HomeserverURL, bob.HomeserverURL = mustParseURL(t, s.URL), mustParseURL(t, s.URL)
		sendText(t, alice, room, "after restart")
		resp := sy.until("message after restart", func(r *mautrix.RespSync) bool { return len(timelineBodies(r, room)) > 0 })
		if got := timelineBodies(resp, room); !slices.Equal(got, []string{"after restart"}) {
			t.Fatalf("after restart, timeline = %q: an event was lost or repeated", got)
		}
	})
}

func TestSyncAccountDataAndFilters(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, _, room := joinedPair(t, s)
		sy, _ := newSyncer(t, alice, "")
		if err := alice.SetAccountData(ctx(), "org.example.test", map[string]any{"a": 1}); err != nil {
			t.Fatal(err)
		}
		if err := alice.SetRoomAccountData(ctx(), room, "org.example.room", map[string]any{"b": 2}); err != nil {
			t.Fatal(err)
		}
		if err := alice.AddTag(ctx(), room, "m.favourite", 0.5); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		sy.until("account data", func(r *mautrix.RespSync) bool {
			for _, e := range r.AccountData.Events {
				seen[e.Type.Type] = true
			}
			if jr, ok := r.Rooms.Join[room]; ok {
				for _, e := range jr.AccountData.Events {
					seen[e.Type.Type] = true
				}
			}
			return seen["org.example.test"] && seen["org.example.room"] && seen["m.tag"]
		})
		s.Do("PUT", "/_matrix/client/v3/user/"+alice.UserID.String()+"/account_data/m.push_rules", alice.AccessToken, map[string]any{}).Expect(t, 405, "M_BAD_JSON")
		s.Do("GET", "/_matrix/client/v3/user/"+alice.UserID.String()+"/account_data/nothing.here", alice.AccessToken, nil).Expect(t, 404, "M_NOT_FOUND")
		s.Do("GET", "/_matrix/client/v3/user/@bob:localhost/account_data/org.example.test", alice.AccessToken, nil).Expect(t, 403, "M_FORBIDDEN")

		// Filters: stored, read back, used by id; another's refused.
		r := s.Do("POST", "/_matrix/client/v3/user/"+alice.UserID.String()+"/filter", alice.AccessToken,
			map[string]any{"room": map[string]any{"timeline": map[string]any{"limit": 1}}}).Expect(t, 200, "")
		fid, _ := r.Body["filter_id"].(string)
		got := s.Do("GET", "/_matrix/client/v3/user/"+alice.UserID.String()+"/filter/"+fid, alice.AccessToken, nil).Expect(t, 200, "")
		if !strings.Contains(string(got.Raw), `"limit":1`) {
			t.Fatalf("filter read back as %s", got.Raw)
		}
		s.Do("GET", "/_matrix/client/v3/user/"+alice.UserID.String()+"/filter/999999", alice.AccessToken, nil).Expect(t, 404, "M_NOT_FOUND")
		s.Do("POST", "/_matrix/client/v3/user/@bob:localhost/filter", alice.AccessToken, map[string]any{}).Expect(t, 403, "M_FORBIDDEN")
		for i := 0; i < 3; i++ {
			sendText(t, alice, room, fmt.Sprint("f", i))
		}
		_, resp := newSyncer(t, alice, fid)
		if n := len(resp.Rooms.Join[room].Timeline.Events); n != 1 {
			t.Fatalf("timeline with filter %s has %d events, want 1", fid, n)
		}
		s.Do("GET", "/_matrix/client/v3/sync?since=garbage", alice.AccessToken, nil).Expect(t, 400, "M_INVALID_PARAM")
	})
}

func TestSyncOwnEchoCarriesTransactionID(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob, room := joinedPair(t, s)
		mine, _ := newSyncer(t, alice, "")
		theirs, _ := newSyncer(t, bob, "")
		txn := "txn-echo-1"
		r := s.Do("PUT", roomPath(room, "send", "m.room.message", txn), alice.AccessToken, map[string]any{"msgtype": "m.text", "body": "echo"}).Expect(t, 200, "")
		// The send returned once sync had the event: the very next sync
		// of the sender's device has it, with its transaction id.
		resp := mine.next(0)
		jr, ok := resp.Rooms.Join[room]
		if !ok || len(jr.Timeline.Events) != 1 {
			t.Fatalf("sender's next sync lacks its event: %+v", resp.Rooms.Join)
		}
		ev := jr.Timeline.Events[0]
		if ev.ID.String() != r.Body["event_id"] || ev.Unsigned.TransactionID != txn {
			t.Fatalf("own echo %s has transaction_id %q, want %s with %q", ev.ID, ev.Unsigned.TransactionID, r.Body["event_id"], txn)
		}
		other := theirs.next(0).Rooms.Join[room]
		if other == nil || len(other.Timeline.Events) != 1 || other.Timeline.Events[0].Unsigned.TransactionID != "" {
			t.Fatalf("another user's sync shows the transaction id or misses the event")
		}
	})
}

func TestSyncInviteStateAfterAndFullState(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob := s.Register("alice"), s.Register("bob")
		sy, _ := newSyncer(t, bob, "")
		room := createRoom(t, s, alice, map[string]any{"preset": "private_chat", "name": "Secret plans", "invite": []string{bob.UserID.String()}})
		resp := sy.until("the invite", func(r *mautrix.RespSync) bool { _, ok := r.Rooms.Invite[room]; return ok })
		var sawName, sawInvite bool
		for _, e := range resp.Rooms.Invite[room].State.Events {
			sawName = sawName || e.Type == event.StateRoomName
			sawInvite = sawInvite || (e.Type == event.StateMember && e.GetStateKey() == bob.UserID.String())
		}
		if !sawName || !sawInvite {
			t.Fatalf("invite_state lacks the room name (%v) or the invite (%v)", sawName, sawInvite)
		}
		if _, err := bob.JoinRoomByID(ctx(), room); err != nil {
			t.Fatal(err)
		}
		sendText(t, alice, room, "welcome")
		// use_state_after (and its unstable name): state_after, not state.
		for _, param := range []string{"use_state_after", "org.matrix.msc4222.use_state_after"} {
			r := s.Do("GET", "/_matrix/client/v3/sync?"+param+"=true", bob.AccessToken, nil).Expect(t, 200, "")
			jr := r.Body["rooms"].(map[string]any)["join"].(map[string]any)[room.String()].(map[string]any)
			key := "state_after"
			if param != "use_state_after" {
				key = "org.matrix.msc4222.state_after"
			}
			after, ok := jr[key].(map[string]any)
			if !ok || len(after["events"].([]any)) == 0 {
				t.Fatalf("%s: no %s in %v", param, key, jr)
			}
		}
		// full_state sends the whole state on an incremental sync.
		token := sy.next(0).NextBatch
		r := s.Do("GET", "/_matrix/client/v3/sync?full_state=true&since="+token, bob.AccessToken, nil).Expect(t, 200, "")
		jr := r.Body["rooms"].(map[string]any)["join"].(map[string]any)[room.String()].(map[string]any)
		// The state before the timeline and the timeline's state events
		// make the whole state.
		n := len(jr["state"].(map[string]any)["events"].([]any))
		for _, e := range jr["timeline"].(map[string]any)["events"].([]any) {
			if _, ok := e.(map[string]any)["state_key"]; ok {
				n++
			}
		}
		if n < 7 {
			t.Fatalf("full_state gave %d state events in state and timeline", n)
		}
	})
}

func TestSyncTimelineAggregatesEdits(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob, room := joinedPair(t, s)
		orig := sendText(t, alice, room, "helo")
		plain := sendText(t, alice, room, "unedited")
		s.Do("PUT", roomPath(room, "send", "m.room.message", "edit-1"), alice.AccessToken, map[string]any{
			"msgtype": "m.text", "body": "* hello",
			"m.new_content": map[string]any{"msgtype": "m.text", "body": "hello"},
			"m.relates_to":  map[string]any{"rel_type": "m.replace", "event_id": orig.String()},
		}).Expect(t, 200, "")
		r := s.Do("GET", "/_matrix/client/v3/sync", bob.AccessToken, nil).Expect(t, 200, "")
		evs := r.Body["rooms"].(map[string]any)["join"].(map[string]any)[room.String()].(map[string]any)["timeline"].(map[string]any)["events"].([]any)
		seen := 0
		for _, e := range evs {
			ev := e.(map[string]any)
			unsigned, _ := ev["unsigned"].(map[string]any)
			_, hasRel := unsigned["m.relations"]
			switch ev["event_id"] {
			case orig.String():
				seen++
				if !hasRel {
					t.Fatalf("the edited message has no m.relations: %v", unsigned)
				}
			case plain.String():
				seen++
				if hasRel {
					t.Fatalf("an unedited message has m.relations: %v", unsigned)
				}
			}
		}
		if seen != 2 {
			t.Fatalf("timeline lacks the messages: %v", evs)
		}
	})
}
