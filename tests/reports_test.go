package tests

import (
	"context"
	"testing"

	"maunium.net/go/mautrix"

	"github.com/matrix-gouv/homeserver/homeserver/storage"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

// TestReportContent reports events and rooms: an event only by a member
// of its room who may see it (404 otherwise, whatever the reason), a room
// by anyone, a score in -100..0; and finds the reports stored for admins.
func TestReportContent(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob, carol := s.Register("alice"), s.Register("bob"), s.Register("carol")
		room := createRoom(t, s, alice, map[string]any{"preset": "public_chat",
			"initial_state": []map[string]any{{"type": "m.room.history_visibility", "content": map[string]any{"history_visibility": "joined"}}}})
		hidden := sendText(t, alice, room, "said before bob came")
		if _, err := bob.JoinRoomByID(ctx(), room); err != nil {
			t.Fatal(err)
		}
		seen := sendText(t, alice, room, "said to bob")

		report := func(c *mautrix.Client, eventID string, body map[string]any) Response {
			return s.Do("POST", roomPath(room, "report", eventID), c.AccessToken, body)
		}
		report(bob, seen.String(), map[string]any{"reason": "rude", "score": -100}).Expect(t, 200, "")
		report(bob, seen.String(), map[string]any{}).Expect(t, 200, "")
		report(bob, seen.String(), map[string]any{"score": 1}).Expect(t, 400, "M_INVALID_PARAM")
		report(bob, seen.String(), map[string]any{"score": -101}).Expect(t, 400, "M_INVALID_PARAM")
		report(bob, seen.String(), map[string]any{"score": "bad"}).Expect(t, 400, "M_BAD_JSON")
		// History visibility "joined": bob never saw what came before him.
		report(bob, hidden.String(), map[string]any{"reason": "?"}).Expect(t, 404, "M_NOT_FOUND")
		report(bob, "$nosuchevent", map[string]any{"reason": "?"}).Expect(t, 404, "M_NOT_FOUND")
		// carol is not in the room: she may not report its events...
		report(carol, seen.String(), map[string]any{"reason": "?"}).Expect(t, 404, "M_NOT_FOUND")
		s.Do("POST", roomPath("!nosuchroom:"+serverName, "report", seen.String()), bob.AccessToken, map[string]any{}).Expect(t, 404, "M_NOT_FOUND")
		// ...nor may bob once he left.
		if _, err := bob.LeaveRoom(ctx(), room); err != nil {
			t.Fatal(err)
		}
		report(bob, seen.String(), map[string]any{"reason": "after leaving"}).Expect(t, 404, "M_NOT_FOUND")

		// A room may be reported by anyone, joined or not.
		s.Do("POST", roomPath(room, "report"), carol.AccessToken, map[string]any{"reason": "this room is bad"}).Expect(t, 200, "")
		s.Do("POST", roomPath("!nosuchroom:"+serverName, "report"), carol.AccessToken, map[string]any{"reason": "?"}).Expect(t, 404, "M_NOT_FOUND")

		// What the admins find.
		reports, err := storage.New(storagetest.Open(t, s.Cfg.Database.URL)).ContentReports(context.Background(), "", 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(reports) != 3 {
			t.Fatalf("%d reports stored, want 3: %+v", len(reports), reports)
		}
		first, second, roomReport := reports[0], reports[1], reports[2]
		if first.UserID != bob.UserID.String() || first.RoomID != room.String() || first.EventID != seen.String() ||
			first.Reason == nil || *first.Reason != "rude" || first.Score == nil || *first.Score != -100 || first.ReceivedTS == 0 {
			t.Errorf("first report = %+v", first)
		}
		if second.Reason != nil || second.Score != nil {
			t.Errorf("report without reason or score = %+v", second)
		}
		if roomReport.UserID != carol.UserID.String() || roomReport.RoomID != room.String() || roomReport.EventID != "" ||
			roomReport.Reason == nil || *roomReport.Reason != "this room is bad" || roomReport.Score != nil {
			t.Errorf("room report = %+v", roomReport)
		}
	})
}
