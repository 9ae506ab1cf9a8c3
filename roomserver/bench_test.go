package roomserver_test

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/matrix-gouv/homeserver/internal/bus/bustest"
	"github.com/matrix-gouv/homeserver/internal/storage"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
	"github.com/matrix-gouv/homeserver/roomserver"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// benchDBs runs a benchmark per storage engine on a fresh roomserver.
func benchDBs(b *testing.B, fn func(b *testing.B, rs *roomserver.Component)) {
	run := func(b *testing.B, url string) {
		db := storagetest.Open(b, url)
		rs := newBenchRoomserver(b, db)
		fn(b, rs)
	}
	b.Run("sqlite", func(b *testing.B) { run(b, storagetest.SQLiteURL(b)) })
	b.Run("postgres", func(b *testing.B) { run(b, storagetest.PostgresURL(b)) })
}

func newBenchRoomserver(b *testing.B, db *storage.DB) *roomserver.Component {
	key := testKeyB(b)
	return newRoomserverTB(b, db, bustest.Embedded(b), key)
}

var message = map[string]string{"msgtype": "m.text", "body": "a message of ordinary length, as people write them"}

// BenchmarkSendOneRoom measures events per second into a single room,
// where the room's sequencer serialises every send.
func BenchmarkSendOneRoom(b *testing.B) {
	benchDBs(b, func(b *testing.B, rs *roomserver.Component) {
		roomID := publicRoomTB(b, rs, "12")
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := rs.Send(ctx(), roomID, api.ProtoEvent{Type: "m.room.message", Sender: alice, Content: raw(message)}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}

// BenchmarkSend100Rooms measures events per second spread over 100 rooms
// by concurrent senders, as a busy server sees them.
func BenchmarkSend100Rooms(b *testing.B) {
	benchDBs(b, func(b *testing.B, rs *roomserver.Component) {
		rooms := make([]string, 100)
		for i := range rooms {
			rooms[i] = publicRoomTB(b, rs, "12")
		}
		var n atomic.Int64
		b.SetParallelism(50) // 100 concurrent senders on 2 cores
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				room := rooms[n.Add(1)%int64(len(rooms))]
				if _, err := rs.Send(ctx(), room, api.ProtoEvent{Type: "m.room.message", Sender: alice, Content: raw(message)}); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}

// BenchmarkTimelinePage measures reading a page of 50 events backward
// from a random point of a 2 000-event room, the work of /messages.
func BenchmarkTimelinePage(b *testing.B) {
	benchDBs(b, func(b *testing.B, rs *roomserver.Component) {
		roomID := publicRoomTB(b, rs, "12")
		var last api.Event
		for i := 0; i < 2000; i++ {
			ev, err := rs.Send(ctx(), roomID, api.ProtoEvent{Type: "m.room.message", Sender: alice, Content: raw(message)})
			if err != nil {
				b.Fatal(err)
			}
			last = ev
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			from := last.StreamPos - rand.Int64N(1900)
			evs, err := rs.Timeline(ctx(), roomID, from, api.Backward, 50)
			if err != nil || len(evs) != 50 {
				b.Fatalf("page: %d events, %v", len(evs), err)
			}
		}
	})
}

// BenchmarkStateOf10kMemberRoom measures reading state of a room with
// 10 000 members: one member's event, and a membership.
func BenchmarkStateOf10kMemberRoom(b *testing.B) {
	benchDBs(b, func(b *testing.B, rs *roomserver.Component) {
		roomID := publicRoomTB(b, rs, "12")
		const members = 10_000
		for i := 0; i < members; i++ {
			user := fmt.Sprintf("@user%d:test.local", i)
			if _, err := rs.Send(ctx(), roomID, api.ProtoEvent{Type: "m.room.member", StateKey: &user, Sender: user, Content: raw(map[string]string{"membership": "join"})}); err != nil {
				b.Fatal(err)
			}
		}
		b.Run("member-event", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				user := fmt.Sprintf("@user%d:test.local", rand.IntN(members))
				if _, err := rs.CurrentStateEvent(ctx(), roomID, api.StateKey{Type: "m.room.member", StateKey: user}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("membership", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				user := fmt.Sprintf("@user%d:test.local", rand.IntN(members))
				if m, _, err := rs.Membership(ctx(), roomID, user); err != nil || m != "join" {
					b.Fatal(m, err)
				}
			}
		})
		b.Run("whole-state", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				st, err := rs.CurrentState(ctx(), roomID)
				if err != nil || len(st) < members {
					b.Fatal(len(st), err)
				}
			}
		})
	})
}
