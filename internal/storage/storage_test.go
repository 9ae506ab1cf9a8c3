package storage_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"

	"github.com/matrix-gouv/homeserver/internal/storage"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

func TestMigrationsApplyOnceAndReopen(t *testing.T) {
	storagetest.Engines(t, func(t *testing.T, url string) {
		ctx := context.Background()
		for i := 0; i < 2; i++ { // the second open finds everything applied
			db, err := storage.Open(ctx, url, storage.Options{})
			if err != nil {
				t.Fatalf("open #%d: %v", i+1, err)
			}
			var n int
			if err := db.Read().QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				t.Fatal("no migration recorded")
			}
			db.Close()
		}
	})
}

func TestWriteRollsBackAndDetectsUniqueViolation(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		insert := func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, "INSERT INTO registration_tokens (token, created_ts) VALUES ($1, $2)", "tok", 1)
			return err
		}
		if err := db.Write(ctx, insert); err != nil {
			t.Fatal(err)
		}
		err := db.Write(ctx, insert)
		if !db.Dialect.IsUniqueViolation(err) {
			t.Fatalf("second insert: want unique violation, got %v", err)
		}
		boom := errors.New("boom")
		err = db.Write(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, "INSERT INTO registration_tokens (token, created_ts) VALUES ($1, $2)", "other", 1); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("want boom, got %v", err)
		}
		var n int
		if err := db.Read().QueryRowContext(ctx, "SELECT COUNT(*) FROM registration_tokens WHERE token = $1", "other").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatal("failed transaction left a row behind")
		}
	})
}

func TestPlaceholders(t *testing.T) {
	for _, tc := range []struct {
		from, n int
		want    string
	}{{1, 1, "$1"}, {2, 3, "$2, $3, $4"}, {9, 2, "$9, $10"}} {
		if got := storage.Placeholders(tc.from, tc.n); got != tc.want {
			t.Errorf("Placeholders(%d, %d) = %q, want %q", tc.from, tc.n, got, tc.want)
		}
	}
}

// TestConcurrentWritesFailAlone: many concurrent writes (batched into
// shared commits on SQLite), every third failing after it wrote; exactly
// the others remain.
func TestConcurrentWritesFailAlone(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		const n = 60
		errs := make(chan error, n)
		for i := 0; i < n; i++ {
			go func(i int) {
				errs <- db.Write(ctx, func(tx *sql.Tx) error {
					if _, err := tx.ExecContext(ctx, "INSERT INTO registration_tokens (token, created_ts) VALUES ($1, $2)", fmt.Sprint("t", i), i); err != nil {
						return err
					}
					if i%3 == 0 {
						return errors.New("fail after writing")
					}
					return nil
				})
			}(i)
		}
		failed := 0
		for i := 0; i < n; i++ {
			if err := <-errs; err != nil {
				failed++
			}
		}
		var rows int
		if err := db.Read().QueryRowContext(ctx, "SELECT COUNT(*) FROM registration_tokens").Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if failed != n/3 || rows != n-n/3 {
			t.Fatalf("%d writes failed and %d rows remain; want %d and %d", failed, rows, n/3, n-n/3)
		}
		var bad int
		if err := db.Read().QueryRowContext(ctx, "SELECT COUNT(*) FROM registration_tokens WHERE created_ts % 3 = 0").Scan(&bad); err != nil || bad != 0 {
			t.Fatalf("rows of failed writes remain: %d %v", bad, err)
		}
	})
}
