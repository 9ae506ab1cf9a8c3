package storage

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sync"
)

// groupCommit runs write transactions in batches: the writes that arrive
// while a batch commits wait, then commit together in the next one. Each
// commit costs an fsync (SQLite) or a WAL flush and two round trips
// (PostgreSQL), so a batch of n writes pays them once instead of n times;
// every caller learns its own outcome only after the commit, so nothing is
// acknowledged before it is durable.
//
// On SQLite, which allows one writer, every write goes through one batch
// at a time, each inside a savepoint, so one that fails is rolled back
// alone:
//
//	write ─┐                       ┌─ SAVEPOINT w; fn; RELEASE ─┐
//	write ─┼─► pending ─► leader ──┼─ SAVEPOINT w; fn; RELEASE ─┼─► COMMIT ─► results
//	write ─┘                       └─ SAVEPOINT w; fn; ROLLBACK ┘
//
// On PostgreSQL a savepoint is two more round trips, which would cost what
// the batch saves; batches are optimistic instead (see DB.WriteBatched):
// when a write fails, the batch is rolled back and each of its writes runs
// again in a transaction of its own. Several batches run at once, each on
// its own connection, so the database's parallelism is kept.
type groupCommit struct {
	db *DB
	// optimistic batches run without savepoints and are replayed write by
	// write when one fails (PostgreSQL).
	optimistic bool
	// maxLeaders is how many batches may commit at once.
	maxLeaders int

	mu      sync.Mutex // guards pending and leaders
	pending []*writeReq
	// leaders counts the goroutines committing batches.
	leaders int
}

type writeReq struct {
	ctx  context.Context
	fn   func(b *Batch) error
	done chan error
}

// write queues fn and returns its outcome once its batch has committed.
// The caller that finds fewer than maxLeaders batches running leads (see
// lead).
func (g *groupCommit) write(ctx context.Context, fn func(b *Batch) error) error {
	req := &writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, req)
	lead := g.leaders < max(1, g.maxLeaders)
	if lead {
		g.leaders++
	}
	g.mu.Unlock()
	if lead {
		g.lead(req)
	}
	return <-req.done
}

// lead commits batches until none is pending. A caller leading for its
// own write (own) leads only until the batch holding it has committed:
// if writes are still pending then, a goroutine goes on leading in its
// place, so that the caller hears its outcome at once and not after the
// batches of writes that came later.
func (g *groupCommit) lead(own *writeReq) {
	for {
		g.mu.Lock()
		batch := g.pending
		g.pending = nil
		if len(batch) == 0 {
			g.leaders--
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		if g.optimistic {
			g.commitOptimistic(batch)
		} else {
			g.commit(batch)
		}
		if own != nil && slices.Contains(batch, own) {
			go g.lead(nil)
			return
		}
	}
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
		if err := runWithLater(r.ctx, g.db.Dialect, tx, r.fn); err != nil {
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
	if err := runWithLater(r.ctx, g.db.Dialect, tx, r.fn); err != nil {
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

// commitOptimistic runs a batch in one transaction without savepoints.
// When a write fails, nothing of the batch is kept: the transaction is
// rolled back and each write runs again alone, so that only the failing
// one reports its failure. A failed commit is reported to every write
// and not replayed, since it may have committed.
func (g *groupCommit) commitOptimistic(batch []*writeReq) {
	if len(batch) == 1 {
		r := batch[0]
		r.done <- g.db.writeAlone(r.ctx, r.fn)
		return
	}
	tx, err := g.db.writer.BeginTx(context.Background(), nil)
	if err != nil {
		for _, r := range batch {
			r.done <- fmt.Errorf("begin: %w", err)
		}
		return
	}
	later := newLaterInserts()
	replay := func() {
		_ = tx.Rollback()
		for _, r := range batch {
			r.done <- g.db.writeAlone(r.ctx, r.fn)
		}
	}
	for _, r := range batch {
		err := r.ctx.Err()
		if err == nil {
			err = r.fn(&Batch{Tx: tx, later: later})
		}
		if err != nil {
			replay()
			return
		}
	}
	if err := later.flush(context.Background(), tx, g.db.Dialect); err != nil {
		replay()
		return
	}
	err = tx.Commit()
	if err != nil {
		err = fmt.Errorf("commit: %w", err)
	}
	for _, r := range batch {
		r.done <- err
	}
}

// runWithLater runs fn in tx and then writes the rows it queued with
// InsertLater.
func runWithLater(ctx context.Context, d Dialect, tx *sql.Tx, fn func(b *Batch) error) error {
	later := newLaterInserts()
	if err := fn(&Batch{Tx: tx, later: later}); err != nil {
		return err
	}
	return later.flush(ctx, tx, d)
}
