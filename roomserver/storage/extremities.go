package storage

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
)

// ExtremityLog is how a room's forward extremities are stored. Writing
// the set at every event would cost a statement per message, so the set
// (Checkpoint) is written now and then, and the events accepted since
// (Later, oldest first) move it on when replayed: each replaces its
// prev_events in the set.
type ExtremityLog struct {
	Checkpoint []int64
	Later      []int64
}

// Extremities returns a room's extremity log, read in one statement so
// that a checkpoint written meanwhile cannot split it.
func (s *Store) Extremities(ctx context.Context, roomNID int64) (ExtremityLog, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT 0, event_nid FROM roomserver_extremities WHERE room_nid = $1
		UNION ALL
		SELECT 1, e.event_nid FROM roomserver_events e JOIN roomserver_rooms r ON r.room_nid = e.room_nid
		WHERE e.room_nid = $1 AND e.event_nid > r.extremities_nid AND e.rejected = '' AND NOT e.soft_failed AND NOT e.outlier
			AND e.backfill_pos IS NULL
		ORDER BY 1, 2`, roomNID)
	if err != nil {
		return ExtremityLog{}, fmt.Errorf("load extremities: %w", err)
	}
	defer rows.Close()
	var log ExtremityLog
	for rows.Next() {
		var later int
		var n int64
		if err := rows.Scan(&later, &n); err != nil {
			return ExtremityLog{}, fmt.Errorf("scan extremity: %w", err)
		}
		if later == 1 {
			log.Later = append(log.Later, n)
		} else {
			log.Checkpoint = append(log.Checkpoint, n)
		}
	}
	return log, rows.Err()
}

// SetExtremities writes a checkpoint of a room's forward extremities: the
// set cur, which holds as of the event uptoNID. old is the set written
// last; only the difference is written.
func (s *Store) SetExtremities(ctx context.Context, tx *sql.Tx, roomNID int64, old, cur []int64, uptoNID int64) error {
	if _, err := tx.ExecContext(ctx, `UPDATE roomserver_rooms SET extremities_nid = $1 WHERE room_nid = $2`, uptoNID, roomNID); err != nil {
		return fmt.Errorf("set extremities checkpoint: %w", err)
	}
	removed, added := difference(old, cur), difference(cur, old)
	if len(removed) == 1 && len(added) == 1 {
		if _, err := tx.ExecContext(ctx, `UPDATE roomserver_extremities SET event_nid = $1 WHERE room_nid = $2 AND event_nid = $3`,
			added[0], roomNID, removed[0]); err != nil {
			return fmt.Errorf("replace extremity: %w", err)
		}
		return nil
	}
	for _, n := range removed {
		if _, err := tx.ExecContext(ctx, `DELETE FROM roomserver_extremities WHERE room_nid = $1 AND event_nid = $2`, roomNID, n); err != nil {
			return fmt.Errorf("remove extremity: %w", err)
		}
	}
	for _, n := range added {
		if _, err := tx.ExecContext(ctx, `INSERT INTO roomserver_extremities (room_nid, event_nid) VALUES ($1, $2)`, roomNID, n); err != nil {
			return fmt.Errorf("insert extremity: %w", err)
		}
	}
	return nil
}

// difference returns the elements of a that are not in b.
func difference(a, b []int64) []int64 {
	var out []int64
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}
