package storage_test

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"testing"

	"github.com/matrix-gouv/homeserver/homeserver/storage"
	dbstorage "github.com/matrix-gouv/homeserver/internal/storage"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

func session(user, device, access string) *storage.NewSession {
	return &storage.NewSession{UserID: user, DeviceID: device, AccessHash: access}
}

func TestCreateAccountIsAllOrNothing(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *dbstorage.DB) {
		ctx := context.Background()
		s := storage.New(db)
		a := storage.NewAccount{UserID: "@a:x", Localpart: "a", PasswordHash: "h", Session: session("@a:x", "D1", "t1")}
		if err := s.CreateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
		a.Session = session("@a:x", "D2", "t2")
		if err := s.CreateAccount(ctx, a); !errors.Is(err, storage.ErrUserExists) {
			t.Fatalf("duplicate: want ErrUserExists, got %v", err)
		}
		// The failed registration left no device or token behind.
		if _, err := s.SessionByAccessToken(ctx, "t2"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("token of failed registration: want ErrNotFound, got %v", err)
		}
		devs, err := s.Devices(ctx, "@a:x")
		if err != nil || len(devs) != 1 {
			t.Fatalf("devices: %v %v", devs, err)
		}
	})
}

func TestRegistrationTokenUsesAreCountedAtomically(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *dbstorage.DB) {
		ctx := context.Background()
		s := storage.New(db)
		uses := 3
		if err := s.CreateRegistrationToken(ctx, storage.RegistrationToken{Token: "tok", UsesAllowed: &uses}); err != nil {
			t.Fatal(err)
		}
		// Ten registrations race for three uses: exactly three win.
		var wg sync.WaitGroup
		var mu sync.Mutex
		won := 0
		for i := 0; i < 10; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				user := "@u" + string(rune('a'+i)) + ":x"
				err := s.CreateAccount(ctx, storage.NewAccount{UserID: user, Localpart: user[1:3], RegistrationToken: "tok"})
				switch {
				case err == nil:
					mu.Lock()
					won++
					mu.Unlock()
				case !errors.Is(err, storage.ErrTokenUnusable):
					t.Errorf("register %s: %v", user, err)
				}
			}(i)
		}
		wg.Wait()
		if won != uses {
			t.Fatalf("%d registrations used a token of %d uses", won, uses)
		}
		if ok, _ := s.RegistrationTokenUsable(ctx, "tok"); ok {
			t.Fatal("used-up token still usable")
		}
	})
}

func TestDeleteDevicesRemovesKeysAndRecordsChanges(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *dbstorage.DB) {
		ctx := context.Background()
		s := storage.New(db)
		if err := s.CreateAccount(ctx, storage.NewAccount{UserID: "@a:x", Localpart: "a", Session: session("@a:x", "D1", "t1")}); err != nil {
			t.Fatal(err)
		}
		if err := s.OpenSession(ctx, *session("@a:x", "D2", "t2")); err != nil {
			t.Fatal(err)
		}
		// Give D1 key material and a pending to-device message.
		err := db.Write(ctx, func(tx *sql.Tx) error {
			for _, q := range []string{
				`INSERT INTO device_keys (user_id, device_id, key_json) VALUES ('@a:x', 'D1', '{}')`,
				`INSERT INTO one_time_keys (user_id, device_id, key_id, algorithm, key_json) VALUES ('@a:x', 'D1', 'k', 'signed_curve25519', '{}')`,
				`INSERT INTO device_inbox (user_id, device_id, message_json, created_ts) VALUES ('@a:x', 'D1', '{}', 0)`,
			} {
				if _, err := tx.ExecContext(ctx, q); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteDevices(ctx, "@a:x", []string{"D1", "UNKNOWN"}); err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"device_keys", "one_time_keys", "device_inbox", "access_tokens"} {
			var n int
			if err := db.Read().QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table+` WHERE device_id = 'D1'`).Scan(&n); err != nil || n != 0 {
				t.Errorf("%s rows of deleted device: %d %v", table, n, err)
			}
		}
		if _, err := s.SessionByAccessToken(ctx, "t2"); err != nil {
			t.Fatalf("other device's token: %v", err)
		}
		changes, err := s.DeviceListChanges(ctx, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		// D1 created, D2 created, D1 deleted; the unknown device records nothing.
		if len(changes) != 3 || !changes[2].Deleted || changes[2].DeviceID != "D1" || changes[0].StreamID >= changes[2].StreamID {
			t.Fatalf("device-list changes: %+v", changes)
		}
	})
}

func TestLoginOnKnownDeviceRevokesItsOldTokens(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *dbstorage.DB) {
		ctx := context.Background()
		s := storage.New(db)
		if err := s.CreateAccount(ctx, storage.NewAccount{UserID: "@a:x", Localpart: "a", Session: session("@a:x", "D1", "t1")}); err != nil {
			t.Fatal(err)
		}
		if err := s.OpenSession(ctx, *session("@a:x", "D1", "t2")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SessionByAccessToken(ctx, "t1"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("old token of re-used device: want ErrNotFound, got %v", err)
		}
		if devs, _ := s.Devices(ctx, "@a:x"); len(devs) != 1 {
			t.Fatalf("re-used device id must not create a device: %v", devs)
		}
	})
}
