// Package storage opens the database on either engine, SQLite (the embedded
// default) or PostgreSQL, and gives components one handle for both: the same
// SQL text runs on each, writes go through a Writer that serialises them on
// SQLite, and the few true engine differences live in Dialect.
//
// Components import this package and write their own table files; this
// package knows nothing of any component's tables. Migrations are applied by
// Open, from the migrations package.
package storage

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/sirupsen/logrus"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// DB is a component's handle on the database: reads go to the pool
// directly, writes through Write.
type DB struct {
	// Dialect tells the engine apart where SQL differs.
	Dialect Dialect
	pool    *sql.DB
	// writer holds the write transactions' connections, apart from the
	// readers' pool so that a crowd of reads never keeps a write waiting
	// for a connection: SQLite's one writer (WAL lets reads run beside
	// it), PostgreSQL's half-pool.
	writer *sql.DB
	// group batches write transactions on SQLite, which allows one writer
	// at a time; nil on PostgreSQL, where transactions run concurrently.
	group *groupCommit
	// batches groups the writes of WriteBatched on PostgreSQL (SQLite's
	// group serves both there).
	batches *groupCommit
}

// Options tune Open.
type Options struct {
	// DataDir resolves relative SQLite paths.
	DataDir string
	// MaxOpenConns caps the PostgreSQL pool; 0 means 20.
	MaxOpenConns int
	// Log receives migration progress; nil discards it.
	Log *logrus.Entry
}

// Open connects to url ("sqlite:PATH" or "postgres://…") and applies every
// pending migration before returning.
func Open(ctx context.Context, rawURL string, opts Options) (*DB, error) {
	db, err := open(rawURL, opts)
	if err != nil {
		return nil, err
	}
	if err := db.migrate(ctx, opts.Log); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func open(rawURL string, opts Options) (*DB, error) {
	switch {
	case strings.HasPrefix(rawURL, "sqlite:"):
		path := strings.TrimPrefix(rawURL, "sqlite:")
		path = strings.TrimPrefix(path, "//")
		if path == "" {
			return nil, fmt.Errorf("open database: sqlite: URL has no path")
		}
		if !filepath.IsAbs(path) && opts.DataDir != "" {
			path = filepath.Join(opts.DataDir, path)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("open database: %w", err)
		}
		// WAL lets readers run beside the one writer; synchronous(FULL)
		// fsyncs every commit so that an acknowledged write survives a
		// power cut; _txlock=immediate takes the write lock at BEGIN so
		// that a transaction never fails half-way on an upgrade to write.
		dsn := "file:" + (&url.URL{Path: path}).EscapedPath() +
			"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(30000)" +
			"&_pragma=foreign_keys(1)&_txlock=immediate"
		pool, err := sql.Open("sqlite", dsn)
		if err != nil {
			return nil, fmt.Errorf("open sqlite %s: %w", path, err)
		}
		pool.SetMaxOpenConns(8)
		pool.SetMaxIdleConns(8)
		writer, err := sql.Open("sqlite", dsn)
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("open sqlite %s: %w", path, err)
		}
		writer.SetMaxOpenConns(1)
		writer.SetMaxIdleConns(1)
		writer.SetConnMaxIdleTime(0)
		db := &DB{Dialect: SQLite, pool: pool, writer: writer}
		db.group = &groupCommit{db: db}
		return db, nil
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		pool, err := sql.Open("pgx", rawURL)
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		n := opts.MaxOpenConns
		if n <= 0 {
			n = 20
		}
		pool.SetMaxOpenConns(n)
		pool.SetMaxIdleConns(n)
		// Writes get connections of their own (half as many again), so
		// that a crowd of reads never keeps them waiting, and so that a
		// transaction reading through the pool always finds a connection.
		writer, err := sql.Open("pgx", rawURL)
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		writer.SetMaxOpenConns(max(1, n/2))
		writer.SetMaxIdleConns(max(1, n/2))
		db := &DB{Dialect: Postgres, pool: pool, writer: writer}
		// A few batches at once: enough to keep the database's cores
		// busy, few enough that each batch gathers many writes.
		db.batches = &groupCommit{db: db, optimistic: true, maxLeaders: max(1, n/8)}
		return db, nil
	default:
		return nil, fmt.Errorf("open database: unsupported URL scheme (want sqlite: or postgres://)")
	}
}

// Close closes the pools.
func (db *DB) Close() error {
	if db.writer != nil {
		if err := db.writer.Close(); err != nil {
			db.pool.Close()
			return err
		}
	}
	return db.pool.Close()
}

// Querier is what both the pool and a transaction offer: table files take
// one so that a query runs alone or inside a caller's transaction.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Read returns the pool for queries outside a write transaction.
func (db *DB) Read() Querier { return db.pool }

// Write runs fn in a transaction and commits it if fn returns nil; when
// fn fails, nothing it wrote remains. On SQLite, concurrent calls share
// one transaction and one commit (see groupCommit). fn must not call Write.
func (db *DB) Write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	bfn := func(b *Batch) error { return fn(b.Tx) }
	if db.group != nil {
		return db.group.write(ctx, bfn)
	}
	return db.writeAlone(ctx, bfn)
}

// WriteBatched is Write for a hot path of many small writes: on
// PostgreSQL too, writes that arrive together share one transaction and
// one commit. The price is that fn may run twice: when another write of
// its batch fails, the batch is rolled back and fn runs again alone. So
// fn must start afresh each time, leaving nothing of a first run behind
// outside tx. Rows it queues with Batch.InsertLater are written with
// those of the other writes of its batch. fn must not call Write.
func (db *DB) WriteBatched(ctx context.Context, fn func(b *Batch) error) error {
	switch {
	case db.group != nil:
		return db.group.write(ctx, fn)
	case db.batches != nil:
		return db.batches.write(ctx, fn)
	}
	return db.writeAlone(ctx, fn)
}

// writeAlone runs fn in a transaction of its own.
func (db *DB) writeAlone(ctx context.Context, fn func(b *Batch) error) error {
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := runWithLater(ctx, db.Dialect, tx, fn); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Ping checks that the database answers, for health checks.
func (db *DB) Ping(ctx context.Context) error { return db.pool.PingContext(ctx) }
