package tests

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// TestSlidingSyncVersions: /versions lists simplified sliding sync, which
// matrix-rust-sdk (Element X) requires.
func TestSlidingSyncVersions(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		v := s.Do("GET", "/_matrix/client/versions", "", nil).Expect(t, 200, "")
		if u, _ := v.Body["unstable_features"].(map[string]any); u["org.matrix.simplified_msc3575"] != true {
			t.Fatalf("org.matrix.simplified_msc3575 not advertised: %s", v.Raw)
		}
	})
}

// TestSlidingSyncRoomList: a user in 300 rooms syncs with Element X's
// room list request. The first response has the 20 rooms with the latest
// activity, whole (initial, required_state, one timeline event, counts,
// bump_stamp); a message in a room outside the range brings that room
// alone in the next response, at the top; a message in a room inside it
// too; joins and name changes do not bump a room.
func TestSlidingSyncRoomList(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		rooms := createRooms(t, s, alice, 300)
		// The 20 most recent activity: messages in 20 rooms picked across
		// the list, oldest first.
		var picked []id.RoomID
		for i := 0; i < 20; i++ {
			picked = append(picked, rooms[(i*37)%300])
		}
		for i, r := range picked {
			sendText(t, alice, r, fmt.Sprintf("activity %d", i))
		}

		first := slidingSync(t, s, alice.AccessToken, "", 0, roomListRequest("t1", [2]int{0, 19}))
		if first.TxnID != "t1" {
			t.Errorf("txn_id %q, want t1", first.TxnID)
		}
		if got := first.Lists["all_rooms"].Count; got != 300 {
			t.Fatalf("all_rooms count %d, want 300", got)
		}
		if len(first.Rooms) != 20 {
			t.Fatalf("first response has %d rooms, want 20", len(first.Rooms))
		}
		order := roomsByBump(t, first)
		want := make([]string, 20)
		for i, r := range picked {
			want[19-i] = r.String()
		}
		if !slices.Equal(order, want) {
			t.Fatalf("rooms by bump_stamp:\n%v\nwant the 20 rooms with messages, newest first:\n%v", order, want)
		}
		for i, rid := range order {
			r := first.Rooms[rid]
			if !r.Initial {
				t.Errorf("%s: initial not set", rid)
			}
			if got := timelineTexts(r.Timeline); len(r.Timeline) != 1 || !slices.Equal(got, []string{fmt.Sprintf("activity %d", 19-i)}) {
				t.Errorf("%s: timeline %v, want its one message", rid, r.Timeline)
			}
			if !r.Limited || r.PrevBatch == "" {
				t.Errorf("%s: limited %v prev_batch %q: older events exist", rid, r.Limited, r.PrevBatch)
			}
			keys := stateKeys(r.RequiredState)
			for _, k := range [][2]string{{"m.room.create", ""}, {"m.room.name", ""}, {"m.room.power_levels", ""}, {"m.room.join_rules", ""},
				{"m.room.history_visibility", ""}, {"m.room.member", alice.UserID.String()}} {
				if !keys[k] {
					t.Errorf("%s: required_state lacks %v (has %v)", rid, k, keys)
				}
			}
			if r.Name == "" || r.JoinedCount == nil || *r.JoinedCount != 1 || r.InvitedCount == nil || r.Notifications == nil || r.Highlights == nil {
				t.Errorf("%s: name %q joined %v invited %v counts %v/%v", rid, r.Name, r.JoinedCount, r.InvitedCount, r.Notifications, r.Highlights)
			}
		}
		if first.Extensions.AccountData == nil || len(first.Extensions.AccountData.Global) == 0 {
			t.Errorf("account_data extension: no global account data (push rules) on the first response")
		}

		// A message in a room out of the range (the oldest room, no
		// message) brings it alone, to the top.
		quiet := rooms[1]
		if slices.Contains(picked, quiet) {
			t.Fatal("test set-up: the quiet room was picked")
		}
		sendText(t, alice, quiet, "wake up")
		next := slidingSync(t, s, alice.AccessToken, first.Pos, 10000, roomListRequest("t2", [2]int{0, 19}))
		if len(next.Rooms) != 1 {
			t.Fatalf("update has %d rooms, want only %s: %v", len(next.Rooms), quiet, next.Rooms)
		}
		r, ok := next.Rooms[quiet.String()]
		if !ok {
			t.Fatalf("update lacks %s: %v", quiet, next.Rooms)
		}
		if r.BumpStamp == nil || *r.BumpStamp <= *first.Rooms[order[0]].BumpStamp {
			t.Errorf("bump_stamp %v not above the previous top's %d", r.BumpStamp, *first.Rooms[order[0]].BumpStamp)
		}
		if !r.Initial {
			// The connection never had it: it is sent whole.
			t.Errorf("room new to the connection not initial")
		}
		if got := timelineTexts(r.Timeline); !slices.Equal(got, []string{"wake up"}) {
			t.Errorf("timeline %v", got)
		}
		if next.Lists["all_rooms"].Count != 300 {
			t.Errorf("count %d", next.Lists["all_rooms"].Count)
		}

		// A message in a room the connection has: incremental, only it.
		in := picked[5]
		sendText(t, alice, in, "again")
		third := slidingSync(t, s, alice.AccessToken, next.Pos, 10000, roomListRequest("t3", [2]int{0, 19}))
		if len(third.Rooms) != 1 {
			t.Fatalf("update has %d rooms, want only %s", len(third.Rooms), in)
		}
		r = third.Rooms[in.String()]
		if r.Initial || len(r.RequiredState) != 0 || r.Limited {
			t.Errorf("incremental room: initial %v required_state %v limited %v", r.Initial, r.RequiredState, r.Limited)
		}
		if got := timelineTexts(r.Timeline); !slices.Equal(got, []string{"again"}) || r.NumLive == nil || *r.NumLive != 1 {
			t.Errorf("timeline %v num_live %v", got, r.NumLive)
		}

		// A name change is no activity: the room comes with the new name
		// and its bump_stamp does not move.
		if _, err := alice.SendStateEvent(ctx(), in, event.StateRoomName, "", map[string]any{"name": "renamed"}); err != nil {
			t.Fatal(err)
		}
		fourth := slidingSync(t, s, alice.AccessToken, third.Pos, 10000, roomListRequest("t4", [2]int{0, 19}))
		r, ok = fourth.Rooms[in.String()]
		if !ok || r.Name != "renamed" || r.BumpStamp != nil {
			t.Errorf("after a rename: present %v name %q bump_stamp %v (unchanged, so absent)", ok, r.Name, r.BumpStamp)
		}

		// Nothing new: a long poll times out with no rooms.
		start := time.Now()
		empty := slidingSync(t, s, alice.AccessToken, fourth.Pos, 300, roomListRequest("t5", [2]int{0, 19}))
		if len(empty.Rooms) != 0 || time.Since(start) < 250*time.Millisecond {
			t.Errorf("idle long poll: %d rooms after %v", len(empty.Rooms), time.Since(start))
		}

		// Growing the range brings the next rooms, whole.
		grown := slidingSync(t, s, alice.AccessToken, empty.Pos, 0, roomListRequest("t6", [2]int{0, 49}))
		if len(grown.Rooms) != 29 {
			t.Errorf("growing the range to 50 brought %d rooms, want 29 (21 already sent)", len(grown.Rooms))
		}
		for rid, r := range grown.Rooms {
			if !r.Initial {
				t.Errorf("%s: not initial", rid)
			}
		}
	})
}

