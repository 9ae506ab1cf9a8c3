package storage

import (
	"context"
	"database/sql"
	"fmt"
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

// SetExtremities replaces a room's forward extremities.
func (s *Store) SetExtremities(ctx context.Context, tx *sql.Tx, roomNID int64, nids []int64) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM roomserver_extremities WHERE room_nid = $1`, roomNID); err != nil {
		return fmt.Errorf("clear extremities: %w", err)
	}
	for _, n := range nids {
		if _, err := tx.ExecContext(ctx, `INSERT INTO roomserver_extremities (room_nid, event_nid) VALUES ($1, $2)`, roomNID, n); err != nil {
			return fmt.Errorf("insert extremity: %w", err)
		}
	}
	return nil
}
