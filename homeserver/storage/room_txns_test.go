package storage_test

import (
	"context"
	"sync"
	"testing"

	"github.com/matrix-gouv/homeserver/homeserver/storage"
	dbstorage "github.com/matrix-gouv/homeserver/internal/storage"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

func TestTxnReservation(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *dbstorage.DB) {
		ctx := context.Background()
		s := storage.New(db)
		key := storage.TxnKey{UserID: "@a:x", DeviceID: "D", Scope: "send !r:x m.room.message", TxnID: "1"}
		const fresh = 0 // staleBefore: no reservation is stale

		id, owned, err := s.ReserveTxn(ctx, key, "!r:x", fresh)
		if err != nil || id != "" || !owned {
			t.Fatalf("first reservation: %q %v %v", id, owned, err)
		}
		// While it is held, another request neither owns it nor gets an id.
		if id, owned, err = s.ReserveTxn(ctx, key, "!r:x", fresh); err != nil || id != "" || owned {
			t.Fatalf("held reservation: %q %v %v", id, owned, err)
		}
		// A failed send releases it for a retry.
		if err := s.ReleaseTxn(ctx, key); err != nil {
			t.Fatal(err)
		}
		if _, owned, err = s.ReserveTxn(ctx, key, "!r:x", fresh); err != nil || !owned {
			t.Fatalf("after release: %v %v", owned, err)
		}
		if err := s.CompleteTxn(ctx, key, "$e1"); err != nil {
			t.Fatal(err)
		}
		if id, owned, err = s.ReserveTxn(ctx, key, "!r:x", fresh); err != nil || id != "$e1" || owned {
			t.Fatalf("completed: %q %v %v", id, owned, err)
		}
		// Releasing a completed transaction keeps it.
		if err := s.ReleaseTxn(ctx, key); err != nil {
			t.Fatal(err)
		}
		if id, _, _ = s.ReserveTxn(ctx, key, "!r:x", fresh); id != "$e1" {
			t.Fatalf("release dropped a completed transaction: %q", id)
		}

		// A stale reservation is taken over, once.
		stale := key
		stale.TxnID = "2"
		if _, owned, _ := s.ReserveTxn(ctx, stale, "!r:x", fresh); !owned {
			t.Fatal("reserve 2")
		}
		farFuture := s.Now().UnixMilli() + 3_600_000
		if _, owned, err := s.ReserveTxn(ctx, stale, "!r:x", farFuture); err != nil || !owned {
			t.Fatalf("stale takeover: %v %v", owned, err)
		}
		if _, owned, _ := s.ReserveTxn(ctx, stale, "!r:x", fresh); owned {
			t.Fatal("a taken-over reservation was handed out again")
		}

		// The same txn id on another device or endpoint is another key.
		other := key
		other.DeviceID = "E"
		if _, owned, _ := s.ReserveTxn(ctx, other, "!r:x", fresh); !owned {
			t.Fatal("another device's txn id is not its own")
		}
		other = key
		other.Scope = "redact !r:x $e0"
		if _, owned, _ := s.ReserveTxn(ctx, other, "!r:x", fresh); !owned {
			t.Fatal("another endpoint's txn id is not its own")
		}

		ids, err := s.TxnIDs(ctx, "@a:x", "D", []string{"$e1", "$e2"})
		if err != nil || len(ids) != 1 || ids["$e1"] != "1" {
			t.Fatalf("TxnIDs: %v %v", ids, err)
		}
		if ids, _ := s.TxnIDs(ctx, "@a:x", "E", []string{"$e1"}); len(ids) != 0 {
			t.Fatalf("TxnIDs of another device: %v", ids)
		}
	})
}

func TestTxnReservationRace(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *dbstorage.DB) {
		ctx := context.Background()
		s := storage.New(db)
		key := storage.TxnKey{UserID: "@a:x", DeviceID: "D", Scope: "send !r:x m.room.message", TxnID: "race"}
		var wg sync.WaitGroup
		var mu sync.Mutex
		winners := 0
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, owned, err := s.ReserveTxn(ctx, key, "!r:x", 0)
				if err != nil {
					t.Error(err)
				}
				if owned {
					mu.Lock()
					winners++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if winners != 1 {
			t.Fatalf("%d requests own one transaction id", winners)
		}
	})
}

func TestForgottenRooms(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *dbstorage.DB) {
		ctx := context.Background()
		s := storage.New(db)
		if _, ok, err := s.ForgottenAt(ctx, "@a:x", "!r:x"); err != nil || ok {
			t.Fatalf("never forgotten: %v %v", ok, err)
		}
		for _, pos := range []int64{7, 9} {
			if err := s.ForgetRoom(ctx, "@a:x", "!r:x", pos); err != nil {
				t.Fatal(err)
			}
			if got, ok, err := s.ForgottenAt(ctx, "@a:x", "!r:x"); err != nil || !ok || got != pos {
				t.Fatalf("forgotten at %d: %d %v %v", pos, got, ok, err)
			}
		}
		if err := s.UnforgetRoom(ctx, "@a:x", "!r:x"); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.ForgottenAt(ctx, "@a:x", "!r:x"); ok {
			t.Fatal("still forgotten")
		}
	})
}
