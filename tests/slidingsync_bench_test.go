package tests

import (
	"fmt"
	"testing"

	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

// BenchmarkSlidingSync measures sliding sync for a user in 1 000 rooms,
// with Element X's room list request (the 20 most recent rooms, one
// timeline event each, its required_state and extensions):
//   - first_response: a new connection's first response (target < 200 ms);
//   - all_1000_rooms: a first response with every room (Element X's
//     growing list at its end);
//   - update: the response to a connection after a message was sent in
//     one of its rooms, the send having returned (target < 10 ms).
//
// The rooms are made once per engine (a minute or so), outside the timed
// parts.
func BenchmarkSlidingSync(b *testing.B) {
	for _, e := range []struct {
		name string
		url  func(testing.TB) string
	}{{"sqlite", storagetest.SQLiteURL}, {"postgres", storagetest.PostgresURL}} {
		b.Run(e.name, func(b *testing.B) {
			s := benchServer(b, e.url(b))
			alice := s.Register("alice")
			rooms := createRooms(b, s, alice, 1000)
			b.Run("first_response_1000_rooms", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					resp := slidingSync(b, s, alice.AccessToken, "", 0, roomListRequest("", [2]int{0, 19}))
					if len(resp.Rooms) != 20 || resp.Lists["all_rooms"].Count != 1000 {
						b.Fatalf("%d rooms, count %d", len(resp.Rooms), resp.Lists["all_rooms"].Count)
					}
				}
			})
			// Element X's growing list reaches every room: all 1 000 whole
			// in one response (no target; for the record).
			b.Run("all_1000_rooms", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					resp := slidingSync(b, s, alice.AccessToken, "", 0, roomListRequest("", [2]int{0, 999}))
					if len(resp.Rooms) != 1000 {
						b.Fatalf("%d rooms", len(resp.Rooms))
					}
				}
			})
			b.Run("update_after_event", func(b *testing.B) {
				b.StopTimer()
				pos := slidingSync(b, s, alice.AccessToken, "", 0, roomListRequest("", [2]int{0, 19})).Pos
				for i := 0; i < b.N; i++ {
					room := rooms[(i*7919)%len(rooms)]
					sendText(b, alice, room, fmt.Sprintf("bench %d", i))
					b.StartTimer()
					resp := slidingSync(b, s, alice.AccessToken, pos, 0, roomListRequest("", [2]int{0, 19}))
					b.StopTimer()
					if _, ok := resp.Rooms[room.String()]; !ok || len(resp.Rooms) != 1 {
						b.Fatalf("update: %d rooms, has %s: %v", len(resp.Rooms), room, ok)
					}
					pos = resp.Pos
				}
			})
		})
	}
}
