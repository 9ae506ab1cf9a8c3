// Package storagetest runs storage and integration tests on both engines:
// a fresh SQLite file always, and a fresh PostgreSQL database when
// HOMESERVER_TEST_POSTGRES names a server to create it on.
package storagetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/matrix-gouv/homeserver/internal/storage"
)

// PostgresEnv is the environment variable holding the PostgreSQL DSN that
// tests create their databases on, e.g. postgres://postgres@127.0.0.1/postgres.
const PostgresEnv = "HOMESERVER_TEST_POSTGRES"

// EnginesEnv, when set, lists the engines to test ("sqlite,postgres");
// CI uses it to run the race detector on PostgreSQL only, where SQLite's
// pure-Go driver would be too slow under it.
const EnginesEnv = "HOMESERVER_TEST_ENGINES"

// Engines runs fn as a subtest per engine, with a database URL that is
// fresh for this subtest and dropped after it. The PostgreSQL subtest is
// skipped, saying why, when PostgresEnv is unset.
//
// The two subtests run side by side (t.Parallel): most of a test's time
// is spent waiting on the network, the disk and timers, not on the CPU.
// They start only once the calling test function has returned, so that
// function must end with Engines, and release what fn uses with
// t.Cleanup rather than defer.
func Engines(t *testing.T, fn func(t *testing.T, url string)) {
	t.Helper()
	EnginesEach(t, func(t *testing.T, newURL func(testing.TB) string) { fn(t, newURL(t)) })
}

// EnginesEach is Engines for a test that needs several databases per
// engine (servers federating with each other): fn gets the subtest's
// engine as a function returning a fresh database URL at each call.
func EnginesEach(t *testing.T, fn func(t *testing.T, newURL func(testing.TB) string)) {
	t.Helper()
	for _, e := range []struct {
		name   string
		newURL func(testing.TB) string
	}{{"sqlite", SQLiteURL}, {"postgres", PostgresURL}} {
		t.Run(e.name, func(t *testing.T) {
			skipUnlessSelected(t, e.name)
			t.Parallel()
			fn(t, e.newURL)
		})
	}
}

func skipUnlessSelected(t *testing.T, engine string) {
	sel := os.Getenv(EnginesEnv)
	if sel == "" {
		return
	}
	for _, e := range strings.Split(sel, ",") {
		if strings.TrimSpace(e) == engine {
			return
		}
	}
	t.Skipf("%s tests skipped: %s=%s", engine, EnginesEnv, sel)
}

// DBs is Engines with the database already opened and migrated.
func DBs(t *testing.T, fn func(t *testing.T, db *storage.DB)) {
	t.Helper()
	Engines(t, func(t *testing.T, url string) {
		fn(t, Open(t, url))
	})
}

// Open opens and migrates url, closing it when the test ends.
func Open(t testing.TB, url string) *storage.DB {
	t.Helper()
	db, err := storage.Open(context.Background(), url, storage.Options{})
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// SQLiteURL returns the URL of a new SQLite file in the test's temp dir.
func SQLiteURL(t testing.TB) string {
	return "sqlite:" + filepath.Join(t.TempDir(), "homeserver.db")
}

// PostgresURL creates a database on the server named by PostgresEnv and
// returns its URL; it skips the test when PostgresEnv is unset.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		t.Skipf("PostgreSQL tests skipped: set %s (e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable) to run them", PostgresEnv)
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("open %s: %v", PostgresEnv, err)
	}
	defer admin.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "hs_test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database on %s: %v", PostgresEnv, err)
	}
	t.Cleanup(func() {
		admin, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", PostgresEnv, err)
	}
	u.Path = "/" + name
	return u.String()
}

// Must fails the test on err; for set-up steps.
func Must(t testing.TB, err error, what string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(what, args...), err)
	}
}
