package storage

import (
	"context"
	"errors"
	"testing"

	"github.com/matrix-gouv/homeserver/internal/storage"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

func TestKeys(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := New(db)
		if _, err := s.Key(ctx, "a.example", "ed25519:1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown key: %v", err)
		}
		k := ServerKey{ServerName: "a.example", KeyID: "ed25519:1", PublicKey: "pub", ValidUntilTS: 2000}
		if err := s.StoreKeys(ctx, []ServerKey{k}); err != nil {
			t.Fatal(err)
		}
		// An older answer does not shorten the validity.
		older := k
		older.ValidUntilTS = 1000
		if err := s.StoreKeys(ctx, []ServerKey{older}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Key(ctx, "a.example", "ed25519:1")
		if err != nil || got != k {
			t.Fatalf("Key = %+v, %v; want %+v", got, err, k)
		}
		// The key is retired: expired_ts is recorded.
		retired := k
		retired.ExpiredTS = 1500
		if err := s.StoreKeys(ctx, []ServerKey{retired}); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Key(ctx, "a.example", "ed25519:1"); got.ExpiredTS != 1500 {
			t.Fatalf("expired_ts = %d", got.ExpiredTS)
		}

		if err := s.StoreKeyResponse(ctx, "a.example", 2000, []byte(`{"v":2}`)); err != nil {
			t.Fatal(err)
		}
		if err := s.StoreKeyResponse(ctx, "a.example", 1000, []byte(`{"v":1}`)); err != nil {
			t.Fatal(err)
		}
		if js, until, err := s.KeyResponse(ctx, "a.example"); err != nil || string(js) != `{"v":2}` || until != 2000 {
			t.Fatalf("KeyResponse = %s %d %v", js, until, err)
		}
	})
}

func TestInboundTxnsAndDestinations(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := New(db)
		if _, err := s.InboundTxn(ctx, "a.example", "t1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown txn: %v", err)
		}
		for _, body := range []string{`{"pdus":{}}`, `{"other":1}`} {
			if err := s.StoreInboundTxn(ctx, "a.example", "t1", []byte(body)); err != nil {
				t.Fatal(err)
			}
		}
		if js, err := s.InboundTxn(ctx, "a.example", "t1"); err != nil || string(js) != `{"pdus":{}}` {
			t.Fatalf("InboundTxn = %s %v", js, err)
		}
		if _, err := s.InboundTxn(ctx, "b.example", "t1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("another origin's txn: %v", err)
		}
		for _, d := range []string{"b.example", "a.example", "b.example"} {
			if err := s.AddDestination(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		if ds, err := s.Destinations(ctx); err != nil || len(ds) != 2 || ds[0] != "a.example" {
			t.Fatalf("Destinations = %v %v", ds, err)
		}
	})
}