// TestSlidingSyncUnknownPos: a pos this server did not give, one of
// another connection, and one from before a restart answer M_UNKNOWN_POS.
func TestSlidingSyncUnknownPos(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		createRoom(t, s, alice, map[string]any{"name": "one"})
		first := slidingSync(t, s, alice.AccessToken, "", 0, roomListRequest("", [2]int{0, 19}))
		for _, pos := range []string{"garbage", "1", first.Pos + "0"} {
			s.Do("POST", ssPath(pos, 0), alice.AccessToken, roomListRequest("", [2]int{0, 19})).Expect(t, 400, "M_UNKNOWN_POS")
		}
		other := encryptionRequest("", "")
		s.Do("POST", ssPath(first.Pos, 0), alice.AccessToken, other).Expect(t, 400, "M_UNKNOWN_POS")
		// The previous pos stays usable (a retried request).
		second := slidingSync(t, s, alice.AccessToken, first.Pos, 0, roomListRequest("", [2]int{0, 19}))
		slidingSync(t, s, alice.AccessToken, first.Pos, 0, roomListRequest("", [2]int{0, 19}))
		// Another user's pos is unknown to this user.
		bob := s.Register("bob")
		s.Do("POST", ssPath(second.Pos, 0), bob.AccessToken, roomListRequest("", [2]int{0, 19})).Expect(t, 400, "M_UNKNOWN_POS")
		// Bad input is refused, not a 500.
		s.Do("POST", ssPath("", 0), alice.AccessToken, map[string]any{"lists": map[string]any{"l": map[string]any{"ranges": [][]int{{5, 1}}}}}).
			Expect(t, 400, "M_INVALID_PARAM")
		s.Do("POST", ssPath("", 0), alice.AccessToken, `{"lists": 3}`).Expect(t, 400, "M_BAD_JSON")
		s.Restart()
		s.Do("POST", ssPath(second.Pos, 0), alice.AccessToken, roomListRequest("", [2]int{0, 19})).Expect(t, 400, "M_UNKNOWN_POS")
		// Starting over works.
		again := slidingSync(t, s, alice.AccessToken, "", 0, roomListRequest("", [2]int{0, 19}))
		if len(again.Rooms) != 1 {
			t.Errorf("new connection after restart: %d rooms", len(again.Rooms))
		}
	})
}

