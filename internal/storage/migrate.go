package storage

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/migrations"
)

// migration is one numbered SQL file.
type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads migrations/NNNN_name.sql in order and checks that
// the numbers run 1, 2, 3… without gaps or repeats.
func loadMigrations(files fs.FS) ([]migration, error) {
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	var ms []migration
	for _, name := range names {
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", name)
		}
		body, err := fs.ReadFile(files, name)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		ms = append(ms, migration{version: v, name: name, sql: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: expected number %d", m.name, i+1)
		}
	}
	return ms, nil
}

// migrate applies every migration not yet recorded, each in its own
// transaction with its record, so a failed one leaves the schema as it was.
// On PostgreSQL an advisory lock keeps processes that start together (the
// split deployment) from applying the same migration twice.
func (db *DB) migrate(ctx context.Context, log *logrus.Entry) error {
	ms, err := loadMigrations(migrations.Files)
	if err != nil {
		return err
	}
	for _, m := range ms {
		err := db.Write(ctx, func(tx *sql.Tx) error {
			if db.Dialect == Postgres {
				// Held until the transaction ends.
				if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(7263531)"); err != nil {
					return fmt.Errorf("lock migrations: %w", err)
				}
			}
			if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
				version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ts BIGINT NOT NULL)`); err != nil {
				return fmt.Errorf("create schema_migrations: %w", err)
			}
			var n int
			if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations WHERE version = $1", m.version).Scan(&n); err != nil {
				return fmt.Errorf("read schema_migrations: %w", err)
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, db.Dialect.expandSchema(m.sql)); err != nil {
				return fmt.Errorf("apply migration %s: %w", m.name, err)
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_ts) VALUES ($1, $2, $3)",
				m.version, m.name, time.Now().UnixMilli()); err != nil {
				return fmt.Errorf("record migration %s: %w", m.name, err)
			}
			if log != nil {
				log.WithField("migration", m.name).Info("applied database migration")
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
