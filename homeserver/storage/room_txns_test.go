package storage_test

import (
	"context"
	"testing"

	"github.com/matrix-gouv/homeserver/homeserver/storage"
	dbstorage "github.com/matrix-gouv/homeserver/internal/storage"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

func TestTxnIDs(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *dbstorage.DB) {
		ctx := context.Background()
		s := storage.New(db)
		key := storage.TxnKey{UserID: "@a:x", DeviceID: "D", Scope: "send !r:x m.room.message", TxnID: "1"}
		if _, ok, err := s.TxnEvent(ctx, key); err != nil || ok {
			t.Fatalf("unknown transaction: %v %v", ok, err)
		}
		appends := []storage.SyncAppend{
			{SyncPos: 1, RoomID: "!r:x", EventID: "$e1", StreamPos: 10, Txn: &key},
			{SyncPos: 2, RoomID: "!r:x", EventID: "$e2", StreamPos: 11},
		}
		// Written twice (a redelivery): recorded once.
		for range 2 {
			if err := s.AppendSyncEvents(ctx, appends); err != nil {
				t.Fatal(err)
			}
		}
		if id, ok, err := s.TxnEvent(ctx, key); err != nil || !ok || id != "$e1" {
			t.Fatalf("TxnEvent: %q %v %v", id, ok, err)
		}
		// The same id on another device or endpoint is another transaction.
		for _, other := range []storage.TxnKey{
			{UserID: "@a:x", DeviceID: "E", Scope: key.Scope, TxnID: "1"},
			{UserID: "@a:x", DeviceID: "D", Scope: "redact !r:x $e0", TxnID: "1"},
		} {
			if _, ok, _ := s.TxnEvent(ctx, other); ok {
				t.Errorf("%+v found the transaction of %+v", other, key)
			}
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
		if err := s.ForgetRoom(ctx, "@a:x", "!other:x", 3); err != nil {
			t.Fatal(err)
		}
		if all, err := s.ForgottenRooms(ctx, "@a:x"); err != nil || len(all) != 2 || all["!r:x"] != 9 || all["!other:x"] != 3 {
			t.Fatalf("ForgottenRooms = %v %v", all, err)
		}
		if all, err := s.ForgottenRooms(ctx, "@b:x"); err != nil || len(all) != 0 {
			t.Fatalf("ForgottenRooms of another user = %v %v", all, err)
		}
		if err := s.UnforgetRoom(ctx, "@a:x", "!r:x"); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.ForgottenAt(ctx, "@a:x", "!r:x"); ok {
			t.Fatal("still forgotten")
		}
	})
}