// TestSlidingSyncLongPoll: a long-polling request wakes on a new message
// in a room of its list and returns it.
func TestSlidingSyncLongPoll(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		bob := s.Register("bob")
		room := createRoom(t, s, alice, map[string]any{"preset": "public_chat"})
		if _, err := bob.JoinRoomByID(ctx(), room); err != nil {
			t.Fatal(err)
		}
		sendText(t, alice, room, "hello")
		first := slidingSync(t, s, alice.AccessToken, "", 0, roomListRequest("", [2]int{0, 19}))
		if stateKeys(first.Rooms[room.String()].RequiredState)[[2]string{"m.room.member", bob.UserID.String()}] {
			t.Errorf("$LAZY sent bob's member event though he sent nothing in the timeline")
		}
		type result struct {
			r   Response
			err error
			at  time.Time
		}
		done := make(chan result, 1)
		go func() {
			r, err := s.tryDo("POST", ssPath(first.Pos, 20000), alice.AccessToken, roomListRequest("", [2]int{0, 19}))
			done <- result{r, err, time.Now()}
		}()
		time.Sleep(300 * time.Millisecond)
		select {
		case res := <-done:
			t.Fatalf("long poll returned before any event: %d %s", res.r.Status, res.r.Raw)
		default:
		}
		sent := time.Now()
		sendText(t, bob, room, "ping")
		var res result
		select {
		case res = <-done:
		case <-time.After(15 * time.Second):
			t.Fatal("long poll did not wake on a message")
		}
		if res.err != nil || res.r.Status != 200 {
			t.Fatalf("long poll: %v %d %s", res.err, res.r.Status, res.r.Raw)
		}
		var resp ssResponse
		if err := json.Unmarshal(res.r.Raw, &resp); err != nil {
			t.Fatal(err)
		}
		r := resp.Rooms[room.String()]
		if got := timelineTexts(r.Timeline); !slices.Equal(got, []string{"ping"}) {
			t.Fatalf("woken response timeline %v; body %s", got, res.r.Raw)
		}
		// $LAZY: bob's member event comes with his first message in the
		// connection's timeline.
		if !stateKeys(r.RequiredState)[[2]string{"m.room.member", bob.UserID.String()}] {
			t.Errorf("lazy member of the sender missing: %v", r.RequiredState)
		}
		t.Logf("woke %v after the send returned", res.at.Sub(sent))
	})
}

