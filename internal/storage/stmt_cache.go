package storage

import (
	"context"
	"database/sql"
	"sync"
)

// maxCachedStatements bounds the statements kept prepared: queries built
// with IN lists of every length must not grow the cache without end.
const maxCachedStatements = 512

// stmtCache prepares each distinct read query once and reuses it. On
// SQLite, parsing a query costs as much as running a small one; pgx
// already caches statements on its own connections, so PostgreSQL reads go
// to the pool directly.
type stmtCache struct {
	pool *sql.DB

	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

// stmt returns the prepared statement of query, nil when it cannot be
// cached (the caller then runs the query unprepared).
func (c *stmtCache) stmt(ctx context.Context, query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.stmts[query]; ok {
		return st
	}
	if len(c.stmts) >= maxCachedStatements {
		return nil
	}
	st, err := c.pool.PrepareContext(ctx, query)
	if err != nil {
		// The query will fail again unprepared and report why.
		return nil
	}
	c.stmts[query] = st
	return st
}

// QueryContext implements Querier.
func (c *stmtCache) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := c.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return c.pool.QueryContext(ctx, query, args...)
}

// QueryRowContext implements Querier.
func (c *stmtCache) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := c.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return c.pool.QueryRowContext(ctx, query, args...)
}

// ExecContext implements Querier.
func (c *stmtCache) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return c.pool.ExecContext(ctx, query, args...)
}

// close closes the prepared statements.
func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.stmts {
		_ = st.Close()
	}
	c.stmts = nil
}
