package storage_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/matrix-gouv/homeserver/homeserver/storage"
	dbstorage "github.com/matrix-gouv/homeserver/internal/storage"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

func TestAppendSyncEventsIsIdempotent(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *dbstorage.DB) {
		ctx := context.Background()
		s := storage.New(db)
		join := storage.MembershipChange{RoomID: "!r:x", UserID: "@a:x", Membership: "join", EventID: "$2", Sender: "@a:x", StreamPos: 20}
		batch := []storage.SyncAppend{
			{SyncPos: 1, RoomID: "!r:x", EventID: "$1", StreamPos: 10},
			{SyncPos: 2, RoomID: "!r:x", EventID: "$2", StreamPos: 20, Changes: []storage.MembershipChange{join}},
		}
		if err := s.AppendSyncEvents(ctx, batch); err != nil {
			t.Fatal(err)
		}
		// A redelivery changes nothing, and an older membership never
		// replaces a newer one.
		if err := s.AppendSyncEvents(ctx, batch); err != nil {
			t.Fatal(err)
		}
		old := join
		old.Membership, old.EventID = "invite", "$0"
		if err := s.AppendSyncEvents(ctx, []storage.SyncAppend{{SyncPos: 1, RoomID: "!r:x", EventID: "$1", StreamPos: 10, Changes: []storage.MembershipChange{old}}}); err != nil {
			t.Fatal(err)
		}
		pos, err := s.SyncPositions(ctx, []string{"$1", "$2", "$3"})
		if err != nil || len(pos) != 2 || pos["$1"] != 1 || pos["$2"] != 2 {
			t.Fatalf("positions = %v, %v", pos, err)
		}
		ms, err := s.AllMemberships(ctx, "x")
		if err != nil || len(ms) != 1 || ms[0].Membership != "join" || ms[0].SyncPos != 2 {
			t.Fatalf("memberships = %+v, %v", ms, err)
		}
		for _, tt := range []struct {
			pos    int64
			after  bool
			want   string
			wantOK bool
		}{
			{0, false, "", false},
			{1, false, "$1", true},
			{5, false, "$2", true},
			{0, true, "$1", true},
			{1, true, "$2", true},
			{2, true, "", false},
		} {
			ev, ok, err := s.RoomEventAt(ctx, "!r:x", tt.pos, tt.after)
			if err != nil || ok != tt.wantOK || ev.EventID != tt.want {
				t.Errorf("RoomEventAt(%d, after=%v) = %q %v %v, want %q %v", tt.pos, tt.after, ev.EventID, ok, err, tt.want, tt.wantOK)
			}
		}
		latest, err := s.RoomLatest(ctx)
		if err != nil || latest["!r:x"].EventID != "$2" {
			t.Fatalf("latest = %+v, %v", latest, err)
		}
	})
}

func TestRoomBumps(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *dbstorage.DB) {
		ctx := context.Background()
		s := storage.New(db)
		batch := []storage.SyncAppend{
			{SyncPos: 1, RoomID: "!a:x", EventID: "$1", StreamPos: 10, Bump: true},
			{SyncPos: 2, RoomID: "!a:x", EventID: "$2", StreamPos: 11},
			{SyncPos: 3, RoomID: "!b:x", EventID: "$3", StreamPos: 12, Bump: true},
			{SyncPos: 4, RoomID: "!b:x", EventID: "$4", StreamPos: 13, Bump: true},
			{SyncPos: 5, RoomID: "!c:x", EventID: "$5", StreamPos: 14},
		}
		if err := s.AppendSyncEvents(ctx, batch); err != nil {
			t.Fatal(err)
		}
		// A redelivery of an older bump does not move a room back.
		if err := s.AppendSyncEvents(ctx, batch[2:3]); err != nil {
			t.Fatal(err)
		}
		bumps, err := s.RoomBumps(ctx)
		if err != nil || len(bumps) != 2 || bumps["!a:x"] != 1 || bumps["!b:x"] != 4 {
			t.Fatalf("bumps = %v, %v", bumps, err)
		}
	})
}

func TestStreamPositionsCommitInOrder(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *dbstorage.DB) {
		ctx := context.Background()
		s := storage.New(db)
		// Concurrent writers get distinct positions, and every position
		// up to the highest is there once they are done.
		var wg sync.WaitGroup
		var mu sync.Mutex
		got := map[int64]bool{}
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pos, err := s.PutAccountData(ctx, "@a:x", "", "t", json.RawMessage(`{}`))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				got[pos] = true
				mu.Unlock()
			}()
		}
		wg.Wait()
		for p := int64(1); p <= 20; p++ {
			if !got[p] {
				t.Fatalf("position %d missing from %v", p, got)
			}
		}
		cur, err := s.StreamPositions(ctx)
		if err != nil || cur[storage.StreamAccountData] != 20 {
			t.Fatalf("stream positions = %v, %v", cur, err)
		}
	})
}

func TestReceiptsOnlyMoveForward(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *dbstorage.DB) {
		ctx := context.Background()
		s := storage.New(db)
		put := func(ev string, pos int64, thread string) int64 {
			t.Helper()
			p, err := s.PutReceipt(ctx, storage.Receipt{RoomID: "!r:x", UserID: "@a:x", Type: "m.read", ThreadID: thread, EventID: ev, EventStreamPos: pos, TS: 1})
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
		if put("$5", 5, "") == 0 {
			t.Fatal("first receipt not stored")
		}
		if put("$3", 3, "") != 0 {
			t.Fatal("an older receipt moved the receipt back")
		}
		put("$7", 7, "main")
		un, threads, err := s.ReadPositions(ctx, "@a:x", "!r:x")
		if err != nil || un != 5 || threads["main"] != 7 {
			t.Fatalf("read positions = %d %v %v", un, threads, err)
		}
		rs, err := s.ReceiptsSince(ctx, "!r:x", 0, 100)
		if err != nil || len(rs) != 2 {
			t.Fatalf("receipts = %+v, %v", rs, err)
		}
	})
}