// TestSlidingSyncE2EE: the extensions of matrix-rust-sdk's encryption
// connection carry device list changes and to-device messages exactly
// once, one-time key counts and fallback key types every time.
func TestSlidingSyncE2EE(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		bob := s.Register("bob")
		room := createRoom(t, s, alice, map[string]any{"preset": "private_chat", "invite": []string{bob.UserID.String()}})
		if _, err := bob.JoinRoomByID(ctx(), room); err != nil {
			t.Fatal(err)
		}
		dev := newOlmDevice(t, bob)
		dev.upload(s, 5)
		// A message waiting before the connection starts comes in its
		// first response.
		early := &mautrix.ReqSendToDevice{Messages: map[id.UserID]map[id.DeviceID]*event.Content{
			bob.UserID: {bob.DeviceID: {Raw: map[string]any{"secret": "s0"}}},
		}}
		if _, err := alice.SendToDevice(ctx(), event.NewEventType("org.example.early"), early); err != nil {
			t.Fatal(err)
		}

		first := slidingSync(t, s, bob.AccessToken, "", 0, encryptionRequest("", ""))
		if td := first.Extensions.ToDevice; td == nil || len(td.Events) != 1 || td.Events[0]["type"] != "org.example.early" {
			t.Fatalf("to-device message sent before the connection: %+v", td)
		}
		e := first.Extensions.E2EE
		if e == nil || e.OneTimeKeysCount["signed_curve25519"] != 5 || e.FallbackKeyTypes == nil {
			t.Fatalf("e2ee extension: %+v", e)
		}
		if first.Extensions.ToDevice == nil || first.Extensions.ToDevice.NextBatch == "" {
			t.Fatalf("to_device extension: %+v", first.Extensions.ToDevice)
		}
		if len(first.Rooms) != 0 || len(first.Lists) != 0 {
			t.Errorf("encryption connection got rooms or lists: %v %v", first.Rooms, first.Lists)
		}

		// Alice logs in a new device: bob hears of it once.
		s.Login(alice.UserID)
		second := slidingSync(t, s, bob.AccessToken, first.Pos, 10000, encryptionRequest("", first.Extensions.ToDevice.NextBatch))
		if got := second.Extensions.E2EE.DeviceLists.Changed; !slices.Contains(got, alice.UserID.String()) {
			t.Fatalf("device_lists.changed %v lacks alice", got)
		}
		// Alice sends bob a to-device message: delivered once.
		msg := &mautrix.ReqSendToDevice{Messages: map[id.UserID]map[id.DeviceID]*event.Content{
			bob.UserID: {bob.DeviceID: {Raw: map[string]any{"secret": "s1"}}},
		}}
		if _, err := alice.SendToDevice(ctx(), event.NewEventType("org.example.test"), msg); err != nil {
			t.Fatal(err)
		}
		third := slidingSync(t, s, bob.AccessToken, second.Pos, 10000, encryptionRequest("", second.Extensions.ToDevice.NextBatch))
		if len(third.Extensions.E2EE.DeviceLists.Changed) != 0 {
			t.Errorf("device list change sent twice: %v", third.Extensions.E2EE.DeviceLists.Changed)
		}
		td := third.Extensions.ToDevice
		if td == nil || len(td.Events) != 1 || td.Events[0]["type"] != "org.example.test" || td.Events[0]["sender"] != alice.UserID.String() {
			t.Fatalf("to-device: %+v", td)
		}
		fourth := slidingSync(t, s, bob.AccessToken, third.Pos, 300, encryptionRequest("", td.NextBatch))
		if n := len(fourth.Extensions.ToDevice.Events); n != 0 {
			t.Errorf("to-device message delivered again: %v", fourth.Extensions.ToDevice.Events)
		}
		if len(fourth.Extensions.E2EE.DeviceLists.Changed) != 0 {
			t.Errorf("device list change sent again: %v", fourth.Extensions.E2EE.DeviceLists.Changed)
		}
		if fourth.Extensions.E2EE.OneTimeKeysCount["signed_curve25519"] != 5 {
			t.Errorf("key counts not in every response: %v", fourth.Extensions.E2EE.OneTimeKeysCount)
		}
		// A client without since gets what the connection has not
		// acknowledged... and a new connection starts from the inbox.
		if _, err := alice.SendToDevice(ctx(), event.NewEventType("org.example.test"), msg); err != nil {
			t.Fatal(err)
		}
		fifth := slidingSync(t, s, bob.AccessToken, fourth.Pos, 10000, encryptionRequest("", fourth.Extensions.ToDevice.NextBatch))
		if len(fifth.Extensions.ToDevice.Events) != 1 {
			t.Errorf("second to-device message: %v", fifth.Extensions.ToDevice.Events)
		}
		// Bob leaves the only room he shares with alice: she is left.
		if _, err := bob.LeaveRoom(ctx(), room); err != nil {
			t.Fatal(err)
		}
		sixth := slidingSync(t, s, bob.AccessToken, fifth.Pos, 10000, encryptionRequest("", fifth.Extensions.ToDevice.NextBatch))
		if !slices.Contains(sixth.Extensions.E2EE.DeviceLists.Left, alice.UserID.String()) {
			t.Errorf("device_lists.left %v lacks alice", sixth.Extensions.E2EE.DeviceLists.Left)
		}
	})
}

