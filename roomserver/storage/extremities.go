package storage

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
)

// Extremities returns the nids of a room's forward extremities.
func (s *Store) Extremities(ctx context.Context, roomNID int64) ([]int64, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT event_nid FROM roomserver_extremities WHERE room_nid = $1 ORDER BY event_nid`, roomNID)
	if err != nil {
		return nil, fmt.Errorf("load extremities: %w", err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var n int64
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("scan extremity: %w", err)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// SetExtremities changes a room's forward extremities from old to cur,
// writing only the difference: in the common case (one event replacing
// the one before it) a single update.
func (s *Store) SetExtremities(ctx context.Context, tx *sql.Tx, roomNID int64, old, cur []int64) error {
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
