package storage

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// Batch is the transaction of a WriteBatched write. Rows queued with
// InsertLater are written at the end of the write, or on PostgreSQL at the
// end of its batch, with one statement per table for the rows of every
// write: a hot path that inserts a row or two per write (the roomserver's
// outbox, its transaction ids) pays one round trip per batch for them
// instead of one per write.
type Batch struct {
	*sql.Tx
	later *laterInserts
}

// InsertLater queues a row for into, a table and its columns
// ("roomserver_outbox (event_nid, output_json)"): values must have one
// value per column. Nothing in the write may read the row back.
func (b *Batch) InsertLater(into string, values ...any) {
	b.later.add(into, values)
}

// laterInserts are rows queued by InsertLater, by table, in order.
type laterInserts struct {
	order []string
	rows  map[string][][]any
}

func newLaterInserts() *laterInserts { return &laterInserts{rows: map[string][][]any{}} }

func (l *laterInserts) add(into string, values []any) {
	if _, ok := l.rows[into]; !ok {
		l.order = append(l.order, into)
	}
	l.rows[into] = append(l.rows[into], values)
}

// laterChunk bounds the parameters of one insert, far below both
// engines' limits.
const laterChunk = 2000

// flush writes the queued rows in tx and forgets them: a statement per
// table, or on PostgreSQL one for all of them when they fit in one.
func (l *laterInserts) flush(ctx context.Context, tx *sql.Tx, d Dialect) error {
	defer func() { l.order, l.rows = l.order[:0], map[string][][]any{} }()
	params := 0
	for _, into := range l.order {
		rows := l.rows[into]
		for _, r := range rows {
			if len(r) != len(rows[0]) {
				return fmt.Errorf("insert into %s: rows of %d and %d values", into, len(rows[0]), len(r))
			}
		}
		params += len(rows) * len(rows[0])
	}
	if d == Postgres && len(l.order) > 1 && params <= laterChunk {
		return l.flushTogether(ctx, tx)
	}
	for _, into := range l.order {
		rows := l.rows[into]
		cols := len(rows[0])
		for len(rows) > 0 {
			n := min(len(rows), max(1, laterChunk/cols))
			args := make([]any, 0, n*cols)
			for _, r := range rows[:n] {
				args = append(args, r...)
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO "+into+" VALUES "+ValueRows(1, n, cols), args...); err != nil {
				return fmt.Errorf("insert into %s: %w", strings.Fields(into)[0], err)
			}
			rows = rows[n:]
		}
	}
	return nil
}

// flushTogether writes the rows of every table in one statement, each
// table's insert but the last in a data-modifying WITH clause: a round
// trip to PostgreSQL for all of them. The inserts must not depend on one
// another (InsertLater's rows never do: nothing in a write reads them).
func (l *laterInserts) flushTogether(ctx context.Context, tx *sql.Tx) error {
	var q strings.Builder
	var args []any
	tables := make([]string, len(l.order))
	for i, into := range l.order {
		rows := l.rows[into]
		tables[i] = strings.Fields(into)[0]
		switch {
		case i == 0:
			q.WriteString("WITH ")
		case i < len(l.order)-1:
			q.WriteString(", ")
		}
		if i < len(l.order)-1 {
			fmt.Fprintf(&q, "w%d AS (", i)
		} else {
			q.WriteByte(' ')
		}
		q.WriteString("INSERT INTO " + into + " VALUES " + ValueRows(len(args)+1, len(rows), len(rows[0])))
		if i < len(l.order)-1 {
			q.WriteByte(')')
		}
		for _, r := range rows {
			args = append(args, r...)
		}
	}
	if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
		return fmt.Errorf("insert into %s: %w", strings.Join(tables, ", "), err)
	}
	return nil
}