// TestSlidingSyncSubscriptionsAndFilters: a room subscription brings a
// room outside every range with its own timeline_limit; filters narrow
// lists (is_invite, is_encrypted, room_types, is_dm); an invite comes
// with invite_state; the receipts and typing extensions carry events.
func TestSlidingSyncSubscriptionsAndFilters(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		bob := s.Register("bob")
		// Private rooms are encrypted by default (encryption.private_rooms):
		// public ones are not.
		plain := createRoom(t, s, alice, map[string]any{"name": "plain", "preset": "public_chat"})
		for i := 0; i < 5; i++ {
			sendText(t, alice, plain, fmt.Sprintf("m%d", i))
		}
		enc := createRoom(t, s, alice, map[string]any{"name": "secret", "initial_state": []map[string]any{
			{"type": "m.room.encryption", "state_key": "", "content": map[string]any{"algorithm": "m.megolm.v1.aes-sha2"}}}})
		space := createRoom(t, s, alice, map[string]any{"name": "space", "preset": "public_chat", "creation_content": map[string]any{"type": "m.space"}})
		invite := createRoom(t, s, bob, map[string]any{"name": "from bob", "invite": []string{alice.UserID.String()}, "is_direct": true})
		// plain is a DM (m.direct) and enc a child of the space.
		if err := alice.SetAccountData(ctx(), "m.direct", map[string][]string{bob.UserID.String(): {plain.String()}}); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.SendStateEvent(ctx(), space, event.StateSpaceChild, enc.String(), map[string]any{"via": []string{"test.local"}}); err != nil {
			t.Fatal(err)
		}
		body := map[string]any{
			"lists": map[string]any{
				"dms":       map[string]any{"ranges": [][]int{{0, 9}}, "timeline_limit": 0, "required_state": [][]string{}, "filters": map[string]any{"is_dm": true}},
				"in_space":  map[string]any{"ranges": [][]int{{0, 9}}, "timeline_limit": 0, "required_state": [][]string{}, "filters": map[string]any{"spaces": []string{space.String()}}},
				"invites":   map[string]any{"ranges": [][]int{{0, 9}}, "timeline_limit": 1, "required_state": [][]string{}, "filters": map[string]any{"is_invite": true}},
				"encrypted": map[string]any{"ranges": [][]int{{0, 9}}, "timeline_limit": 1, "required_state": [][]string{}, "filters": map[string]any{"is_encrypted": true}},
				"spaces":    map[string]any{"ranges": [][]int{{0, 9}}, "timeline_limit": 0, "required_state": [][]string{}, "filters": map[string]any{"room_types": []string{"m.space"}}},
				"rooms":     map[string]any{"ranges": [][]int{{0, 0}}, "timeline_limit": 1, "required_state": [][]string{}, "filters": map[string]any{"not_room_types": []string{"m.space"}, "is_invite": false}},
			},
			"room_subscriptions": map[string]any{
				plain.String(): map[string]any{"timeline_limit": 3, "required_state": [][]string{{"*", "*"}}},
			},
			"extensions": map[string]any{"typing": map[string]any{"enabled": true}, "receipts": map[string]any{"enabled": true}},
		}
		first := slidingSync(t, s, alice.AccessToken, "", 0, body)
		counts := map[string]int{"dms": 1, "in_space": 1, "invites": 1, "encrypted": 2, "spaces": 1, "rooms": 2}
		for name, n := range counts {
			if first.Lists[name].Count != n {
				t.Errorf("list %s: count %d, want %d", name, first.Lists[name].Count, n)
			}
		}
		inv, ok := first.Rooms[invite.String()]
		if !ok || len(inv.InviteState) == 0 || !inv.Initial || inv.Name != "from bob" || !inv.IsDM {
			t.Errorf("invite: present %v %+v", ok, inv)
		}
		for _, r := range []id.RoomID{enc, space} {
			if _, ok := first.Rooms[r.String()]; !ok {
				t.Errorf("room %s missing", r)
			}
		}
		p := first.Rooms[plain.String()]
		if got := timelineTexts(p.Timeline); !slices.Equal(got, []string{"m2", "m3", "m4"}) {
			t.Errorf("subscription's timeline %v, want its 3 last messages", got)
		}
		if len(p.RequiredState) < 6 {
			t.Errorf("[*,*] gave %d state events", len(p.RequiredState))
		}

		// Typing and a receipt in the subscribed room reach the extensions.
		if _, err := alice.UserTyping(ctx(), plain, true, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		last := sendText(t, alice, plain, "read me")
		if err := alice.SendReceipt(ctx(), plain, last, event.ReceiptTypeRead, nil); err != nil {
			t.Fatal(err)
		}
		sawReceipt, sawTyping := false, false
		pos := first.Pos
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) && !(sawReceipt && sawTyping) {
			got := slidingSync(t, s, alice.AccessToken, pos, 2000, body)
			pos = got.Pos
			if x := got.Extensions.Receipts; x != nil && x.Rooms[plain.String()] != nil {
				sawReceipt = true
			}
			if x := got.Extensions.Typing; x != nil && x.Rooms[plain.String()] != nil {
				c, _ := x.Rooms[plain.String()]["content"].(map[string]any)
				users, _ := c["user_ids"].([]any)
				sawTyping = sawTyping || (len(users) == 1 && users[0] == alice.UserID.String())
			}
		}
		if !sawReceipt || !sawTyping {
			t.Errorf("receipts extension had the receipt: %v; typing extension had alice typing: %v", sawReceipt, sawTyping)
		}
		if !first.Rooms[plain.String()].IsDM {
			t.Errorf("is_dm not set on the m.direct room")
		}

		// The subscription is sticky until unsubscribe_rooms ends it.
		sendText(t, alice, plain, "still subscribed")
		got := slidingSync(t, s, alice.AccessToken, pos, 10000, map[string]any{})
		if got := timelineTexts(got.Rooms[plain.String()].Timeline); !slices.Equal(got, []string{"still subscribed"}) {
			t.Errorf("sticky subscription: %v", got)
		}
		sendText(t, alice, plain, "not any more")
		got = slidingSync(t, s, alice.AccessToken, got.Pos, 300, map[string]any{"unsubscribe_rooms": []string{plain.String()}})
		if _, ok := got.Rooms[plain.String()]; ok {
			t.Errorf("room sent after unsubscribing")
		}
	})
}

