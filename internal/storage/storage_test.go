package storage_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

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
// writeFn is a write under test: tx, and queueing a row for later
// (nil where the write has no Batch).
type writeFn func(tx *sql.Tx, later func(into string, values ...any)) error

func TestConcurrentWritesFailAlone(t *testing.T) {
	// WriteBatched shares transactions on PostgreSQL too, and replays a
	// batch write by write when one fails; rows queued with InsertLater
	// go with their write. The outcome must be Write's.
	for name, write := range map[string]func(*storage.DB, context.Context, writeFn) error{
		"Write": func(db *storage.DB, ctx context.Context, fn writeFn) error {
			return db.Write(ctx, func(tx *sql.Tx) error { return fn(tx, nil) })
		},
		"WriteBatched": func(db *storage.DB, ctx context.Context, fn writeFn) error {
			return db.WriteBatched(ctx, func(b *storage.Batch) error { return fn(b.Tx, b.InsertLater) })
		},
	} {
		t.Run(name, func(t *testing.T) {
			storagetest.DBs(t, func(t *testing.T, db *storage.DB) {
				testConcurrentWritesFailAlone(t, db, write, name == "WriteBatched")
			})
		})
	}
}

func testConcurrentWritesFailAlone(t *testing.T, db *storage.DB, write func(*storage.DB, context.Context, writeFn) error, queuesLater bool) {
	ctx := context.Background()
	const n = 60
	errs := make(chan error, n)
	laterRows := 0
	for i := 0; i < n; i++ {
		go func(i int) {
			errs <- write(db, ctx, func(tx *sql.Tx, later func(string, ...any)) error {
				if _, err := tx.ExecContext(ctx, "INSERT INTO registration_tokens (token, created_ts) VALUES ($1, $2)", fmt.Sprint("t", i), i); err != nil {
					return err
				}
				if later != nil {
					// Two column lists: two inserts to flush, one
					// statement for both on PostgreSQL.
					later("registration_tokens (token, created_ts)", fmt.Sprint("later", i), i)
					later("registration_tokens (created_ts, token)", i, fmt.Sprint("later-again", i))
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
	var rows, later int
	if err := db.Read().QueryRowContext(ctx, "SELECT COUNT(*) FROM registration_tokens WHERE token LIKE 't%'").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if err := db.Read().QueryRowContext(ctx, "SELECT COUNT(*) FROM registration_tokens WHERE token LIKE 'later%'").Scan(&later); err != nil {
		t.Fatal(err)
	}
	if queuesLater {
		laterRows = 2 * (n - n/3)
	}
	if failed != n/3 || rows != n-n/3 || later != laterRows {
		t.Fatalf("%d writes failed and %d rows (%d queued for later) remain; want %d and %d", failed, rows, later, n/3, n-n/3)
	}
	var bad int
	if err := db.Read().QueryRowContext(ctx, "SELECT COUNT(*) FROM registration_tokens WHERE created_ts % 3 = 0").Scan(&bad); err != nil || bad != 0 {
		t.Fatalf("rows of failed writes remain: %d %v", bad, err)
	}
}

func TestExpandSchemaKeepsOnlyTheEnginesBlocks(t *testing.T) {
	src := "CREATE TABLE t (id {{autoid}});\n{{if sqlite}}CREATE VIRTUAL TABLE f USING fts5(v);{{end}}\n{{if postgres}}CREATE INDEX i ON t USING GIN (v);\n{{end}}"
	for d, want := range map[storage.Dialect]string{
		storage.SQLite:   "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT);\nCREATE VIRTUAL TABLE f USING fts5(v);\n",
		storage.Postgres: "CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY);\n\nCREATE INDEX i ON t USING GIN (v);\n",
	} {
		if got := storage.ExpandSchemaForTest(d, src); got != want {
			t.Errorf("%s: got %q, want %q", d, got, want)
		}
	}
}

// TestWriteReturnsOnceItsBatchCommitted: on SQLite, where one batch
// commits at a time, the caller that led the commit of its own write
// hears its outcome while a later write's batch is still running (the
// leader hands on instead of staying until nothing is pending).
func TestWriteReturnsOnceItsBatchCommitted(t *testing.T) {
	db := storagetest.Open(t, storagetest.SQLiteURL(t))
	ctx := context.Background()
	aStarted, releaseA := make(chan struct{}), make(chan struct{})
	bStarted, releaseB := make(chan struct{}), make(chan struct{})
	aDone, bDone := make(chan error, 1), make(chan error, 1)
	go func() {
		aDone <- db.Write(ctx, func(*sql.Tx) error { close(aStarted); <-releaseA; return nil })
	}()
	<-aStarted // a leads, and its batch is running
	go func() {
		bDone <- db.Write(ctx, func(*sql.Tx) error { close(bStarted); <-releaseB; return nil })
	}()
	// b waits for a's batch to commit: give it time to be queued.
	time.Sleep(50 * time.Millisecond)
	close(releaseA)
	defer close(releaseB)
	select {
	case err := <-aDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the first write did not return while a later write's batch was running")
	}
	select {
	case <-bStarted:
	case <-time.After(10 * time.Second):
		t.Fatal("the later write's batch never ran")
	}
	select {
	case err := <-bDone:
		t.Fatalf("the later write returned before its fn did: %v", err)
	default:
	}
}
