//go:build goolm

package tests

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"maunium.net/go/mautrix/id"
)

// TestSlidingSyncJSSDK: a real sliding sync client. matrix-js-sdk
// 37.5.0's SlidingSync, run by its MatrixClient under Node, syncs a user
// in 25 rooms: its first response fills the client with the 20 most
// recent rooms and the list's count; a message in a room outside the
// range reaches the client's timeline live; a room subscription brings a
// room outside the range with its timeline.
func TestSlidingSyncJSSDK(t *testing.T) {
	t.Parallel()
	node := nodeForJSSDK(t)
	engines(t, func(t *testing.T, s *Server) {
		js := s.Register("jsuser")
		rooms := make([]id.RoomID, 25)
		for i := range rooms {
			rooms[i] = createRoom(t, s, js, map[string]any{"name": fmt.Sprintf("room %d", i)})
		}
		for i := 0; i < 3; i++ {
			sendText(t, js, rooms[1], fmt.Sprintf("old %d", i))
		}
		// rooms[1] had activity after rooms[0..4] were created; make the
		// 20 most recent rooms 5..24 by a message in each, oldest first.
		for _, r := range rooms[5:] {
			sendText(t, js, r, "recent")
		}

		prog := startNode(t, node, jssdkDir, "RESULT", []string{"HS_URL=" + s.URL, "JS_USER=" + js.UserID.String(),
			"JS_PASSWORD=" + testPassword, "DEADLINE_MS=60000"}, "slidingsync.mjs")
		step := func(want string) string { t.Helper(); return prog.next("STEP " + want) }
		send := prog.send

		var ready struct {
			Count int      `json:"count"`
			Rooms []string `json:"rooms"`
		}
		if err := json.Unmarshal([]byte(step("ready")), &ready); err != nil {
			t.Fatal(err)
		}
		if ready.Count != 25 || len(ready.Rooms) != 20 {
			t.Fatalf("the SDK saw count %d and %d rooms, want 25 and 20", ready.Count, len(ready.Rooms))
		}
		for _, r := range rooms[5:] {
			if !slices.Contains(ready.Rooms, r.String()) {
				t.Errorf("the SDK lacks recent room %s", r)
			}
		}

		// A message in a room outside the range: live in the SDK.
		sendText(t, js, rooms[0], "hello from go")
		send("expect " + rooms[0].String() + " hello from go")
		step("got " + rooms[0].String())

		// A subscription to a room outside the range (rooms[1]'s messages
		// are older than the 20 rooms'): its timeline up to the limit.
		if slices.Contains(ready.Rooms, rooms[1].String()) {
			t.Fatalf("test set-up: %s in the range", rooms[1])
		}
		send("subscribe " + rooms[1].String() + " 3")
		var got []string
		if err := json.Unmarshal([]byte(step("subscribed")), &got); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, []string{"old 0", "old 1", "old 2"}) {
			t.Errorf("subscribed room's messages %v", got)
		}
		send("done")
		res, err := prog.wait()
		if err != nil {
			t.Fatalf("slidingsync.mjs: %v; result %s", err, res)
		}
		t.Logf("matrix-js-sdk result: %s", res)
	})
}