// TestSlidingSyncUnreadCountsAndTags: reading a room (a receipt) brings
// its new unread counts, and nothing else, in the next response; a room
// entering the range comes with its room account data (tags).
func TestSlidingSyncUnreadCountsAndTags(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		bob := s.Register("bob")
		room := createRoom(t, s, alice, map[string]any{"preset": "public_chat"})
		if _, err := bob.JoinRoomByID(ctx(), room); err != nil {
			t.Fatal(err)
		}
		sendText(t, bob, room, "one")
		last := sendText(t, bob, room, "two")
		first := slidingSync(t, s, alice.AccessToken, "", 0, roomListRequest("", [2]int{0, 0}))
		r := first.Rooms[room.String()]
		if r.Notifications == nil || *r.Notifications != 2 {
			t.Fatalf("notification_count %v, want 2", r.Notifications)
		}
		if err := alice.SendReceipt(ctx(), room, last, event.ReceiptTypeRead, nil); err != nil {
			t.Fatal(err)
		}
		next := slidingSync(t, s, alice.AccessToken, first.Pos, 10000, roomListRequest("", [2]int{0, 0}))
		r, ok := next.Rooms[room.String()]
		if !ok || r.Notifications == nil || *r.Notifications != 0 || len(r.Timeline) != 0 || r.Initial {
			t.Fatalf("after reading: present %v %+v", ok, r)
		}

		// A tagged room outside the range [0, 0] enters it with its tag.
		other := createRoom(t, s, alice, map[string]any{"name": "favourite"})
		sendText(t, alice, room, "newer")
		third := slidingSync(t, s, alice.AccessToken, next.Pos, 0, roomListRequest("", [2]int{0, 0}))
		if err := alice.AddTag(ctx(), other, event.RoomTagFavourite, 0.5); err != nil {
			t.Fatal(err)
		}
		// The tag alone: account data of a room out of range is not sent.
		fourth := slidingSync(t, s, alice.AccessToken, third.Pos, 0, roomListRequest("", [2]int{0, 0}))
		if ad := fourth.Extensions.AccountData; ad != nil && ad.Rooms[other.String()] != nil {
			t.Errorf("account data of a room out of range sent: %v", ad.Rooms)
		}
		sendText(t, alice, other, "bump")
		fifth := slidingSync(t, s, alice.AccessToken, fourth.Pos, 10000, roomListRequest("", [2]int{0, 0}))
		if _, ok := fifth.Rooms[other.String()]; !ok {
			t.Fatalf("tagged room not in range after a message: %v", fifth.Rooms)
		}
		ad := fifth.Extensions.AccountData
		if ad == nil || len(ad.Rooms[other.String()]) == 0 || ad.Rooms[other.String()][0]["type"] != "m.tag" {
			t.Fatalf("room account data of the room entering the range: %+v", ad)
		}
	})
}

