package roomserver_test

import (
	"crypto/ed25519"
	"slices"
	"testing"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/matrix-gouv/homeserver/internal/bus/bustest"
	"github.com/matrix-gouv/homeserver/internal/storage"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
	"github.com/matrix-gouv/homeserver/roomserver/api"
)

// TestExtremitiesSurviveRestart: forward extremities are written only
// now and then and replayed from the events after them when a room
// loads; after a restart they must be what they were, fork included,
// whether the last write was a few events or many ago.
func TestExtremitiesSurviveRestart(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *storage.DB) {
		b, key := bustest.Embedded(t), testKey(t)
		rs := newRoomserver(t, db, b, key)
		for _, messages := range []int{3, 150} {
			roomID := publicRoom(t, rs, "12")
			_, pk, _ := ed25519.GenerateKey(nil)
			create := stateID(t, rs, roomID, "m.room.create", "")
			srv := &remoteServer{t: t, v: gomatrixserverlib.MustGetRoomVersion("12"), key: pk, room: roomID, createID: create}
			pl := stateID(t, rs, roomID, "m.room.power_levels", "")
			jr := stateID(t, rs, roomID, "m.room.join_rules", "")
			tl, err := rs.Timeline(ctx(), roomID, api.TimelineEnd, api.Backward, 1)
			if err != nil || len(tl) != 1 {
				t.Fatalf("timeline: %v", err)
			}
			join, joinRaw := srv.build(carol, "m.room.member", sk(carol), map[string]string{"membership": "join"}, []string{tl[0].EventID}, create, pl, jr)
			input(t, rs, roomID, api.InputResult{}, joinRaw)
			var sent []string
			for i := 0; i < messages; i++ {
				sent = append(sent, send(t, rs, roomID, alice, "m.room.message", nil, map[string]int{"n": i}).EventID)
			}
			// carol answers an older message: the DAG forks.
			fork, forkRaw := srv.build(carol, "m.room.message", nil, map[string]string{"body": "late"}, []string{sent[len(sent)-2]}, create, pl, join.EventID())
			input(t, rs, roomID, api.InputResult{}, forkRaw)
			want := []string{fork.EventID(), sent[len(sent)-1]}
			slices.Sort(want)
			if got, err := rs.ForwardExtremities(ctx(), roomID); err != nil || !slices.Equal(got, want) {
				t.Fatalf("%d messages: extremities %v, %v; want %v", messages, got, err, want)
			}

			_ = rs.Stop(ctx())
			rs = newRoomserver(t, db, b, key)
			if got, err := rs.ForwardExtremities(ctx(), roomID); err != nil || !slices.Equal(got, want) {
				t.Fatalf("%d messages, after restart: extremities %v, %v; want %v", messages, got, err, want)
			}
			merge := send(t, rs, roomID, alice, "m.room.message", nil, map[string]string{"body": "merge"})
			pdu, err := merge.PDU()
			if err != nil {
				t.Fatal(err)
			}
			prevs := pdu.PrevEventIDs()
			slices.Sort(prevs)
			if !slices.Equal(prevs, want) {
				t.Fatalf("%d messages: the first event after restart follows %v, want %v", messages, prevs, want)
			}
		}
	})
}
