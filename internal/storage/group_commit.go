package storage

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// groupCommit runs SQLite's write transactions one batch at a time: the
// writes that arrive while a batch commits wait, then commit together in
// the next one. SQLite allows a single writer and each commit costs an
// fsync, so a batch of n writes costs one fsync instead of n. Each write
// runs inside a savepoint, so one that fails is rolled back alone; every
// caller learns its own outcome only after the commit, so nothing is
// acknowledged before it is durable.
//
//	write ─┐                       ┌─ SAVEPOINT w; fn; RELEASE ─┐
//	write ─┼─► pending ─► leader ──┼─ SAVEPOINT w; fn; RELEASE ─┼─► COMMIT ─► results
//	write ─┘                       └─ SAVEPOINT w; fn; ROLLBACK ┘
type groupCommit struct {
	db *DB

	mu      sync.Mutex // guards pending and leading
	pending []*writeReq
	// leading is set while a goroutine is committing batches.
	leading bool
}

type writeReq struct {
	ctx  context.Context
	fn   func(tx *sql.Tx) error
	done chan error
}

// write queues fn and returns its outcome once its batch has committed.
// The caller that finds no batch running leads: it commits batches until
// none is pending.
func (g *groupCommit) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	req := &writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, req)
	lead := !g.leading
	g.leading = true
	g.mu.Unlock()
	if lead {
		for {
			g.mu.Lock()
			batch := g.pending
			g.pending = nil
			if len(batch) == 0 {
				g.leading = false
				g.mu.Unlock()
				break
			}
			g.mu.Unlock()
			g.commit(batch)
		}
	}
	return <-req.done
}

// commit runs a batch in one transaction and reports to each request.
func (g *groupCommit) commit(batch []*writeReq) {
	results := make([]error, len(batch))
	tx, err := g.db.writer.BeginTx(context.Background(), nil)
	if err != nil {
		for _, r := range batch {
			r.done <- fmt.Errorf("begin: %w", err)
		}
		return
	}
	for i, r := range batch {
		results[i] = g.run(tx, r, len(batch) > 1)
	}
	if err := tx.Commit(); err != nil {
		for i := range results {
			if results[i] == nil {
				results[i] = fmt.Errorf("commit: %w", err)
			}
		}
	}
	for i, r := range batch {
		r.done <- results[i]
	}
}

// run runs one request in tx, inside a savepoint when it shares the
// transaction, so that its failure undoes only its own writes.
func (g *groupCommit) run(tx *sql.Tx, r *writeReq, shared bool) (err error) {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	if !shared {
		if err := r.fn(tx); err != nil {
			// The batch holds this write alone: roll the whole
			// transaction back by making the commit fail.
			_ = tx.Rollback()
			return err
		}
		return nil
	}
	if _, err := tx.ExecContext(r.ctx, "SAVEPOINT write"); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	if err := r.fn(tx); err != nil {
		if _, rbErr := tx.ExecContext(context.Background(), "ROLLBACK TO SAVEPOINT write"); rbErr != nil {
			return fmt.Errorf("%w (and rolling back: %v)", err, rbErr)
		}
		_, _ = tx.ExecContext(context.Background(), "RELEASE SAVEPOINT write")
		return err
	}
	if _, err := tx.ExecContext(r.ctx, "RELEASE SAVEPOINT write"); err != nil {
		return fmt.Errorf("release savepoint: %w", err)
	}
	return nil
}