// TestSlidingSyncMembershipChanges: an invite comes with invite_state;
// joining sends the room whole; leaving sends the departure once and the
// room then leaves the list. Element X's room subscription (timeline_limit
// 20) sends a room of the list again with the longer timeline.
func TestSlidingSyncMembershipChanges(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		bob := s.Register("bob")
		room := createRoom(t, s, alice, map[string]any{"preset": "private_chat", "name": "club", "invite": []string{bob.UserID.String()}})
		for i := 0; i < 4; i++ {
			sendText(t, alice, room, fmt.Sprintf("before %d", i))
		}
		first := slidingSync(t, s, bob.AccessToken, "", 0, roomListRequest("", [2]int{0, 19}))
		r := first.Rooms[room.String()]
		if !r.Initial || len(r.InviteState) == 0 || r.Name != "club" || len(r.Timeline) != 0 {
			t.Fatalf("invite: %+v", r)
		}
		if _, err := bob.JoinRoomByID(ctx(), room); err != nil {
			t.Fatal(err)
		}
		second := slidingSync(t, s, bob.AccessToken, first.Pos, 10000, roomListRequest("", [2]int{0, 19}))
		r = second.Rooms[room.String()]
		if !r.Initial || len(r.InviteState) != 0 || len(r.Timeline) != 1 || r.Timeline[0]["type"] != "m.room.member" || r.JoinedCount == nil || *r.JoinedCount != 2 {
			t.Fatalf("after joining: %+v", r)
		}

		// Element X opens the room: a subscription with a longer timeline.
		sub := roomListRequest("", [2]int{0, 19})
		sub["room_subscriptions"] = map[string]any{room.String(): map[string]any{
			"required_state": append(elementXRequiredState, []string{"m.room.pinned_events", ""}), "timeline_limit": 20}}
		third := slidingSync(t, s, bob.AccessToken, second.Pos, 0, sub)
		r = third.Rooms[room.String()]
		// Before bob joined, history visibility (shared) lets him see the
		// room's history since the invite.
		if got := timelineTexts(r.Timeline); !r.Initial || len(got) != 4 {
			t.Fatalf("subscribed room: initial %v messages %v", r.Initial, got)
		}

		if _, err := bob.LeaveRoom(ctx(), room); err != nil {
			t.Fatal(err)
		}
		fourth := slidingSync(t, s, bob.AccessToken, third.Pos, 10000, sub)
		r, ok := fourth.Rooms[room.String()]
		if !ok || r.Initial || len(r.Timeline) == 0 {
			t.Fatalf("after leaving: present %v %+v", ok, r)
		}
		lastEv := r.Timeline[len(r.Timeline)-1]
		if c, _ := lastEv["content"].(map[string]any); lastEv["type"] != "m.room.member" || c["membership"] != "leave" {
			t.Errorf("departure not at the timeline's end: %v", lastEv)
		}
		fifth := slidingSync(t, s, bob.AccessToken, fourth.Pos, 300, sub)
		if len(fifth.Rooms) != 0 || fifth.Lists["all_rooms"].Count != 0 {
			t.Errorf("after the departure was told: %d rooms, count %d", len(fifth.Rooms), fifth.Lists["all_rooms"].Count)
		}
	})
}
